#include "runtime/backends/cpu/cpu_fused.h"

#include <cmath>
#include <vector>

#include "runtime/backends/cpu/cpu_kernels.h"

namespace bmsys::rt::cpu {

namespace {
// cpu::silu's value: computed in double, rounded to float.
inline float silu_f(float x) {
  const double v = x;
  return static_cast<float>(v / (1.0 + std::exp(-v)));
}
}  // namespace

void swiglu(float* y, const float* gate, const float* up, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = silu_f(gate[i]) * up[i];
}

void swiglu_grad(float* dgate, float* dup, const float* gate, const float* up, const float* dy,
                 int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const double v = gate[i];
    const float dsilu = dy[i] * up[i];  // bmsys.mul(dy, up), a float product
    const double sg = 1.0 / (1.0 + std::exp(-v));
    dgate[i] = static_cast<float>(dsilu * sg * (1.0 + v * (1.0 - sg)));  // cpu::silu_grad
    dup[i] = dy[i] * silu_f(gate[i]);
  }
}

void add_rms_norm(float* sum, float* y, const float* a, const float* b, const float* gamma,
                  int64_t rows, int64_t H, double eps) {
  add(sum, a, b, rows * H);
  rms_norm(y, sum, gamma, rows, H, eps);
}

void rms_norm_grad_add(float* dx, float* dgamma, const float* x, const float* gamma, const float* dy,
                       const float* residual, int64_t rows, int64_t H, double eps) {
  rms_norm_grad(dx, dgamma, x, gamma, dy, rows, H, eps);
  const int64_t n = rows * H;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) dx[i] = residual[i] + dx[i];
}

void rope_attention(float* y, const float* q, const float* k, const float* v, const int64_t* pos,
                    double theta, const AttentionParams& p) {
  // The reference rotates into memory as the unfused rope launches do; what the fused
  // kernel saves (the round trip of the rotated q and k) is a device matter.
  const int64_t T = p.B * p.S;
  std::vector<float> qr(static_cast<size_t>(T * p.Nq * p.D)), kr(static_cast<size_t>(T * p.Nkv * p.D));
  rope(qr.data(), q, pos, T, p.Nq, p.D, theta);
  rope(kr.data(), k, pos, T, p.Nkv, p.D, theta);
  attention(y, qr.data(), kr.data(), v, p);
}

}  // namespace bmsys::rt::cpu
