// The mixture-of-experts FFN of bmsys-moefy on the CPU (docs/kernels.md "MoE").
#pragma once
#include <cstdint>
#include <string>

namespace bmsys::rt::cpu {

struct MoeParams {
  int64_t T = 0;        // tokens
  int64_t H = 0;        // hidden width
  int64_t n = 0;        // neurons (experts · n/experts)
  int64_t experts = 1;
  int64_t top_k = 1;
  std::string activation;  // silu, gelu, gelu_tanh
};

// y [T,H] = Σ over each token's top_k experts (by x·routerᵀ) of the expert's FFN, + b_out.
// w_in, w_up (null: not gated), w_out: [n,H]; router [experts,H]; b_in [n], b_out [H] or null.
void moe_ffn(float* y, const float* x, const float* router, const float* w_in, const float* w_up,
             const float* w_out, const float* b_in, const float* b_out, const MoeParams& p);

}  // namespace bmsys::rt::cpu
