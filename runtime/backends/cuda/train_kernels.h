// Host-side launchers of the CUDA training kernels (train_kernels.cu, attention_grad.cu),
// called by train_ops.cpp. Float operands of one launch share one dtype (f32, f16 or
// bf16) unless a signature says otherwise; reductions accumulate in f32 (f64 where the
// CPU reference's sums are long: global norm, column sums across row chunks) in a fixed
// order, so every kernel is deterministic (no floating-point atomics).
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/backends/cuda/cuda_common.h"
#include "runtime/core/dtype.h"

namespace bmsys::rt::cuda::train {

// dtable [V,H] = 0, then dtable[ids[i],:] += dy[i,:], summed per row in position order
// (a stable radix sort of the ids); ids outside [0,V) are reported through L.err.
// Vocab-parallel (tensor_parallel.h): dtable holds rows [first, first+V) of a vocabulary
// of `vocab` (> 0); ids outside this rank's rows are skipped, outside [0,vocab) reported.
size_t embedding_grad_scratch_bytes(int64_t n, int64_t V);
void embedding_grad(const Launch& L, DType t, void* dtable, const int64_t* ids, int64_t n,
                    const void* dy, int64_t V, int64_t H, void* scratch, size_t scratch_bytes,
                    int64_t first = 0, int64_t vocab = 0);

// Column sums over rows (bias gradients), and the column parts of the norm gradients,
// run as partial sums over chunks of rows, then a sum of the chunks in order.
size_t column_sum_scratch_bytes(int64_t rows, int64_t H);
void sum_rows(const Launch& L, DType t, void* db, const void* dy, int64_t rows, int64_t N,
              void* scratch);

// dx [rows,K] = 0; dx[r, off:off+N] = dy[r,:] (elements of `es` bytes).
void slice_grad(const Launch& L, void* dx, const void* dy, size_t es, int64_t rows, int64_t N,
                int64_t off, int64_t K);

size_t norm_grad_scratch_bytes(int64_t rows, int64_t H);
// dbeta may be null (rms_norm_grad has none).
void layer_norm_grad(const Launch& L, DType t, void* dx, void* dgamma, void* dbeta, const void* x,
                     const void* gamma, const void* dy, int64_t rows, int64_t H, double eps,
                     void* scratch);
void rms_norm_grad(const Launch& L, DType t, void* dx, void* dgamma, const void* x,
                   const void* gamma, const void* dy, int64_t rows, int64_t H, double eps,
                   void* scratch);
// rms_norm_grad with dx += residual before its rounding (bmsys-fuse-elementwise's
// rms_norm_grad_add); scratch as norm_grad_scratch_bytes.
void rms_norm_grad_add(const Launch& L, DType t, void* dx, void* dgamma, const void* x,
                       const void* gamma, const void* dy, const void* residual, int64_t rows,
                       int64_t H, double eps, void* scratch);

// The inverse rotation of rope (angle -a, computed in f64 as the forward kernel).
void rope_grad(const Launch& L, DType t, void* dx, const void* dy, const int64_t* pos, int64_t T,
               int64_t N, int64_t D, double theta);

enum class ActGrad { GeluTanh, GeluErf, Silu };
void act_grad(const Launch& L, DType t, ActGrad op, void* dx, const void* x, const void* dy,
              int64_t n);

// dlogits = (softmax - onehot) / count, times L (device scalar) with loss_scaling.
void cross_entropy_grad(const Launch& L, DType t, void* dlogits, const void* logits,
                        const int64_t* labels, int64_t B, int64_t S, int64_t V, bool shift,
                        bool loss_scaling);

// sqrt(sum of squares of every element of every input) into norm[0] (dtype nt).
struct NormInput {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int64_t n = 0;
};
size_t global_norm_scratch_bytes(const NormInput* ins, int count);
void global_norm(const Launch& L, const NormInput* ins, int count, void* norm, DType nt,
                 void* scratch);

// Optimizer settings (docs/kernels.md): the schedule is evaluated on the device at the
// step T of the device scalars, the clipping coefficient from the norm on the device.
struct OptimArgs {
  double lr = 0, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0, momentum = 0, max_norm = 0;
  int sched_kind = 0;  // 0 constant, 1 cosine, 2 linear (LrSchedule::Kind)
  long long warmup_steps = 0, total_steps = 0;
  double min_lr = 0;
  int loss_scaling = 0;
};
// param, m, v are f32; grad f32/f16/bf16; norm any float dtype (one element).
void adamw(const Launch& L, float* param, DType gt, const void* grad, float* m, float* v,
           const void* norm, DType nt, int64_t n, const OptimArgs& a);
void sgd(const Launch& L, float* param, DType gt, const void* grad, float* buf, const void* norm,
         DType nt, int64_t n, const OptimArgs& a);

// y = w rounded row-wise (axis 0) or column-wise (axis 1) to INT8 and back (f32).
void fake_quant(const Launch& L, float* y, const float* w, int64_t R, int64_t C, int64_t axis);

// Row-major C [m,n] = op(A)·op(B), A [m,k] or (transA) [k,m], B [k,n] or (transB) [n,k];
// f32 accumulation. The fallback where cuBLASLt has no algorithm; k == 0 gives zeros.
void gemm_simt(const Launch& L, DType t, void* C, const void* A, const void* B, int64_t m,
               int64_t n, int64_t k, bool transA, bool transB);

// --- attention_grad.cu -----------------------------------------------------------------
struct AttentionGradArgs {
  DType dtype = DType::F32;
  const void *q = nullptr, *k = nullptr, *v = nullptr, *dy = nullptr;
  void *dq = nullptr, *dk = nullptr, *dv = nullptr;
  int64_t B = 1, S = 1, Nq = 1, Nkv = 1, D = 1;
  float scale = 1.f;
  bool causal = true;
  bool tensor_cores = true;  // f16/bf16 at head_dim 16/32/64/128: attention_grad_tc.cu
};
constexpr int64_t kAttentionGradMaxHeadDim = 256;
size_t attention_grad_scratch_bytes(const AttentionGradArgs& a);
void attention_grad(const Launch& L, const AttentionGradArgs& a, void* scratch);
// The tensor-core kernels (attention_grad_tc.cu), which attention_grad runs where they
// apply; lse and delta are [B, Nq, S] f32 scratch.
bool attention_grad_tc_supported(const AttentionGradArgs& a);
void attention_grad_tc(const Launch& L, const AttentionGradArgs& a, float* lse, float* delta);

}  // namespace bmsys::rt::cuda::train
