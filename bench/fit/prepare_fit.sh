#!/usr/bin/env bash
# Runs HERE, where the compiler is (the GPU machine has no MLIR): for the two
# benchmarks of the auto-fit checks (docs/autofit.md), writes into build-gpu/fit/
#   train-<gpus>.json / .txt   bmsys-fit's predictions for the training grid
#   infer.json                 the same for the inference grid
#   <name>.bmsys               one artifact per configuration of the grids
#   grid.json                  what fit_check.py runs: name, kind, gpus, batch, seq, ...
# Then on the GPU machine: scripts/gpu/run_all.sh fit (runs bench/fit/fit_check.py).
#
# Training: the Llama-shaped 0.94B of the FSDP peer (16 layers, hidden 2048, inter 5504,
# 16 heads, vocab 32000), seq 2048, bf16 compute with f32 master weights, AdamW:
#   1 GPU : checkpoint none/every x micro-batch 1, 2, 4        (6 configurations)
#   2 GPUs: ZeRO 1, 2, 3 x checkpoint every x micro-batch 2     (3 configurations)
# Inference: the Llama-shaped 6.7B, batch 1, bf16, max-seq 1024, 2048, 4096 (3).
#
# Env: COMPILER_BIN (default build-c/bin), G (default build-gpu), CALIBRATION (default
# bench/fit/h200-calibration.json: `bmsys-run calibrate --device cuda --nproc 2` on the
# 2-GPU H200 machine, 2026-11-28).
set -euo pipefail
cd "$(dirname "$0")/../.."
CBIN=${COMPILER_BIN:-build-c/bin}
OUTDIR=${G:-build-gpu}/fit
CAL=${CALIBRATION:-bench/fit/h200-calibration.json}
rm -rf "$OUTDIR" && mkdir -p "$OUTDIR"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

python3 bench/make_model.py "$TMP/llama-0.94b" --hidden 2048 --layers 16 --inter 5504 --heads 16 \
  --kv-heads 16 --vocab 32000 --max-pos 2048 >/dev/null
"$CBIN/bmsys-import-hf" "$TMP/llama-0.94b" -o "$TMP/train.mlir"
python3 bench/make_model.py "$TMP/llama-6.7b" >/dev/null
"$CBIN/bmsys-import-hf" "$TMP/llama-6.7b" -o "$TMP/infer.mlir"

fit() {  # fit MODEL NAME OPTIONS...
  local model=$1 name=$2; shift 2
  "$CBIN/bmsys-opt" "$model" --bmsys-fit="$* calibration=$CAL report=$OUTDIR/$name.json table=$OUTDIR/$name.txt" \
    -o /dev/null || true  # a grid where nothing fits still has its report
  cat "$OUTDIR/$name.txt"
}
fit "$TMP/train.mlir" train-1 "gpus=1 seq=2048 micro-batches=1,2,4 checkpoint=none,every options={mixed-precision=bf16}"
fit "$TMP/train.mlir" train-2 "gpus=2 seq=2048 micro-batches=2 zero-stages=1,2,3 checkpoint=every tensor-parallel=1 options={mixed-precision=bf16}"
for s in 1024 2048 4096; do
  fit "$TMP/infer.mlir" "infer-$s" "mode=infer seq=$s batch=1 quantize=none memory-schedule=off dtype=bf16"
done

# One artifact per candidate that fits, compiled with the candidate's own pipeline.
python3 - "$OUTDIR" "$CBIN" "$TMP" <<'PY'
import json, os, subprocess, sys
out, cbin, tmp = sys.argv[1:]
grid = []
for f in sorted(os.listdir(out)):
    if not f.endswith(".json"):
        continue
    r = json.load(open(os.path.join(out, f)))
    kind = r["mode"]
    for i, c in enumerate(r["candidates"]):
        if not c.get("fits"):
            continue
        name = f"{f[:-5]}-{i + 1}"
        model = os.path.join(tmp, "train.mlir" if kind == "train" else "infer.mlir")
        rt = os.path.join(tmp, name + ".rt.mlir")
        subprocess.run([os.path.join(cbin, "bmsys-opt"), model,
                        f"--pass-pipeline=builtin.module({c['pipeline']})", "-o", rt], check=True)
        subprocess.run([os.path.join(cbin, "bmsys-translate"), "--bmsys-to-artifact", rt,
                        "-o", os.path.join(out, name + ".bmsys")], check=True)
        os.remove(rt)
        grid.append(dict(name=name, kind=kind, gpus=r["gpus"], seq=c["memory"]["max_seq"],
                         micro_batch=c["micro_batch"], data_parallel=c["data_parallel"],
                         configuration=c["configuration"], chosen=c["chosen"],
                         predicted_peak_bytes=c["peak_bytes"],
                         predicted_step_s=c["step"]["total_s"],
                         predicted_tokens_per_s=c["tokens_per_s"], report=f))
json.dump(grid, open(os.path.join(out, "grid.json"), "w"), indent=1)
print(f"{len(grid)} configurations in {out}/grid.json")
PY
du -sh "$OUTDIR"
