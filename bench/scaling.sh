#!/usr/bin/env bash
# Weak scaling of ZeRO-3 training with per-block checkpointing (issue 8), on the GPU
# machine: the Llama-shaped 0.94B of bench/fsdp_bench.py at micro-batch 4 x 2048 per
# GPU on 1, 2, 4 (and 8) GPUs, each beside PyTorch FSDP2 with checkpointing on the same
# GPUs. Prints a table per world size and writes $OUT/scale<N>.json.
#
# Artifacts (compiled where the compiler is, carried in build-gpu/):
#   build-gpu/artifacts/fsdp<N>/z3-ckpt.bmsys  --bmsys-train-pipeline="max-batch=4 max-seq=2048
#       checkpoint=every mixed-precision=bf16 lr=1e-4 max-grad-norm=1.0 zero-stage=3 ranks=<N>"
#       (N = 1: without zero-stage), next to the model's config.json;
#   build-gpu/artifacts/fsdp (scripts/gpu/prepare.sh fsdp) serves N = 2, fsdp4
#   (scripts/gpu/prepare.sh pp4) N = 4.
#   bench/scaling.sh [N...]     (default: 1 2 4 8, those the machine has)
#   bench/scaling.sh tp         tensor parallelism: TP=2 on 2 GPUs, TP=2 x ZeRO-3 DP=2 and
#       TP=4 on 4 (scripts/gpu/prepare.sh fsdp tp4); $OUT/tp<N>.json.
#   bench/scaling.sh pp [2] [4] pipeline parallelism (issue 8): PP=2 with checkpointing on
#       2 GPUs (fsdp/pp2-ckpt) and PP=2 x ZeRO-1 DP=2 on 4 (fsdp4/pp2z1-ckpt), each beside
#       ZeRO-3 with checkpointing and FSDP2 on the same GPUs (scripts/gpu/prepare.sh fsdp pp4);
#       $OUT/pp<N>.json.
set -u
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${OUT:-/tmp/bmsys-gpu-out}
mkdir -p "$OUT" /tmp/bmsys-gpu
tar -C /tmp/bmsys-gpu -xzf build-gpu/carry.tar.gz
export LD_LIBRARY_PATH=/tmp/bmsys-gpu/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
NGPU=$(nvidia-smi -L | grep -c '^GPU')
if [ "${1:-}" = pp ]; then
  # Hardware queues for every stream of a pipelined run (docs/distributed.md).
  export CUDA_DEVICE_MAX_CONNECTIONS=${CUDA_DEVICE_MAX_CONNECTIONS:-32}
  shift
  for w in ${*:-2 4}; do
    [ "$w" -le "$NGPU" ] || { echo "scaling pp: $w GPUs: the machine has $NGPU"; continue; }
    A=build-gpu/artifacts/fsdp$([ "$w" = 4 ] && echo 4)
    V=$([ "$w" = 4 ] && echo pp2z1-ckpt || echo pp2-ckpt)
    [ -f "$A/$V.bmsys" ] || { echo "scaling pp: $A/$V.bmsys missing (scripts/gpu/prepare.sh fsdp pp4)"; continue; }
    echo "== pipeline parallel on $w GPU(s): $V beside z3-ckpt and FSDP2"
    timeout "${SCALE_TIMEOUT:-420}" python3 bench/fsdp_bench.py --bin /tmp/bmsys-gpu/bin/bmsys-run --artifacts "$A" \
      --world "$w" --variants "$V,z3-ckpt" --peer 2 --steps "${STEPS:-6}" --out "$OUT/pp$w.json" --work "/tmp/bmsys-pp$w" 2>&1 | tail -5
  done
  exit 0
fi
if [ "${1:-}" = tp ]; then
  # Tensor parallelism (issue 8): TP=2 with checkpointing on 2 GPUs (fsdp/tp2-ckpt), TP=2 x
  # ZeRO-3 DP=2 and TP=4 on 4 (fsdp4/tp2z3-ckpt, fsdp4/tp4-ckpt: scripts/gpu/prepare.sh tp4),
  # each beside ZeRO-3 with checkpointing (where compiled) and FSDP2; $OUT/tp<N>.json.
  for w in 2 4; do
    [ "$w" -le "$NGPU" ] || { echo "scaling tp: $w GPUs: the machine has $NGPU"; continue; }
    A=build-gpu/artifacts/fsdp$([ "$w" = 4 ] && echo 4)
    V=$([ "$w" = 4 ] && echo tp2z3-ckpt,tp4-ckpt || echo tp2-ckpt)
    echo "== tensor parallel on $w GPUs: $V beside z3-ckpt and FSDP2"
    timeout "${SCALE_TIMEOUT:-600}" python3 bench/fsdp_bench.py --bin /tmp/bmsys-gpu/bin/bmsys-run --artifacts "$A" \
      --world "$w" --variants "$V,z3-ckpt" --peer 2 --steps "${STEPS:-6}" --out "$OUT/tp$w.json" --work "/tmp/bmsys-tp$w" 2>&1 | tail -6
  done
  exit 0
fi
for w in ${*:-1 2 4 8}; do
  [ "$w" -le "$NGPU" ] || { echo "scaling: $w GPUs: the machine has $NGPU"; continue; }
  A=build-gpu/artifacts/fsdp$w
  [ "$w" = 2 ] && [ ! -d "$A" ] && A=build-gpu/artifacts/fsdp
  [ -f "$A/z3-ckpt.bmsys" ] || { echo "scaling: $A/z3-ckpt.bmsys missing"; continue; }
  echo "== $w GPU(s)"
  timeout "${SCALE_TIMEOUT:-300}" python3 bench/fsdp_bench.py --bin /tmp/bmsys-gpu/bin/bmsys-run --artifacts "$A" \
    --world "$w" --variants z3-ckpt --peer 2 --steps "${STEPS:-6}" --out "$OUT/scale$w.json" --work "/tmp/bmsys-scale$w" 2>&1 | tail -4
done
