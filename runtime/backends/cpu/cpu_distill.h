// Knowledge-distillation losses on the CPU (docs/kernels.md "Distillation").
// Student and teacher are [N, W] row-major float32 (N = B·S tokens).
#pragma once
#include <cstdint>

namespace bmsys::rt::cpu {

// scale · T² · mean over rows of −Σ softmax(t/T) · log softmax(s/T).
double distill_soft_ce(const float* s, const float* t, int64_t N, int64_t V, double T, double scale);
// ds = scale · T · (softmax(s/T) − softmax(t/T)) / N.
void distill_soft_ce_grad(float* ds, const float* s, const float* t, int64_t N, int64_t V, double T,
                          double scale);
// scale · mean of (n(s) − n(t))², n(x) = (x − mean) / sqrt(var + eps) per row.
double distill_hidden_mse(const float* s, const float* t, int64_t N, int64_t H, double eps,
                          double scale);
// Its derivative by s, through the normalization.
void distill_hidden_mse_grad(float* ds, const float* s, const float* t, int64_t N, int64_t H,
                             double eps, double scale);

}  // namespace bmsys::rt::cpu
