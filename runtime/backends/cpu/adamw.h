// CPU AdamW (docs/kernels.md, "adamw"; issue 5 item 5): one pass over the
// parameters, gradients and both moments, vectorized for AVX2 and AVX-512 with
// the instruction set chosen at run time, and split over OpenMP threads. Used by
// the CPU backend's adamw kernel and by the host side of optimizer offload.
//
// Every path computes each element exactly as the scalar reference does, in
// double with the same operations in the same order (no FMA contraction), so the
// results are bitwise identical whichever instruction set or thread count runs.
#pragma once

#include <cstdint>

namespace bmsys::rt::cpu {

struct AdamWParams {
  double lr = 0;  // lr_T, already scheduled
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  double clip = 1;  // global-norm clipping coefficient c (times 1/L with loss scaling)
  int64_t step = 1;
};

enum class AdamWIsa { Scalar, Avx2, Avx512 };

const char* adamw_isa_name(AdamWIsa isa);
// Whether this CPU runs `isa` (Scalar always).
bool adamw_isa_supported(AdamWIsa isa);
// The widest supported instruction set, or the one BMSYS_CPU_ADAMW_ISA names
// (scalar, avx2, avx512) when set; an unknown or unsupported name is an error.
AdamWIsa adamw_default_isa();

// For i in [0, n):  g = c * grad[i]
//   m[i] = b1 m[i] + (1 - b1) g;  v[i] = b2 v[i] + (1 - b2) g^2
//   param[i] = param[i] (1 - lr wd) - lr (m[i] / (1 - b1^T)) / (sqrt(v[i] / (1 - b2^T)) + eps)
// on all OpenMP threads for large n, with adamw_default_isa().
void adamw(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWParams& p);
// The same with a given instruction set (tests and benchmarks; must be supported).
void adamw(AdamWIsa isa, float* param, const float* grad, float* m, float* v, int64_t n, const AdamWParams& p);

}  // namespace bmsys::rt::cpu
