#!/usr/bin/env bash
# Runs HERE (the machine with the compiler, no GPU): builds the CUDA runtime, compiles
# the artifacts the GPU tests and benchmarks use, and packs everything the GPU machine
# needs into build-gpu/ (git-ignored), to be sent with `run` as carry ["build-gpu"]:
#   build-gpu/carry.tar.gz   bin/ (the runtime binaries of PACK_BINS, stripped) and
#                            lib/ (the shared libraries the GPU image lacks: fmt, OpenBLAS,
#                            gfortran, quadmath, gomp)
#   build-gpu/artifacts/     llama-tiny.bmsys, gpt2-tiny.bmsys (golden models, with hidden
#                            states), llama-6.7b.bmsys (benchmark model: header-only weights)
# Then on the GPU machine: scripts/gpu/run_all.sh (see there).
#
#   scripts/gpu/prepare.sh [part...]
# Parts (default: all): golden (golden-model inference, training and INT8 artifacts, the
# memory-schedule test model), bench (the bf16 6.7B), int8 (the INT8 6.7B, resident and
# for a 6 GiB budget), dist, fsdp, tp4 and pp4 (not in the default: 4-GPU artifacts of
# bench/scaling.sh). The runtime binaries are always packed. For
# `run_all.sh int8` alone: `scripts/gpu/prepare.sh bench int8` (about a minute once the
# runtime is built: no weight is read or written).
# Env: BUILD (default build-cuda; BUILD=build COMPILER_BIN=build/bin reuse the README's
# build), COMPILER_BIN (default build-c/bin), JOBS (default 2),
# AB_BENCH (a second bmsys-bench to pack as bin/bmsys-bench-b, for run_all.sh ab),
# PACK_BINS (the runtime binaries to pack; default all below). A `run` carries at most 64
# MiB with the working tree, and every binary is about 23 MB stripped (22 MB packed is
# OpenBLAS and friends): for one stage pack only what it runs, e.g. PACK_BINS="bmsys-bench"
# with AB_BENCH for `ab`, or "bmsys-bench bmsys-bench-int8" for `int8`.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${BUILD:-build-cuda}
CBIN=${COMPILER_BIN:-build-c/bin}
JOBS=${JOBS:-2}
G=build-gpu
PARTS=" ${*:-golden bench int8 dist fsdp} "
want() { [[ $PARTS == *" $1 "* ]]; }
for p in $PARTS; do
  case $p in golden | bench | int8 | dist | fsdp | tp4 | pp4) ;; *) echo "prepare.sh: unknown part '$p' (golden bench int8 dist fsdp tp4 pp4)" >&2; exit 2 ;; esac
done

# to_artifact OUT [IN]: the bmsys_rt module IN (default: stdin) as the artifact OUT.
to_artifact() { "$CBIN/bmsys-translate" --bmsys-to-artifact "${2:--}" -o "$1"; }
# train_lowered SHAPES [bmsys-opt args...] [-- args after]: bmsys-opt with the given
# input and passes, then the passes bmsys-train-pipeline ends with (inline the blocks,
# bound the shapes to SHAPES, KV cache, canonicalize, lower to bmsys_rt, plan memory),
# then the args after `--`: the training pipelines written out pass by pass below.
train_lowered() {
  local shapes=$1 front=()
  shift
  while (($#)) && [[ $1 != -- ]]; do front+=("$1"); shift; done
  (($#)) && shift
  "$CBIN/bmsys-opt" "${front[@]}" --bmsys-inline-blocks "--bmsys-bound-shapes=$shapes" --bmsys-add-kv-cache \
    --canonicalize --bmsys-lower-to-rt --bmsys-plan-memory "$@"
}
# The benchmark training model of fsdp, pp4 and tp4: the Llama-shaped 0.94B of the FSDP2
# peer (hidden 2048, 16 layers, intermediate 5504, 16 heads, vocab 32000), header-only
# weights (bench/make_model.py; --random-weights) in a fresh $TMPM, imported as
# $TMPM/m.mlir; model_094b DIR also copies its config.json into DIR.
model_094b() {
  mkdir -p "$1"
  TMPM=$(mktemp -d)
  python3 bench/make_model.py "$TMPM/llama-0.94b" --hidden 2048 --layers 16 --inter 5504 --heads 16 --kv-heads 16 \
    --vocab 32000 --max-pos 2048 --dtype F32 >/dev/null
  "$CBIN/bmsys-import-hf" "$TMPM/llama-0.94b" -o "$TMPM/m.mlir"
  cp "$TMPM/llama-0.94b/config.json" "$1/config.json"
}
# train_variant NAME DIR OPTIONS: the 0.94B through bmsys-train-pipeline in bf16 (lr 1e-4,
# gradient clipping 1.0, max-seq 2048) with OPTIONS: DIR/NAME.bmsys, its memory report
# DIR/NAME.memory-report.txt; the lowered module stays in $TMPM/NAME.rt.mlir.
train_variant() {
  "$CBIN/bmsys-opt" "$TMPM/m.mlir" "--bmsys-train-pipeline=max-seq=2048 mixed-precision=bf16 lr=1e-4 max-grad-norm=1.0 $3 memory-report=1" \
    -o "$TMPM/$1.rt.mlir" > "$2/$1.memory-report.txt"
  to_artifact "$2/$1.bmsys" "$TMPM/$1.rt.mlir"
}
# tp_variant NAME DIR DEGREE ROWS [passes...]: the 0.94B with tensor parallelism DEGREE,
# checkpointing every block, bf16, ROWS x 2048 per rank and the passes (ZeRO) before the
# lowering. bmsys-train-pipeline has no tensor-parallel option: its passes, in its order,
# with bmsys-tensor-parallel first (it runs on the forward, before autodiff).
tp_variant() {
  local name=$1 dir=$2 degree=$3 rows=$4
  shift 4
  train_lowered "max-batch=$rows max-seq=2048" "$TMPM/m.mlir" --bmsys-tensor-parallel=degree=$degree \
    --bmsys-checkpoint=policy=every --bmsys-mixed-precision=dtype=bf16 --bmsys-autodiff \
    "--bmsys-optimizer=lr=1e-4 max-grad-norm=1.0" "$@" -- --bmsys-memory-report -o "$TMPM/$name.rt.mlir" \
    > "$dir/$name.memory-report.txt"
  to_artifact "$dir/$name.bmsys" "$TMPM/$name.rt.mlir"
}

# A fresh BUILD holds the runtime only; an existing one (BUILD=build, the README's build,
# compiler included) keeps its options and just gets the CUDA backend, so one tree need
# not be compiled twice.
if [ -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD" -DBMSYS_ENABLE_CUDA=ON >/dev/null
else
  cmake -S . -B "$BUILD" -G Ninja -DBMSYS_BUILD_COMPILER=OFF -DBMSYS_ENABLE_CUDA=ON >/dev/null
fi
ninja -C "$BUILD" -j"$JOBS" bmsys-run bmsys-cuda-tests bmsys-bench bmsys-bench-int8 bmsys-gemv-lab bmsys-decode-layer-lab

ninja -C "$BUILD" -j"$JOBS" bmsys-bench-adamw  # the CPU AdamW benchmark (run_all.sh stage adamw)

rm -rf "$G" && mkdir -p "$G/pack/bin" "$G/pack/lib" "$G/artifacts"
PACK_BINS=${PACK_BINS:-bmsys-run bmsys-cuda-tests bmsys-bench bmsys-bench-int8 bmsys-gemv-lab bmsys-decode-layer-lab bmsys-bench-adamw}
for b in $PACK_BINS; do
  [ -x "$BUILD/bin/$b" ] || { echo "prepare.sh: PACK_BINS names $b, which $BUILD/bin lacks" >&2; exit 2; }
  cp "$BUILD/bin/$b" "$G/pack/bin/" && strip "$G/pack/bin/$b"
done
# A/B (run_all.sh ab): AB_BENCH names a bmsys-bench built from another tree (a branch),
# packed as bmsys-bench-b.
if [ -n "${AB_BENCH:-}" ]; then
  cp "$AB_BENCH" "$G/pack/bin/bmsys-bench-b" && strip "$G/pack/bin/bmsys-bench-b"
fi
# Shared libraries outside glibc/libstdc++/CUDA that the binaries need.
for b in "$G"/pack/bin/*; do
  ldd "$b" | awk '/=> \// {print $3}'
done | sort -u | grep -v -E '/(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux)[.-]|libcublas|libcudart|libcuda\.|libnccl' |
  while read -r lib; do cp -L "$lib" "$G/pack/lib/"; done
tar -C "$G/pack" -czf "$G/carry.tar.gz" bin lib
rm -rf "$G/pack"

# Artifacts. The golden models keep their hidden states; weights are passed with
# --weights at run time (the recorded paths are this machine's).
if want golden; then
for m in llama-tiny gpt2-tiny; do
  "$CBIN/bmsys-import-hf" --hidden-states "test/data/$m" -o "$G/artifacts/$m.mlir"
  "$CBIN/bmsys-opt" --bmsys-infer-pipeline="max-batch=2 max-seq=64" "$G/artifacts/$m.mlir" -o "$G/artifacts/$m.rt.mlir"
  to_artifact "$G/artifacts/$m.bmsys" "$G/artifacts/$m.rt.mlir"
  rm "$G/artifacts/$m.mlir" "$G/artifacts/$m.rt.mlir"
done
# Training (bmsys-cuda-tests CudaTrain.*, run_all.sh e2e): the golden models' train_step
# with recipe.json's AdamW (10 steps at batch 4 x seq 32) in f32, and in bf16 and f16
# mixed precision with f32 master weights (f16: dynamic loss scaling).
# A compiler older than the training pipeline skips them with a warning (the GPU tests
# then skip, naming the missing artifact) rather than stopping the whole pack.
OPT_HELP=$("$CBIN/bmsys-opt" --help 2>&1 || true)
if [[ $OPT_HELP != *--bmsys-train-pipeline* ]]; then
  echo "prepare.sh: WARNING: $CBIN/bmsys-opt has no --bmsys-train-pipeline: training artifacts not compiled" >&2
else
  for m in llama-tiny gpt2-tiny; do
    "$CBIN/bmsys-import-hf" "test/data/$m" -o "$G/artifacts/$m.train.mlir"
    # (+ separates pipeline options within one variant; offload: bmsys-offload.)
    for v in train: train-bf16:mixed-precision=bf16 train-f16:mixed-precision=f16 \
             train-offload:offload=1 train-offload-bf16:mixed-precision=bf16+offload=1; do
      o=${v#*:}
      "$CBIN/bmsys-opt" "$G/artifacts/$m.train.mlir" \
        --bmsys-train-pipeline="max-batch=4 max-seq=32 lr=1e-3 beta1=0.9 beta2=0.95 eps=1e-8 weight-decay=0.1 max-grad-norm=1.0 ${o//+/ }" |
        to_artifact "$G/artifacts/$m.${v%%:*}.bmsys"
    done
    rm "$G/artifacts/$m.train.mlir"
  done
fi
# INT8 (bmsys-quantize) golden models for bmsys-cuda-tests' CudaInt8.GoldenTop1:
# artifacts/<model>-int8/{w8,w8a8}.bmsys (weight-only / INT8 activations) beside the
# float and the INT8 weight files (a few hundred KB).
for m in llama-tiny gpt2-tiny; do
  D="$G/artifacts/$m-int8"
  mkdir -p "$D"
  cp "test/data/$m/model.safetensors" "$D/"
  "$CBIN/bmsys-import-hf" "test/data/$m" -o "$D/m.mlir"
  for v in w8:float w8a8:int8; do
    "$CBIN/bmsys-opt" --bmsys-infer-pipeline="max-batch=2 max-seq=64 quantize=int8 activations=${v#*:} quantize-output=$D/model.int8.safetensors" \
      "$D/m.mlir" | to_artifact "$D/${v%%:*}.bmsys"
  done
  rm "$D/m.mlir"
done
# Memory schedule (CudaSchedule.SameTokensAsUnscheduled): a 6-layer random Llama,
# unscheduled and with 4 of its 6 layers swapped through 2 slots.
S="$G/artifacts/schedule"
mkdir -p "$S"
python3 test/tools/make_tiny_llama.py "$S" --layers 6
"$CBIN/bmsys-import-hf" "$S" -o "$S/m.mlir"
"$CBIN/bmsys-opt" --bmsys-infer-pipeline="max-batch=1 max-seq=32" "$S/m.mlir" -o "$S/m.rt.mlir"
to_artifact "$S/plain.bmsys" "$S/m.rt.mlir"
"$CBIN/bmsys-opt" "--bmsys-memory-schedule=budget=240000 workspace=0 report=$S/schedule.txt" "$S/m.rt.mlir" |
  to_artifact "$S/sched.bmsys"
rm "$S/m.mlir" "$S/m.rt.mlir"
fi  # golden
# The benchmark model: Llama-shaped 6.7B (hidden 4096, 32 layers, intermediate 11008,
# 32 heads, vocab 32000). Only its safetensors header is read here; the GPU machine
# recreates the same header with a sparse data region (bench/make_model.py).
if want bench || want int8; then
TMPM=$(mktemp -d)
python3 bench/make_model.py "$TMPM/llama-6.7b" >/dev/null
"$CBIN/bmsys-import-hf" "$TMPM/llama-6.7b" -o "$TMPM/m.mlir"
if want bench; then
  "$CBIN/bmsys-opt" --bmsys-infer-pipeline="max-batch=1 max-seq=4096 memory-report=1" "$TMPM/m.mlir" -o "$TMPM/m.rt.mlir" \
    | tee "$G/artifacts/llama-6.7b.memory-report.txt"
  to_artifact "$G/artifacts/llama-6.7b.bmsys" "$TMPM/m.rt.mlir"
fi
# INT8 (run_all.sh int8): the same model with weight-only INT8 linears. Nothing is
# quantized here: bmsys-quantize header-only declares the tensors a quantization would
# write (<key>_int8 I8 [out, in], <key>_scale F32 [out]; the IR is the same) and writes
# model.int8.safetensors as that header over a hole. The GPU machine recreates the header
# with make_model.py --int8 and fills the weights on the device (--random-weights); its
# executor refuses a missing tensor or another shape or dtype, and the check below makes
# sure here that make_model.py --int8 declares exactly the tensors the artifacts read.
#   llama-6.7b-w8     fully resident, max-seq 4096 like the bf16 artifact;
#   llama-6.7b-w8-6g  max-seq 256 and bmsys-memory-schedule (the pipeline's memory-budget)
#                     for 6 GiB with weights run as bf16; the workspace (192 MiB) covers
#                     cuBLASLt, upload staging and kernel scratch (decode GEMVs need none).
if want int8; then
  Q="max-batch=1 quantize=int8 activations=float quantize-header-only=1 quantize-output=$TMPM/q/model.int8.safetensors"
  mkdir -p "$TMPM/q" "$TMPM/ref"
  "$CBIN/bmsys-opt" "$TMPM/m.mlir" --bmsys-infer-pipeline="$Q max-seq=4096" | to_artifact "$G/artifacts/llama-6.7b-w8.bmsys"
  "$CBIN/bmsys-opt" "$TMPM/m.mlir" --bmsys-infer-pipeline="$Q max-seq=256 memory-budget=6GiB memory-dtype=bf16 memory-workspace=192MiB schedule-report=$G/artifacts/llama-6.7b-w8-6g.schedule.txt" |
    to_artifact "$G/artifacts/llama-6.7b-w8-6g.bmsys"
  cat "$G/artifacts/llama-6.7b-w8-6g.schedule.txt"
  python3 bench/make_model.py "$TMPM/ref" --int8 >/dev/null
  python3 - "$TMPM/q/model.int8.safetensors" "$TMPM/ref/model.int8.safetensors" <<'PY'
import json, struct, sys
def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return {k: (v["dtype"], v["shape"]) for k, v in json.loads(f.read(n)).items() if k != "__metadata__"}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
if a != b:
    sys.exit(f"prepare.sh: make_model.py --int8 declares other INT8 tensors than bmsys-quantize: "
             f"{sorted(set(a.items()) ^ set(b.items()))[:6]}")
print(f"prepare.sh: make_model.py --int8 declares the {len(a)} INT8 tensors of the artifacts")
PY
fi
rm -rf "$TMPM"
fi  # bench, int8
# Distributed training (scripts/gpu/run_all.sh stages dist and fsdp; docs/distributed.md).
# dist: the golden tiny Llama in f32, one rank and ZeRO 0-3 on 2 ranks (the lit test
# distributed_zero's passes), pipeline parallel 2 (and x ZeRO-1 DP=2), and its 128-token
# golden batch as a token file.
if want dist; then
D="$G/artifacts/dist"
mkdir -p "$D"
"$CBIN/bmsys-import-hf" test/data/llama-tiny -o "$D/m.mlir"
python3 test/tools/write_tokens.py test/data/llama-tiny/golden.safetensors train.input_ids "$D/tokens.bin"
# Every dist artifact: AdamW as recipe.json's, batch 4 x seq 32 per rank (pp2dp2: micro-batches of 1 row).
OPTIM="--bmsys-optimizer=lr=1e-3 beta2=0.95 weight-decay=0.1 max-grad-norm=1.0"
SHAPES="max-batch=4 max-seq=32"
train_lowered "$SHAPES" "$D/m.mlir" --bmsys-autodiff "$OPTIM" | to_artifact "$D/single.bmsys"
for s in 0 1 2 3; do
  train_lowered "$SHAPES" "$D/m.mlir" --bmsys-autodiff "$OPTIM" "--bmsys-zero=stage=$s ranks=2" | to_artifact "$D/z$s.bmsys"
  # The same with optimizer offload (bmsys-offload: each rank's shard on the host).
  train_lowered "$SHAPES" "$D/m.mlir" --bmsys-autodiff "$OPTIM" "--bmsys-zero=stage=$s ranks=2" --bmsys-offload |
    to_artifact "$D/zo$s.bmsys"
done
# Tensor parallelism (the lit test distributed_tp's passes): tp2, TP=2 on 2 GPUs; tp2z1,
# TP=2 x ZeRO-1 over 2 data-parallel ranks (4 GPUs, 2 rows each).
train_lowered "$SHAPES" "$D/m.mlir" --bmsys-tensor-parallel=degree=2 --bmsys-autodiff "$OPTIM" | to_artifact "$D/tp2.bmsys"
train_lowered "$SHAPES" "$D/m.mlir" --bmsys-tensor-parallel=degree=2 --bmsys-autodiff "$OPTIM" "--bmsys-zero=stage=1 ranks=2" |
  to_artifact "$D/tp2z1.bmsys"
# Pipeline parallelism (the lit test distributed_pp's passes): pp2, 2 stages of one layer,
# 2 micro-batches of 2 rows (1F1B, NCCL point-to-point); pp2dp2, the same with ZeRO-1
# over 2 data-parallel ranks per stage (4 GPUs; micro-batches of 1 row).
PP=("--bmsys-pipeline-parallel=stages=2 micro-batches=2" --bmsys-autodiff "$OPTIM" --bmsys-pipeline-schedule)
train_lowered "max-batch=2 max-seq=32" "$D/m.mlir" "${PP[@]}" | to_artifact "$D/pp2.bmsys"
train_lowered "max-batch=1 max-seq=32" "$D/m.mlir" "${PP[@]}" "--bmsys-zero=stage=1 ranks=2" | to_artifact "$D/pp2dp2.bmsys"
rm "$D/m.mlir"
fi  # dist
# fsdp: the 0.94B (model_094b) in bf16 mixed precision with f32 master weights, AdamW,
# 2 ranks of micro-batch 4 x 2048: ZeRO-3 with and without per-block checkpointing,
# ZeRO-2 and ZeRO-1 with it (bench/fsdp_bench.py runs them).
if want fsdp; then
F="$G/artifacts/fsdp"
model_094b "$F"
# tp2-ckpt: tensor parallel 2 with checkpointing, no ZeRO: both GPUs share the rows, so
# the global batch of 8 x 2048 (4 per GPU, as the ZeRO variants) is one rank's batch.
tp_variant tp2-ckpt "$F" 2 8
# z3-ckpt-pf9: the gathers issued one block (9 parameters) ahead (bmsys-zero prefetch;
# only with a compiler that has the option).
VARIANTS="z3-ckpt:3:every:0 z3-none:3:none:0 z2-ckpt:2:every:0 z1-ckpt:1:every:0"
"$CBIN/bmsys-opt" --help | grep -c zero-prefetch >/dev/null && VARIANTS="z3-ckpt-pf9:3:every:9 $VARIANTS"
for v in $VARIANTS; do
  IFS=: read -r name stage ck pf <<<"$v"
  PF=$([ "$pf" = 0 ] || echo " zero-prefetch=$pf")
  train_variant "$name" "$F" "max-batch=4 checkpoint=$ck zero-stage=$stage ranks=2$PF"
done
# z3-ckpt-pf9-nofuse: z3-ckpt-pf9 without bmsys-fuse-elementwise (fuse=0), to measure
# the fused kernels against the unfused ones in one run (FSDP_ARGS="--variants
# z3-ckpt-pf9,z3-ckpt-pf9-nofuse"); *.kernel-bytes.txt: bench/kernel_bytes.py's bytes
# and launches per kernel of both. Only with a compiler that has the pass.
if "$CBIN/bmsys-opt" --help | grep -c bmsys-fuse-elementwise >/dev/null; then
  "$CBIN/bmsys-opt" "$TMPM/m.mlir" "--bmsys-train-pipeline=max-batch=4 max-seq=2048 checkpoint=every mixed-precision=bf16 lr=1e-4 max-grad-norm=1.0 zero-stage=3 ranks=2 zero-prefetch=9 fuse=0" \
    -o "$TMPM/z3-ckpt-pf9-nofuse.rt.mlir"
  to_artifact "$F/z3-ckpt-pf9-nofuse.bmsys" "$TMPM/z3-ckpt-pf9-nofuse.rt.mlir"
  for n in z3-ckpt-pf9 z3-ckpt-pf9-nofuse; do
    python3 bench/kernel_bytes.py "$TMPM/$n.rt.mlir" --batch 4 --seq 2048 > "$F/$n.kernel-bytes.txt"
  done
fi
# pp2-ckpt: pipeline parallel 2 (8 layers per GPU) with checkpointing, no ZeRO: the global
# batch of 8 (4 x 2048 per GPU) as 8 micro-batches of 1 x 2048 in the 1F1B order (bubble
# (P-1)/(M+P-1) = 1/9). Only with a compiler whose train pipeline has pipeline-stages.
if "$CBIN/bmsys-opt" --help | grep -c pipeline-stages >/dev/null; then
  train_variant pp2-ckpt "$F" "max-batch=1 checkpoint=every pipeline-stages=2 micro-batches=8"
fi
rm -rf "$TMPM"
fi  # fsdp
# pp4 (not in the default): the same model on 4 GPUs in artifacts/fsdp4/ (bench/scaling.sh 4
# and `bench/scaling.sh pp`):
# ZeRO-3 with checkpointing over 4 ranks (micro-batch 4 x 2048 per GPU), and pipeline
# parallel 2 x ZeRO-1 over 2 data-parallel ranks per stage (pp2z1-ckpt: the global batch
# of 16 as 2 data-parallel x 8 micro-batches of 1 x 2048).
if want pp4; then
F="$G/artifacts/fsdp4"
model_094b "$F"
train_variant z3-ckpt "$F" "max-batch=4 checkpoint=every zero-stage=3 ranks=4"
train_variant pp2z1-ckpt "$F" "max-batch=1 checkpoint=every pipeline-stages=2 micro-batches=8 zero-stage=1 ranks=2"
rm -rf "$TMPM"
fi  # pp4
# tp4 (not in the default): tensor parallelism on 4 GPUs (`bench/scaling.sh tp`), the
# model of fsdp in artifacts/fsdp4/: tp2z3-ckpt, TP=2 x ZeRO-3 over 2 data-parallel ranks
# (the global batch of 16 x 2048: 8 rows per data-parallel rank), and tp4-ckpt, TP=4
# (16 rows on every rank); bf16, checkpointing (passes as for fsdp's tp2-ckpt).
if want tp4; then
F="$G/artifacts/fsdp4"
model_094b "$F"
tp_variant tp2z3-ckpt "$F" 2 8 "--bmsys-zero=stage=3 ranks=2"
tp_variant tp4-ckpt "$F" 4 16
rm -rf "$TMPM"
fi  # tp4
du -sh "$G" "$G"/* "$G"/artifacts/*
if [ "$(du -sm "$G" | cut -f1)" -gt 56 ]; then
  echo "prepare.sh: WARNING: $G holds $(du -sh "$G" | cut -f1); with the working tree a run carries at most 64 MiB: pack fewer binaries (PACK_BINS)" >&2
fi
echo "prepared $ROOT/$G: run scripts/gpu/run_all.sh on the GPU machine with carry [\"$G\"]"
