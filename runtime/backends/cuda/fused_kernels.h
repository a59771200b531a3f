// Host-side launchers of the fused elementwise kernels (fused_kernels.cu) that
// bmsys-fuse-elementwise's ops lower to (docs/kernels.md "Fused kernels"). Each reads
// its operands once and writes its results once; values stay in f32 registers between
// the fused steps, so a fused kernel rounds to T once per result where the unfused ops
// rounded every intermediate (the CPU reference, in f32, rounds as the unfused ops).
// rms_norm_grad_add is in train_kernels.h (it is the norm gradient with one more input).
#pragma once

#include <cstdint>

#include "runtime/backends/cuda/cuda_common.h"
#include "runtime/core/dtype.h"

namespace bmsys::rt::cuda::fused {

// y = silu(gate) · up.
void swiglu(const Launch& L, DType t, void* y, const void* gate, const void* up, int64_t n);
// dgate = dy · up · silu'(gate), dup = dy · silu(gate).
void swiglu_grad(const Launch& L, DType t, void* dgate, void* dup, const void* gate, const void* up,
                 const void* dy, int64_t n);
// sum = a + b (rounded to T), y = rms_norm(sum) over rows of H from the rounded sum,
// as the unfused add then rms_norm. One block of kAddRmsNormThreads threads per row; that
// count fixes its order of sums, which a decode GEMV fusing the two halves repeats
// (the add as the epilogue of the GEMV before, the norm as the prologue of the next).
constexpr int kAddRmsNormThreads = 256;
void add_rms_norm(const Launch& L, DType t, void* sum, void* y, const void* a, const void* b,
                  const void* gamma, int64_t rows, int64_t H, double eps);

}  // namespace bmsys::rt::cuda::fused
