#!/usr/bin/env bash
# The main job, on the CPU:
#   1. import the bundled tiny Llama checkpoint (test/data/llama-tiny, byte-level vocab);
#   2. compile it for inference and generate from a prompt (the tokens equal
#      transformers' greedy generation);
#   3. compile a training step (AdamW, cosine schedule, clipping, activation
#      checkpointing) and train it on English text that Debian ships
#      (/usr/share/common-licenses), the loss falling, with a checkpoint at the end;
#   4. generate text from the trained weights.
# Everything goes to $BMSYS_OUT (default build/main-job). BMSYS_STEPS sets the steps.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BMSYS_BUILD_DIR:-$root/build}
bin=$build/bin
out=${BMSYS_OUT:-$build/main-job}
steps=${BMSYS_STEPS:-300}
model=$root/test/data/llama-tiny
mkdir -p "$out"

echo "== import $model"
"$bin/bmsys-import-hf" "$model" -o "$out/model.mlir"

echo "== compile for inference (bmsys-infer-pipeline) and generate"
"$bin/bmsys-opt" "$out/model.mlir" --bmsys-infer-pipeline="max-batch=1 memory-report" \
  -o "$out/infer.rt.mlir"
"$bin/bmsys-translate" --bmsys-to-artifact "$out/infer.rt.mlir" -o "$out/infer.bmsys"
prompt=95,11,81,70,63,87,253,75
echo "prompt:    $prompt"
tokens=$("$bin/bmsys-run" generate "$out/infer.bmsys" --prompt-ids "$prompt" --max-new-tokens 24)
echo "generated: $tokens"

echo "== training data: byte-level tokens of /usr/share/common-licenses"
licenses=(/usr/share/common-licenses/{GPL-3,Apache-2.0,MPL-2.0,LGPL-2.1,GFDL-1.3})
"$bin/bmsys-run" tokenize "${licenses[@]}" -o "$out/licenses.bin"

echo "== compile a training step (bmsys-train-pipeline)"
"$bin/bmsys-opt" "$out/model.mlir" --bmsys-train-pipeline="max-batch=16 max-seq=64 \
checkpoint=every lr=3e-3 beta2=0.95 weight-decay=0.01 max-grad-norm=1.0 schedule=cosine \
warmup-steps=20 total-steps=$steps min-lr=3e-4 memory-report" -o "$out/train.rt.mlir"
"$bin/bmsys-translate" --bmsys-to-artifact "$out/train.rt.mlir" -o "$out/train.bmsys"

echo "== train $steps steps (batch 16 x 64 tokens)"
rm -rf "$out/checkpoint"
"$bin/bmsys-run" train "$out/train.bmsys" --data "$out/licenses.bin" --batch 16 --seq 64 \
  --steps "$steps" --metrics "$out/metrics.jsonl" --save "$out/checkpoint"
python3 - "$out/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
first, last = rows[0]["loss"], rows[-1]["loss"]
print(f"loss: step 1 {first:.3f} -> step {rows[-1]['step']} {last:.3f}")
if not last < first:
    sys.exit("the loss did not fall")
PY

echo "== generate from the trained weights ($out/checkpoint)"
text_prompt="This License "
ids=$(python3 -c 'import sys; print(",".join(str(b) for b in sys.argv[1].encode()))' "$text_prompt")
generated=$("$bin/bmsys-run" generate "$out/train.bmsys" --weights "$out/checkpoint" \
  --prompt-ids "$ids" --max-new-tokens 48)
python3 -c 'import sys; print(repr(bytes(int(t) for t in sys.argv[1].split(",")).decode("utf-8", "replace")))' "$generated"
