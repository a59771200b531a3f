// The CPU reference of the fused elementwise kernels (bmsys-fuse-elementwise,
// docs/kernels.md "Fused kernels"). Each computes exactly what the unfused ops it
// replaces compute on this backend, in the same order of float roundings, so a fused
// f32 artifact gives bit-identical results here (the golden training tests rely on it).
#pragma once

#include <cstdint>

#include "runtime/backends/cpu/cpu_kernels.h"

namespace bmsys::rt::cpu {

// y = silu(gate) · up  (silu rounded to float first, as bmsys.silu then bmsys.mul).
void swiglu(float* y, const float* gate, const float* up, int64_t n);
// dup = dy · silu(gate); dgate = silu_grad(gate, dy · up): the two products and the
// silu gradient of the unfused backward.
void swiglu_grad(float* dgate, float* dup, const float* gate, const float* up, const float* dy,
                 int64_t n);
// sum = a + b; y = rms_norm(sum, gamma) over rows of H.
void add_rms_norm(float* sum, float* y, const float* a, const float* b, const float* gamma,
                  int64_t rows, int64_t H, double eps);
// dx = residual + rms_norm_grad's dx; dgamma as rms_norm_grad.
void rms_norm_grad_add(float* dx, float* dgamma, const float* x, const float* gamma, const float* dy,
                       const float* residual, int64_t rows, int64_t H, double eps);
// y = attention(rope(q, pos), rope(k, pos), v) with rope's head_dim p.D: q and k are
// rotated into temporaries by cpu::rope, then cpu::attention runs on them (writing the
// rotated k to p's cache, if any). q [B,S,Nq*D], k, v [B,S,Nkv*D], pos [B,S].
void rope_attention(float* y, const float* q, const float* k, const float* v, const int64_t* pos,
                    double theta, const AttentionParams& p);

}  // namespace bmsys::rt::cpu
