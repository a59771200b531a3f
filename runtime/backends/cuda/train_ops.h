// The CUDA backend's training kernels (docs/kernels.md "Training kernels", plus `cast`
// and `fake_quant`): how a launch of one of them is parsed, queued and run. The backend
// (cuda_backend.cpp) keeps the queue, graphs and memory; it hands these ops to
// run_train_op() in queue order.
//
// Per-call values that change between training steps — the step T of the optimizer
// kernels and the loss scale L — are not baked into the launches: they live in the
// backend's device scalars (written before every flush by set_train_scalars), so a
// train_step captured once as a CUDA graph replays at every step. The optimizer
// kernels read the global norm on the device and skip the update there when the
// unscaled norm is not finite (dynamic loss scaling); the trainer sees the same norm
// as the function's grad_norm output and halves L.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/backends/cuda/cuda_common.h"
#include "runtime/core/kernels.h"

namespace bmsys::rt::cuda {

// Slots of the device scalars (Launch::scalars): [0] is start_pos.
constexpr int kScalarStep = 1;       // T, int64
constexpr int kScalarLossScale = 2;  // L, the bits of a double

// Whether `k` is one of the kernels of this file.
bool is_train_kernel(KernelId k);

// A parsed launch: operands and the attributes the kernels need.
struct TrainOp {
  KernelId kernel = KernelId::kCount;
  std::vector<TensorView> in, out;
  bool wt = false, shift = false, loss_scaling = false, gelu_tanh = false, causal = true;
  int64_t offset = 0, width = 0, head_dim = 0, nq = 0, nkv = 0, axis = 0;
  double eps = 0, theta = 0, scale = 1;
  // adamw / sgd
  double lr = 0, beta1 = 0, beta2 = 0, adam_eps = 0, weight_decay = 0, momentum = 0, max_norm = 0;
  int sched_kind = 0;  // LrSchedule::Kind
  int64_t warmup_steps = 0, total_steps = 0;
  double min_lr = 0;
  int64_t zero_offset = 0, zero_count = 0;  // the param elements this rank updates
  // Whether the op reads T or L from the device scalars.
  bool uses_step = false, uses_loss_scale = false;
  // Tensor parallelism (tensor_parallel.h): a step of a vocab-parallel kernel or of a
  // global norm over tensor-parallel shards, run by run_tp_step (0: none); this rank's
  // first vocabulary row and the whole vocabulary.
  int tp_step = 0;
  int64_t tp_start = 0, tp_vocab = 0;
};

// Parses and checks a launch (already through check_launch) for the CUDA kernels:
// dtype combinations this backend implements, head_dim limits, distributed attributes.
// Throws bmsys::rt::Error naming the kernel and the operand.
std::shared_ptr<const TrainOp> make_train_op(const KernelLaunch& l);

// Everything that shapes the op's launches (operand addresses, dtypes, shapes,
// attributes) — never T or L — for the backend's graph signature.
void train_signature(const TrainOp& op, std::vector<uint64_t>& words);

// Device scratch the op needs while it runs (shared by the ops of a flush, which run
// one after another on the compute stream).
size_t train_scratch_bytes(const TrainOp& op);

class TrainGemm;

// What run_train_op may use of the backend.
struct TrainEnv {
  void* scratch = nullptr;
  size_t scratch_bytes = 0;
  void* workspace = nullptr;  // cuBLASLt workspace (shared with the forward GEMMs)
  size_t workspace_bytes = 0;
  TrainGemm* gemm = nullptr;
  bool use_flash = true;  // tensor-core attention_grad (BMSYS_CUDA_FLASH)
};

// Enqueues the op on L.stream. Throws naming the op on a CUDA or cuBLASLt failure.
void run_train_op(const TrainOp& op, const Launch& L, const TrainEnv& env);

// scalars[kScalarStep] = step, scalars[kScalarLossScale] = loss_scale (a one-thread
// kernel on `stream`, before a flush, outside any graph).
void set_train_scalars(cudaStream_t stream, int64_t* scalars, int64_t step, double loss_scale);

// cuBLASLt GEMMs of the backward pass (row-major, C = op(A)·op(B), f32 accumulation;
// true f32 for f32 data, no TF32), with a SIMT fallback where cuBLASLt has no algorithm.
void destroy_train_gemm(TrainGemm* g);
struct TrainGemmDeleter {
  void operator()(TrainGemm* g) const { destroy_train_gemm(g); }
};
using TrainGemmPtr = std::unique_ptr<TrainGemm, TrainGemmDeleter>;
TrainGemmPtr make_train_gemm();

}  // namespace bmsys::rt::cuda
