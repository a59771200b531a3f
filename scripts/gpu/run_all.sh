#!/usr/bin/env bash
# Runs on the GPU machine; builds nothing. Needs build-gpu/ from scripts/gpu/prepare.sh
# (send it with carry ["build-gpu"]). Stages (default: all, in this order):
#   tests     GPU unit + golden tests (bmsys-cuda-tests); the decode kernels' loads before
#             griddepcontrol.wait, in the SASS (scripts/gpu/check_sass.py)
#   e2e       bmsys-run generate --device cuda on the golden Llama, against transformers
#   sanitize  compute-sanitizer memcheck on the GPU tests, racecheck on the kernel tests
#   bench     bmsys-bench on a Llama-shaped 6.7B with random weights (bf16): ceilings,
#             decode vs the bandwidth bound, prefill vs the GEMM rate, trace, memory plan
#   peer      transformers on the same GPU (bench/peers/peer_decode_compiled.py)
#   fit       bench/fit/fit_check.py: bmsys-fit's predicted peak memory and step time
#             against measured ones (needs build-gpu/fit from bench/fit/prepare_fit.sh;
#             not in the default)
#   dist      2 GPUs (nvidia-h200-x2): NCCL communicator tests; golden tiny Llama, 10 AdamW
#             steps in f32, one rank vs ZeRO 0-3 on 2 ranks and pipeline parallel 2 (with 4
#             GPUs also PP=2 x ZeRO-1 DP=2) (losses within 1e-3); a killed and a hung rank,
#             and a hung pipeline stage, make the others exit naming it within --comm-timeout
#   fsdp      2 GPUs: bench/fsdp_bench.py, the Llama-shaped 0.94B trained with ZeRO-1/2/3
#             (with and without checkpointing) against PyTorch FSDP2 in the same run
# With 2 or more GPUs, dist and fsdp are in the default stages.
#   int8      one GPU: bmsys-bench-int8 (INT8 GEMM 8192^3 and decode GEMVs against bf16,
#             pinned H2D bandwidth), resident weight-only INT8 decode against bf16, the
#             6 GiB memory schedule against HF accelerate offload (not in the default)
#   adamw     CPU only: bench/adamw/adamw_torch.py, bmsys-bench-adamw (the CPU AdamW per
#             instruction set) against torch.optim.AdamW on all cores (not a default stage)
#   gemvlab   one GPU: bmsys-gemv-lab, the decode GEMV's design space against a read-only
#             kernel and cuBLASLt (gemvlab.log; not a default stage)
#   layerlab  one GPU: bmsys-decode-layer-lab, a decode layer's INT8 GEMVs as launches
#             against one persistent kernel with grid barriers (layerlab.log; not default)
#   ab        one GPU: resident decode of the 6.7B (INT8, then bf16; fed on the device, as the
#             int8 stage reports it) with bmsys-bench and
#             with bmsys-bench-b (another tree's build: prepare.sh with AB_BENCH),
#             alternating AB_RUNS times (default 2) in this one run (ab.log; not default)
# Logs and JSON go to $OUT (default /tmp/bmsys-gpu-out; at most 8 files: summary.txt,
# tests.log (+ e2e), sanitizer.log, bench.log (+ peer), bench.json, peer.json and the two
# traces); a table is printed last.
#   scripts/gpu/run_all.sh [stage...]
set -u
cd "$(dirname "$0")/../.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/bmsys-gpu-out}
mkdir -p "$OUT"
G=$PWD/build-gpu
NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
DEFAULT="tests e2e sanitize bench peer"
[ "$NGPU" -ge 2 ] && DEFAULT="$DEFAULT dist fsdp"
STAGES=${*:-$DEFAULT}
T0=$(date +%s)
stamp() { echo "[run_all +$(( $(date +%s) - T0 ))s] $*"; }

if [ ! -f "$G/carry.tar.gz" ]; then
  echo "build-gpu/carry.tar.gz missing: run scripts/gpu/prepare.sh where the compiler is" >&2
  exit 2
fi
mkdir -p /tmp/bmsys-gpu && tar -C /tmp/bmsys-gpu -xzf "$G/carry.tar.gz"
BIN=/tmp/bmsys-gpu/bin
export LD_LIBRARY_PATH=/tmp/bmsys-gpu/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export BMSYS_GPU_ARTIFACTS=$G/artifacts
# The tests read test/data of this tree (they were built elsewhere: runtime/tests/cuda/cuda_test_util.h).
export BMSYS_SOURCE_DIR=$PWD
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.mem,temperature.gpu \
  --format=csv 2>&1 | tee "$OUT/summary.txt"

declare -A RES
has() { case " $STAGES " in *" $1 "*) return 0 ;; esac; return 1; }

if has tests; then
  stamp "tests"
  timeout ${TESTS_TIMEOUT:-240} "$BIN/bmsys-cuda-tests" --gtest_color=no >"$OUT/tests.log" 2>&1
  rc=$?
  RES[tests]="rc=$rc $(grep -E '^\[  PASSED  \]|^\[  FAILED  \]|^\[  SKIPPED \] [0-9]' "$OUT/tests.log" | tr '\n' ' ')"
  # The decode GEMVs' and attention's early loads must precede griddepcontrol.wait.
  python3 scripts/gpu/check_sass.py "$BIN/bmsys-cuda-tests" >>"$OUT/tests.log" 2>&1
  RES[sass]="rc=$? $(grep '^sass:' "$OUT/tests.log")"
  grep -E '^\[ +(OK|FAILED|SKIPPED) +\]|\[golden\]|Failure|error|Expected|Which is|relative error' "$OUT/tests.log" | head -150
fi

if has e2e; then
  stamp "e2e"
  {
    python3 - "$G/../test/data/llama-tiny/golden.safetensors" >/tmp/bmsys-gpu/golden.txt <<'PY'
import sys
from safetensors.numpy import load_file
g = load_file(sys.argv[1])
print(",".join(str(int(x)) for x in g["generate.prompt"][0]))
print(",".join(str(int(x)) for x in g["generate.output"][0]))
PY
    PROMPT=$(sed -n 1p /tmp/bmsys-gpu/golden.txt)
    WANT=$(sed -n 2p /tmp/bmsys-gpu/golden.txt)
    NEW=$(( $(echo "$WANT" | tr ',' '\n' | wc -l) - $(echo "$PROMPT" | tr ',' '\n' | wc -l) ))
    # --device/--dtype/--trace where this bmsys-run has them, else --backend.
    DEVFLAG=--backend
    "$BIN/bmsys-run" generate --help 2>&1 | grep -q -- '--device' && DEVFLAG=--device
    for dev in cuda cpu; do
      GOT=$("$BIN/bmsys-run" generate "$G/artifacts/llama-tiny.bmsys" $DEVFLAG $dev \
            --weights test/data/llama-tiny/model.safetensors --prompt-ids "$PROMPT" --max-new-tokens $NEW 2>/tmp/bmsys-gpu/e2e.err)
      echo "bmsys-run generate --device $dev: $( [ "$GOT" = "$WANT" ] && echo 'equal to transformers' || echo "DIFFERENT: $GOT vs $WANT") ($(tr '\n' ' ' </tmp/bmsys-gpu/e2e.err))"
    done
    if [ $DEVFLAG = --device ]; then
      GOT=$("$BIN/bmsys-run" generate "$G/artifacts/llama-tiny.bmsys" --device cuda --dtype bf16 \
            --trace /tmp/bmsys-gpu/e2e_trace.json --weights test/data/llama-tiny/model.safetensors \
            --prompt-ids "$PROMPT" --max-new-tokens $NEW 2>&1)
      echo "bmsys-run generate --device cuda --dtype bf16 --trace: $GOT"
      python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print('trace:', len(j['traceEvents']), 'events')" /tmp/bmsys-gpu/e2e_trace.json
    fi
    # Training (bmsys-run train --device cuda; artifacts from prepare.sh): the golden
    # batch for 10 AdamW steps in f32 against transformers' losses (1e-3) and final
    # weights (1e-3 relative, from the checkpoint), a resume from step 5 (bit-identical),
    # bf16 mixed precision (losses within 2% of f32), f16 with a forced overflow.
    TW=/tmp/bmsys-gpu/train && rm -rf "$TW" && mkdir -p "$TW"
    python3 test/tools/write_tokens.py test/data/llama-tiny/golden.safetensors train.input_ids "$TW/tokens.bin" >/dev/null
    gtrain() { "$BIN/bmsys-run" train "$G/artifacts/llama-tiny.$1.bmsys" --device cuda --weights test/data/llama-tiny/model.safetensors \
             --data "$TW/tokens.bin" --batch 4 --seq 32 "${@:2}"; }
    gtrain train --steps 10 --metrics "$TW/f32.jsonl" --save "$TW/ckpt" 2>"$TW/f32.err"
    echo "bmsys-run train --device cuda: rc=$? ($(grep -E 'device:|error' "$TW/f32.err" | tr '\n' ' '))"
    python3 test/tools/check_losses.py "$TW/f32.jsonl" --ref test/data/llama-tiny/golden.safetensors:train.losses --atol 1e-3 >"$TW/losses.txt" \
      && echo "train f32 losses: within 1e-3 of transformers" || { echo "train f32 losses: DIFFERENT"; cat "$TW/losses.txt"; }
    python3 test/tools/compare.py "$TW/ckpt/model.safetensors" test/data/llama-tiny/golden.safetensors --prefix train.final. --rtol 1e-3 >"$TW/weights.txt" \
      && echo "train f32 final weights: within 1e-3 of transformers" || { echo "train f32 final weights: DIFFERENT"; cat "$TW/weights.txt"; }
    gtrain train --steps 5 --metrics "$TW/first.jsonl" --save "$TW/ckpt5" 2>/dev/null
    gtrain train --steps 10 --metrics "$TW/second.jsonl" --resume "$TW/ckpt5" 2>/dev/null
    python3 test/tools/check_losses.py "$TW/first.jsonl" "$TW/second.jsonl" --ref "$TW/f32.jsonl" --atol 0 >/dev/null \
      && echo "train resume at step 5: bit-identical" || echo "train resume at step 5: DIFFERENT"
    gtrain train-bf16 --steps 10 --metrics "$TW/bf16.jsonl" 2>/dev/null
    export BMSYS_TEST_FORCE_OVERFLOW_STEP=3
    gtrain train-f16 --steps 10 --loss-scale-init 1024 --metrics "$TW/f16.jsonl" 2>"$TW/f16.err"
    unset BMSYS_TEST_FORCE_OVERFLOW_STEP
    python3 - "$TW" <<'PY'
import json, sys
d = sys.argv[1]
rows = lambda f: [json.loads(x) for x in open(f"{d}/{f}") if x.strip()]
f32 = [r["loss"] for r in rows("f32.jsonl")]
try:
    bf = [r["loss"] for r in rows("bf16.jsonl")]
    e = max(abs(a - b) / b for a, b in zip(bf, f32)) if len(bf) == len(f32) else float("inf")
    print(f"train bf16 losses: {'within' if e <= 2e-2 else 'NOT within'} 2% of f32 (max {e:.2e}): {' '.join(f'{x:.4f}' for x in bf)}")
    f16 = rows("f16.jsonl")
    applied = [r["loss"] for r in f16 if not r["skipped"]]
    e = max(abs(a - b) / b for a, b in zip(applied, f32)) if len(applied) == 9 else float("inf")
    skipped = [r["step"] for r in f16 if r["skipped"]]
    ok = skipped == [3] and f16[3]["loss_scale"] == f16[2]["loss_scale"] / 2 and e <= 2e-2
    print(f"train f16 forced overflow at step 3: {'recovered' if ok else 'NOT recovered'} (skipped {skipped}, scale "
          f"{f16[2]['loss_scale']} -> {f16[3]['loss_scale']}, applied steps max rel. diff to f32 {e:.2e})")
except Exception as ex:
    print(f"train bf16/f16: FAILED ({ex})")
PY
  } 2>&1 | tee /tmp/bmsys-gpu/e2e.log
  cat /tmp/bmsys-gpu/e2e.log >>"$OUT/tests.log"
  RES[e2e]="$(grep -c "equal to transformers" /tmp/bmsys-gpu/e2e.log)/2 runs equal to transformers; train: $(grep -cE '^train .*(: within|bit-identical|: recovered)' /tmp/bmsys-gpu/e2e.log)/5 checks ok"
fi

if has sanitize; then
  stamp "sanitize"
  CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer /opt/nvidia/*/compute-sanitizer/compute-sanitizer 2>/dev/null | head -1)
  if [ -z "$CS" ]; then
    RES[sanitize]="compute-sanitizer not found"
  else
    {
      echo "== memcheck (all GPU tests but the switch sweep)"
      timeout ${MEMCHECK_TIMEOUT:-180} "$CS" --tool memcheck --error-exitcode 3 --print-limit 20 "$BIN/bmsys-cuda-tests" \
        --gtest_color=no --gtest_filter='-CudaGolden.SwitchesDoNotChangeResults:CudaKernels.*RandomShapes:CudaBackend.OutOfMemoryNamesTheNeed' 2>&1 | grep -E "ERROR SUMMARY|========= |PASSED|FAILED|Failure|Expected|actual|Which is|\[golden\]|graph" | tail -40
      echo "memcheck rc=${PIPESTATUS[0]}"
      echo "== racecheck (kernels that use shared memory)"
      timeout ${RACECHECK_TIMEOUT:-150} "$CS" --tool racecheck --error-exitcode 3 --print-limit 20 "$BIN/bmsys-cuda-tests" --gtest_color=no \
        --gtest_filter='CudaKernels.Norms:CudaFused.AddRmsNorm:CudaKernels.Attention:CudaKernels.AttentionWithoutTensorCores:CudaKernels.CrossEntropy:CudaKernels.Argmax:CudaKernels.GraphReplayAcrossPositions:CudaKernels.GroupedGemv:CudaKernels.FusedRmsNormGemv:CudaKernels.GemvEpilogues:CudaKernels.SplitAddRmsNormGemv:CudaKernels.GemvSwiGluPair:CudaKernels.GemvRowKernel:CudaInt8.GroupedGemvs:CudaInt8.WeightOnlyTensorCoreRange:CudaKernels.PickDrawsWhatTheHostDraws' 2>&1 \
        | grep -E "ERROR SUMMARY|RACECHECK SUMMARY|========= |PASSED|FAILED" | tail -40
      echo "racecheck rc=${PIPESTATUS[0]}"
    } 2>&1 | tee "$OUT/sanitizer.log"
    RES[sanitize]="$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|rc=' "$OUT/sanitizer.log" | tr '\n' ' ')"
  fi
fi

if has bench; then
  stamp "bench"
  M=/tmp/bmsys-gpu/llama-6.7b
  python3 bench/make_model.py "$M" >/dev/null
  timeout ${BENCH_TIMEOUT:-300} "$BIN/bmsys-bench" --artifact "$G/artifacts/llama-6.7b.bmsys" --weights "$M/model.safetensors" \
    --dtype bf16 --prefill 2048 --prompt 16 --new 128 --trace "$OUT/decode_trace.json" --out "$OUT/bench.json" \
    ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log"
  RES[bench]="rc=${PIPESTATUS[0]}"
fi

if has peer; then
  stamp "peer"
  timeout ${PEER_TIMEOUT:-300} python3 bench/peers/peer_decode_compiled.py --tokens 128 --out "$OUT/peer.json" \
    ${PEER_ARGS:-} 2>&1 | grep -v -E "Warning|warn\(" | tail -5 | tee -a "$OUT/bench.log"
  RES[peer]="rc=${PIPESTATUS[0]}"
fi

if has int8; then
  # Issue 6, in one run on one GPU (artifacts: scripts/gpu/prepare.sh bench int8):
  #  - INT8 GEMM 8192^3 and decode GEMVs against bf16, pinned host -> device bandwidth;
  #  - fully resident decode, batch 1: weight-only INT8 against bf16 (target 1.8x) and
  #    against its byte bound (weight bytes a step reads / measured device copy bandwidth);
  #  - INT8 + bmsys-memory-schedule for a 6 GiB budget: decode against the PCIe bound
  #    (bytes streamed per token / the pinned H2D bandwidth measured above; target 80%)
  #    and against HF accelerate's offload at 6 GiB (target 40x).
  # Prints one JSON line per result ({"metric": ...}) and a readable summary; all in
  # $OUT/int8.json and int8.log. Weights are random, filled on the device (make_model.py
  # writes sparse headers; swapped layers' host copies read the holes: zeros).
  stamp "int8"
  M=/tmp/bmsys-gpu/llama-6.7b
  I=/tmp/bmsys-gpu/int8
  rm -rf "$I" && mkdir -p "$I"
  python3 bench/make_model.py "$M" --int8 >/dev/null
  {
    echo "== INT8 GEMM 8192^3 / decode GEMVs against bf16, pinned host -> device bandwidth"
    timeout 300 "$BIN/bmsys-bench-int8" --out "$I/kernels.json"
    echo "== fully resident decode, batch 1: bf16 (with the ceilings), then weight-only INT8"
    BA="--weights $M --dtype bf16 --prefill 0 --prompt 16 --new 128 --no-variants"
    timeout 300 "$BIN/bmsys-bench" --artifact "$G/artifacts/llama-6.7b.bmsys" $BA --out "$I/bf16.json" |
      grep -E "^ceilings|^decode|memory plan"
    if [ -f "$G/artifacts/llama-6.7b-w8.bmsys" ]; then
      timeout 300 "$BIN/bmsys-bench" --artifact "$G/artifacts/llama-6.7b-w8.bmsys" $BA --skip-ceilings --out "$I/w8.json" |
        grep -E "^decode|memory plan"
    else
      echo "llama-6.7b-w8.bmsys missing: run scripts/gpu/prepare.sh bench int8"
    fi
    if [ -f "$G/artifacts/llama-6.7b-w8-6g.bmsys" ]; then
      echo "== INT8 + memory schedule for a 6 GiB budget (bmsys-memory-schedule), batch 1"
      cat "$G/artifacts/llama-6.7b-w8-6g.schedule.txt"
      # An 8-token prompt: up to 8 rows run the INT8 GEMV, so no weight is dequantized
      # into kernel scratch and the device holds what the plan counted.
      timeout 400 "$BIN/bmsys-bench" --artifact "$G/artifacts/llama-6.7b-w8-6g.bmsys" \
        --weights $M --dtype bf16 --prefill 0 --prompt 8 --new 32 --no-variants --skip-ceilings --out "$I/sched.json" |
        grep -E "^decode|memory"
    fi
    # (360 s by default, so that the whole stage fits one 10-minute call.)
    echo "== HF accelerate offload, 6 GiB budget (fp16)"
    timeout ${PEER_OFFLOAD_TIMEOUT:-360} python3 bench/peers/peer_offload_infer.py --budget-gib 6 --tokens 8 \
      --out "$I/peer.json" 2>&1 | grep -v -E "Warning|warn\(" | tail -3
    echo "== results"
    python3 bench/int8_summary.py "$I" --out "$OUT/int8.json"
  } 2>&1 | tee "$OUT/int8.log"
  RES[int8]="$(grep -E '\(target' "$OUT/int8.log" | sed -E 's/^ +//; s/  +/: /' | tr '\n' ';')"
fi

if has dist; then
  stamp "dist"
  D=$G/artifacts/dist
  W=/tmp/bmsys-gpu/dist
  rm -rf "$W" && mkdir -p "$W"
  RUN="$BIN/bmsys-run"
  TR="--device cuda --data $D/tokens.bin --batch 4 --seq 32 --steps 10 --weights test/data/llama-tiny/model.safetensors"
  # Max |loss - reference| of two metrics files; "FAIL" when above 1e-3 or the steps differ.
  cmp_losses() {
    python3 - "$1" "$2" <<'PY'
import json, sys
l = [[json.loads(x)["loss"] for x in open(f) if x.strip()] for f in sys.argv[1:3]]
d = max(abs(a - b) for a, b in zip(*l)) if l[0] and len(l[0]) == len(l[1]) else float("inf")
print(f"{'ok' if d <= 1e-3 else 'FAIL'}: max |loss - one rank| = {d:.2e} over {len(l[0])} steps")
PY
  }
  {
    echo "== NCCL communicator, collective kernels, a missing rank (bmsys-cuda-tests Nccl.*)"
    timeout 240 "$BIN/bmsys-cuda-tests" --gtest_color=no --gtest_filter='Nccl.*' 2>&1 |
      grep -E '^\[ +(OK|FAILED|SKIPPED|PASSED) +\]|Failure|Expected|Which is|error|skipped' | head -40
    echo "== golden tiny Llama, 10 AdamW steps, f32 (no TF32): one GPU"
    timeout 180 "$RUN" train "$D/single.bmsys" $TR --metrics "$W/single.jsonl" 2>"$W/single.log"
    echo "one rank: rc=$?"; grep -E "device:|error" "$W/single.log" | head -3
    python3 test/tools/check_losses.py "$W/single.jsonl" --ref test/data/llama-tiny/golden.safetensors:train.losses --atol 1e-3 | tail -2
    for s in 0 1 2 3; do
      timeout 240 "$RUN" train "$D/z$s.bmsys" --nproc 2 --comm-timeout 60 $TR --metrics "$W/z$s.jsonl" 2>"$W/z$s.log"
      rc=$?
      echo "ZeRO-$s on 2 GPUs (NCCL): rc=$rc, $(cmp_losses "$W/z$s.jsonl" "$W/single.jsonl")"
      [ $rc = 0 ] || grep -E "error" "$W/z$s.log" | head -5
    done
    echo "== the same with optimizer offload (bmsys-offload: shards' masters and AdamW state on the host)"
    for s in 0 1 2 3; do
      [ -f "$D/zo$s.bmsys" ] || { echo "ZeRO-$s + offload: no artifact (prepare.sh without bmsys-offload)"; continue; }
      timeout 240 "$RUN" train "$D/zo$s.bmsys" --nproc 2 --comm-timeout 60 $TR --metrics "$W/zo$s.jsonl" 2>"$W/zo$s.log"
      rc=$?
      echo "ZeRO-$s + offload on 2 GPUs (NCCL): rc=$rc, $(cmp_losses "$W/zo$s.jsonl" "$W/single.jsonl")"
      [ $rc = 0 ] || grep -E "error" "$W/zo$s.log" | head -5
    done
    echo "== a killed rank (--nproc: the launcher names it, stops the other)"
    T0=$(date +%s)
    env BMSYS_TEST_KILL_RANK=1 BMSYS_TEST_KILL_STEP=3 timeout 120 "$RUN" train "$D/z2.bmsys" --nproc 2 --comm-timeout 10 $TR >"$W/killed.log" 2>&1
    echo "rc=$? after $(( $(date +%s) - T0 ))s"; grep -E "error|KILL" "$W/killed.log" | head -5
    echo "== a killed rank without a launcher (torchrun-style): rank 0 names it within --comm-timeout 10"
    PORT=$(python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
    T0=$(date +%s)
    env MASTER_ADDR=127.0.0.1 MASTER_PORT=$PORT WORLD_SIZE=2 RANK=1 LOCAL_RANK=1 BMSYS_TEST_KILL_RANK=1 BMSYS_TEST_KILL_STEP=3 \
      timeout 120 "$RUN" train "$D/z3.bmsys" --comm-timeout 10 $TR >"$W/r1.log" 2>&1 &
    P1=$!
    env MASTER_ADDR=127.0.0.1 MASTER_PORT=$PORT WORLD_SIZE=2 RANK=0 LOCAL_RANK=0 BMSYS_TEST_KILL_RANK=1 BMSYS_TEST_KILL_STEP=3 \
      timeout 120 "$RUN" train "$D/z3.bmsys" --comm-timeout 10 $TR >"$W/r0.log" 2>&1
    echo "rank 0: rc=$? after $(( $(date +%s) - T0 ))s"; grep -E "error" "$W/r0.log" | head -3
    wait $P1; echo "rank 1: rc=$?"; grep -E "KILL" "$W/r1.log" | head -2
    echo "== a hung rank (--nproc): the other names it after --comm-timeout 5"
    T0=$(date +%s)
    env BMSYS_TEST_KILL_RANK=1 BMSYS_TEST_KILL_STEP=2 BMSYS_TEST_HANG=1 timeout 120 "$RUN" train "$D/z3.bmsys" --nproc 2 --comm-timeout 5 $TR >"$W/hung.log" 2>&1
    echo "rc=$? after $(( $(date +%s) - T0 ))s"; grep -E "error|KILL" "$W/hung.log" | head -5
    echo "== tensor parallelism (NCCL groups; vocab-parallel embedding and cross-entropy; docs/distributed.md)"
    if [ -f "$D/tp2.bmsys" ]; then
      timeout 240 "$RUN" train "$D/tp2.bmsys" --nproc 2 --comm-timeout 60 $TR --metrics "$W/tp2.jsonl" \
        --save "$W/tp2-ckpt" 2>"$W/tp2.log"
      rc=$?
      echo "TP=2 on 2 GPUs (NCCL): rc=$rc, $(cmp_losses "$W/tp2.jsonl" "$W/single.jsonl")"
      [ $rc = 0 ] || grep -E "error" "$W/tp2.log" | head -5
      # The checkpoint is whole (slices gathered over the group): the golden final weights.
      python3 test/tools/compare.py "$W/tp2-ckpt/model.safetensors" test/data/llama-tiny/golden.safetensors \
        --prefix train.final. --rtol 1e-3 | tail -1
      # 5 steps on TP=2, saved, resumed on one GPU up to step 10.
      timeout 240 "$RUN" train "$D/tp2.bmsys" --nproc 2 --comm-timeout 60 ${TR/--steps 10/--steps 5} \
        --metrics "$W/tp2a.jsonl" --save "$W/tp2-5" 2>"$W/tp2a.log" &&
        timeout 180 "$RUN" train "$D/single.bmsys" $TR --resume "$W/tp2-5" --metrics "$W/tp2b.jsonl" 2>"$W/tp2b.log"
      rc=$?
      cat "$W/tp2a.jsonl" "$W/tp2b.jsonl" >"$W/tp2ab.jsonl" 2>/dev/null
      echo "TP=2 (steps 1-5) -> 1 GPU (steps 6-10): rc=$rc, $(cmp_losses "$W/tp2ab.jsonl" "$W/single.jsonl")"
      [ $rc = 0 ] || grep -hE "error" "$W/tp2a.log" "$W/tp2b.log" | head -5
      if [ "$NGPU" -ge 4 ] && [ -f "$D/tp2z1.bmsys" ]; then
        timeout 240 "$RUN" train "$D/tp2z1.bmsys" --nproc 4 --comm-timeout 60 $TR --metrics "$W/tp2z1.jsonl" 2>"$W/tp2z1.log"
        rc=$?
        echo "TP=2 x ZeRO-1 DP=2 on 4 GPUs (NCCL): rc=$rc, $(cmp_losses "$W/tp2z1.jsonl" "$W/single.jsonl")"
        [ $rc = 0 ] || grep -E "error" "$W/tp2z1.log" | head -5
      else
        echo "TP=2 x ZeRO-1 DP=2: skipped ($NGPU GPUs; needs 4)"
      fi
    else
      echo "TP=2: no artifact (scripts/gpu/prepare.sh dist with a compiler that has bmsys-tensor-parallel)"
    fi
    echo "== pipeline parallelism (NCCL point-to-point, 2 micro-batches, 1F1B; docs/distributed.md)"
    # More hardware queues than streams (compute, copy, collectives, a channel per
    # neighbour and direction, NCCL's own): no false dependency between a blocked
    # send and the receive that would unblock the peer.
    export CUDA_DEVICE_MAX_CONNECTIONS=${CUDA_DEVICE_MAX_CONNECTIONS:-32}
    if [ -f "$D/pp2.bmsys" ]; then
      timeout 240 "$RUN" train "$D/pp2.bmsys" --nproc 2 --comm-timeout 60 $TR --metrics "$W/pp2.jsonl" \
        --save "$W/pp2-ckpt" 2>"$W/pp2.log"
      rc=$?
      echo "PP=2 on 2 GPUs (NCCL): rc=$rc, $(cmp_losses "$W/pp2.jsonl" "$W/single.jsonl")"
      [ $rc = 0 ] || grep -E "error" "$W/pp2.log" | head -5
      # The checkpoint is whole (each tensor broadcast from its stage): the golden final weights.
      python3 test/tools/compare.py "$W/pp2-ckpt/model.safetensors" test/data/llama-tiny/golden.safetensors \
        --prefix train.final. --rtol 1e-3 | tail -1
      if [ "$NGPU" -ge 4 ]; then
        timeout 240 "$RUN" train "$D/pp2dp2.bmsys" --nproc 4 --comm-timeout 60 $TR --metrics "$W/pp2dp2.jsonl" 2>"$W/pp2dp2.log"
        rc=$?
        echo "PP=2 x ZeRO-1 DP=2 on 4 GPUs (NCCL): rc=$rc, $(cmp_losses "$W/pp2dp2.jsonl" "$W/single.jsonl")"
        [ $rc = 0 ] || grep -E "error" "$W/pp2dp2.log" | head -5
      else
        echo "PP=2 x ZeRO-1 DP=2: skipped ($NGPU GPUs; needs 4: nvidia-h200-x4)"
      fi
      echo "== a hung pipeline stage (--nproc): the other names it after --comm-timeout 5"
      T0=$(date +%s)
      env BMSYS_TEST_KILL_RANK=1 BMSYS_TEST_KILL_STEP=2 BMSYS_TEST_HANG=1 timeout 120 "$RUN" train "$D/pp2.bmsys" --nproc 2 \
        --comm-timeout 5 $TR >"$W/pp-hung.log" 2>&1
      echo "rc=$? after $(( $(date +%s) - T0 ))s"; grep -E "error|KILL" "$W/pp-hung.log" | head -5
    else
      echo "PP=2: no artifact (prepare.sh dist without bmsys-pipeline-parallel)"
    fi
  } 2>&1 | tee "$OUT/dist.log"
  RES[dist]="$(grep -cE '^ZeRO-[0-3] on 2 GPUs \(NCCL\): rc=0, ok' "$OUT/dist.log")/4 ZeRO stages within 1e-3; $(grep -cE '^ZeRO-[0-3] \+ offload on 2 GPUs \(NCCL\): rc=0, ok' "$OUT/dist.log")/4 with offload; PP: $(grep -cE '^PP=2.*: rc=0, ok' "$OUT/dist.log") within 1e-3; $(grep -E '^\[  (PASSED|FAILED)' "$OUT/dist.log" | tr '\n' ' ')"
fi

if has fsdp; then
  stamp "fsdp"
  timeout ${FSDP_TIMEOUT:-1500} python3 bench/fsdp_bench.py --bin "$BIN/bmsys-run" --artifacts "$G/artifacts/fsdp" \
    --out "$OUT/fsdp.json" --trace "$OUT/fsdp_trace.json" ${FSDP_ARGS:-} 2>&1 | tee "$OUT/fsdp.log"
  RES[fsdp]="rc=${PIPESTATUS[0]}"
fi

if has fit; then
  # Auto-fit checks (docs/autofit.md): bmsys-fit's predicted peak memory and step time
  # against measurements, for the grid bench/fit/prepare_fit.sh compiled (not in the
  # default stages; the 2-GPU configurations need nvidia-h200-x2).
  stamp "fit"
  if [ ! -f "$G/fit/grid.json" ]; then
    FITRES="build-gpu/fit/grid.json missing: run bench/fit/prepare_fit.sh where the compiler is"
  else
    FITONLY=""
    [ "$(nvidia-smi -L 2>/dev/null | grep -c "^GPU")" -lt 2 ] && FITONLY=$(python3 -c "import json,sys; print(','.join(c['name'] for c in json.load(open(sys.argv[1])) if c['gpus'] <= 1))" "$G/fit/grid.json")
    timeout ${FIT_TIMEOUT:-1200} python3 bench/fit/fit_check.py --fit "$G/fit" --bin "$BIN" --out "$OUT/fit.json" \
      ${FITONLY:+--only $FITONLY} 2>&1 | grep -v '^+ ' | tee "$OUT/fit.log"
    FITRES="rc=${PIPESTATUS[0]} $(grep -E 'within|chose' "$OUT/fit.log" | tr '\n' ' ')"
  fi
  printf '%-9s %s\n' fit "$FITRES" | tee -a "$OUT/summary.txt"
fi

stamp "done"
if has adamw; then
  # CPU AdamW (issue 5 item 5): bmsys-bench-adamw on every instruction set against
  # torch.optim.AdamW (foreach, for-loop, fused) on all cores; target >= 5x PyTorch.
  stamp "adamw"
  timeout ${ADAMW_TIMEOUT:-300} python3 bench/adamw/adamw_torch.py --bench "$BIN/bmsys-bench-adamw" \
    --threads "$(nproc)" --json "$OUT/adamw.json" 2>&1 | tee /tmp/bmsys-gpu/adamw.log
  RES[adamw]="rc=${PIPESTATUS[0]} $(grep -E '^bmsys-.* / torch-' /tmp/bmsys-gpu/adamw.log)"
fi

if has gemvlab; then
  # The decode GEMV's design space (bench/gemv_lab.cu; docs/cuda.md "Session 7").
  stamp "gemvlab"
  timeout ${GEMVLAB_TIMEOUT:-120} "$BIN/bmsys-gemv-lab" 2>&1 | tee "$OUT/gemvlab.log"
  rc=${PIPESTATUS[0]}
  python3 scripts/gpu/check_sass.py "$BIN/bmsys-gemv-lab" >>"$OUT/gemvlab.log" 2>&1
  RES[gemvlab]="rc=$rc $(grep -E '^checks|^sass:' "$OUT/gemvlab.log" | tr '\n' ' ')"
fi

if has layerlab; then
  # A persistent decode-layer kernel's GEMV chain (bench/decode_layer_lab.cu;
  # docs/inference.md, "What 1.8x asks").
  stamp "layerlab"
  timeout ${LAYERLAB_TIMEOUT:-120} "$BIN/bmsys-decode-layer-lab" 2>&1 | tee "$OUT/layerlab.log"
  RES[layerlab]="rc=${PIPESTATUS[0]} $(grep -E 'bit for bit' "$OUT/layerlab.log")"
fi

if has ab; then
  # A change's effect on decode speed: only numbers from one run compare (docs/cuda.md).
  stamp "ab"
  if [ ! -x "$BIN/bmsys-bench-b" ]; then
    RES[ab]="rc=2 no bmsys-bench-b: run scripts/gpu/prepare.sh with AB_BENCH=path/to/bmsys-bench"
  else
    M=/tmp/bmsys-gpu/llama-6.7b
    [ -d "$M" ] || python3 bench/make_model.py "$M" --int8 >/dev/null
    BA="--weights $M --dtype bf16 --prefill 0 --prompt 16 --new 128 --no-variants --skip-ceilings"
    for art in llama-6.7b-w8 llama-6.7b; do
      for i in $(seq 1 "${AB_RUNS:-2}"); do
        for b in bmsys-bench bmsys-bench-b; do
          # The figure the int8 stage reports: decode fed on the device (the token stays on
          # the GPU; the plain "decode:" line also times the host's sampling loop).
          log=$(timeout 300 "$BIN/$b" --artifact "$G/artifacts/$art.bmsys" $BA)
          tps=$(sed -n 's/^decode fed on the device: \([0-9.]*\) tok\/s.*/\1/p' <<<"$log")
          host=$(sed -n 's/^decode: \([0-9.]*\) tok\/s.*/\1/p' <<<"$log")
          echo "$art $b run $i: ${tps:-failed} tok/s fed on the device (host loop ${host:-?})"
        done
      done
    done | tee "$OUT/ab.log"
    RES[ab]="$(awk '{k=$1" "$2; s[k]+=$5; n[k]++} END {for (k in s) printf "%s %.1f; ", k, s[k]/n[k]}' "$OUT/ab.log" | sort)"
  fi
fi

python3 - "$OUT" <<'PY' | tee -a "$OUT/summary.txt"
import json, os, sys
out = sys.argv[1]
def load(n):
    try:
        return json.load(open(os.path.join(out, n)))
    except Exception:
        return None
b, p = load("bench.json"), load("peer.json")
rows = []
i8 = load("int8.json") or {}
for m in i8.get("metrics", []):
    for k, v in m.get("text", []):
        rows.append((k, v))
if b:
    c = b.get("ceilings", {})
    d = b.get("decode", {})
    rows += [("device copy bandwidth (read+write)", f'{c.get("copy_GBps", 0):.0f} GB/s'),
             ("bf16 GEMM 8192^3 (cuBLASLt)", f'{c.get("bf16_gemm_TFLOPs", 0):.0f} TFLOP/s'),
             ("GEMV 11008x4096 bf16 weight stream", f'{c.get("gemv_weight_GBps", 0):.0f} GB/s'),
             ("weights (bf16)", f'{b.get("weight_bytes", 0)/1e9:.2f} GB'),
             ("decode bound = weights / copy bw", f'{d.get("bound_tok_s", 0):.1f} tok/s'),
             ("bmsys decode batch 1 (bmsys-run path)", f'{d.get("tok_s", 0):.1f} tok/s = {100*d.get("share_of_bound", 0):.1f}% of bound'),
             ("  device time per step", f'{d.get("step_device_ms", 0):.3f} ms = {100*d.get("device_share_of_bound", 0):.1f}% of bound'),
             ("  host time per step (executor, copies)", f'{d.get("host_ms_per_step", 0):.3f} ms'),
             ("  of which the backend's launch queue", f'{d.get("backend_queue_us_per_step", 0):.0f} us')]
    for shp, v in c.get("gemv_GBps", {}).items():
        rows.append((f"  GEMV {shp} GB/s pipelined/row/cuBLASLt", f'{v["pipelined"]:.0f} / {v["row"]:.0f} / {v["cublaslt"]:.0f}'))
    pf = b.get("prefill")
    if pf:
        rows.append((f'bmsys prefill {pf["tokens"]} tokens', f'{pf["device_ms"]:.2f} ms, {pf["TFLOPs"]:.0f} TFLOP/s = {100*pf.get("share_of_gemm", 0):.1f}% of GEMM rate'))
    for v in b.get("variants", []):
        rows.append((f'  decode with {v["off"]}', f'{v["tok_s"]:.1f} tok/s (device {v["step_device_ms"]:.3f} ms), tokens {"same" if v["same_tokens"] else "other rounding"}'))
if p:
    rows.append(("transformers eager decode", f'{p.get("decode_tok_s_eager", 0):.1f} tok/s'))
    if "decode_tok_s_static_compiled" in p:
        rows.append(("transformers static cache + compile", f'{p["decode_tok_s_static_compiled"]:.1f} tok/s'))
    if "prefill_ms" in p:
        rows.append(("transformers prefill", f'{p["prefill_ms"]:.2f} ms'))
    if b:
        best = max(p.get("decode_tok_s_static_compiled", 0), p.get("decode_tok_s_eager", 0))
        if best:
            rows.append(("bmsys decode / best transformers", f'{b["decode"]["tok_s"]/best:.2f}x'))
        if "prefill_ms" in p and b.get("prefill"):
            rows.append(("bmsys prefill speed / transformers", f'{p["prefill_ms"]/b["prefill"]["device_ms"]:.2f}x'))
w = max([len(r[0]) for r in rows] + [10])
print("=" * (w + 50))
for k, v in rows:
    print(f"{k:<{w}}  {v}")
PY
for k in tests sass e2e sanitize bench peer int8 dist fsdp adamw gemvlab layerlab ab; do
  [ -n "${RES[$k]:-}" ] && printf '%-9s %s\n' "$k" "${RES[$k]}" | tee -a "$OUT/summary.txt"
done
