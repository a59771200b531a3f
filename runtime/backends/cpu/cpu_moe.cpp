// The MoE FFN on the CPU: route every token, then run each expert once on the
// tokens that chose it (gather, three GEMMs on the expert's contiguous rows,
// scatter-add), so the work is top_k/experts of the dense FFN's plus the router.
#include "runtime/backends/cpu/cpu_moe.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

#include "runtime/backends/cpu/cpu_kernels.h"

namespace bmsys::rt::cpu {

void moe_ffn(float* y, const float* x, const float* router, const float* w_in, const float* w_up,
             const float* w_out, const float* b_in, const float* b_out, const MoeParams& p) {
  const int64_t T = p.T, H = p.H, E = p.experts, m = p.n / p.experts;
  std::vector<float> scores(static_cast<size_t>(T * E));
  linear(scores.data(), x, router, nullptr, T, H, E, false);

  // Each expert's tokens, in token order.
  std::vector<std::vector<int64_t>> chosen(static_cast<size_t>(E));
  std::vector<int64_t> order(static_cast<size_t>(E));
  for (int64_t t = 0; t < T; ++t) {
    const float* s = scores.data() + t * E;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + p.top_k, order.end(),
                      [&](int64_t a, int64_t b) { return s[a] > s[b] || (s[a] == s[b] && a < b); });
    for (int64_t i = 0; i < p.top_k; ++i) chosen[order[i]].push_back(t);
  }

  for (int64_t t = 0; t < T; ++t) {
    if (b_out)
      std::memcpy(y + t * H, b_out, static_cast<size_t>(H) * sizeof(float));
    else
      std::memset(y + t * H, 0, static_cast<size_t>(H) * sizeof(float));
  }
  std::vector<float> xe, h, u, ye;
  for (int64_t e = 0; e < E; ++e) {
    const int64_t te = static_cast<int64_t>(chosen[e].size());
    if (te == 0) continue;
    xe.resize(static_cast<size_t>(te * H));
    for (int64_t i = 0; i < te; ++i)
      std::memcpy(xe.data() + i * H, x + chosen[e][i] * H, static_cast<size_t>(H) * sizeof(float));
    h.resize(static_cast<size_t>(te * m));
    linear(h.data(), xe.data(), w_in + e * m * H, b_in ? b_in + e * m : nullptr, te, H, m, false);
    if (p.activation == "silu")
      silu(h.data(), h.data(), te * m);
    else
      gelu(h.data(), h.data(), te * m, p.activation == "gelu_tanh");
    if (w_up) {
      u.resize(h.size());
      linear(u.data(), xe.data(), w_up + e * m * H, nullptr, te, H, m, false);
      for (size_t i = 0; i < h.size(); ++i) h[i] *= u[i];
    }
    ye.resize(static_cast<size_t>(te * H));
    linear(ye.data(), h.data(), w_out + e * m * H, nullptr, te, m, H, true);
    for (int64_t i = 0; i < te; ++i) {
      float* row = y + chosen[e][i] * H;
      const float* add = ye.data() + i * H;
      for (int64_t j = 0; j < H; ++j) row[j] += add[j];
    }
  }
}

}  // namespace bmsys::rt::cpu
