#!/usr/bin/env bash
# The main job, on the CPU: import the bundled tiny Llama checkpoint, compile it
# for inference, and generate from a prompt. Artifacts go to $BMSYS_OUT
# (default build/main-job).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BMSYS_BUILD_DIR:-$root/build}
bin=$build/bin
out=${BMSYS_OUT:-$build/main-job}
model=$root/test/data/llama-tiny
mkdir -p "$out"

echo "== import $model"
"$bin/bmsys-import-hf" "$model" -o "$out/model.mlir"
echo "== compile (bmsys-infer-pipeline)"
"$bin/bmsys-opt" "$out/model.mlir" --bmsys-infer-pipeline="max-batch=1 memory-report" \
  -o "$out/model.rt.mlir"
"$bin/bmsys-translate" --bmsys-to-artifact "$out/model.rt.mlir" -o "$out/model.bmsys"
echo "== generate on the CPU (greedy, KV cache)"
prompt=95,11,81,70,63,87,253,75
echo "prompt:    $prompt"
echo -n "generated: "
"$bin/bmsys-run" generate "$out/model.bmsys" --prompt-ids "$prompt" --max-new-tokens 24
