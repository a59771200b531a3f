// Knowledge-distillation losses on the CPU: one row (token) at a time, in double.
#include "runtime/backends/cpu/cpu_distill.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace bmsys::rt::cpu {
namespace {
// p = softmax(x / T); returns log Σ exp(x/T − max) + max (the log-normalizer of x/T).
double softmax_row(const float* x, int64_t V, double T, double* p) {
  double mx = -INFINITY;
  for (int64_t i = 0; i < V; ++i) mx = std::max(mx, x[i] / T);
  double sum = 0;
  for (int64_t i = 0; i < V; ++i) sum += (p[i] = std::exp(x[i] / T - mx));
  for (int64_t i = 0; i < V; ++i) p[i] /= sum;
  return mx + std::log(sum);
}

// n = (x − mean) / σ, σ = sqrt(var + eps); returns σ.
double normalize_row(const float* x, int64_t H, double eps, double* n) {
  double mean = 0, var = 0;
  for (int64_t i = 0; i < H; ++i) mean += x[i];
  mean /= H;
  for (int64_t i = 0; i < H; ++i) var += (x[i] - mean) * (x[i] - mean);
  double sigma = std::sqrt(var / H + eps);
  for (int64_t i = 0; i < H; ++i) n[i] = (x[i] - mean) / sigma;
  return sigma;
}
}  // namespace

double distill_soft_ce(const float* s, const float* t, int64_t N, int64_t V, double T, double scale) {
  double total = 0;
#pragma omp parallel reduction(+ : total)
  {
    std::vector<double> ps(V), pt(V);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < N; ++r) {
      double lse = softmax_row(s + r * V, V, T, ps.data());
      softmax_row(t + r * V, V, T, pt.data());
      double ce = 0;
      for (int64_t i = 0; i < V; ++i) ce -= pt[i] * (s[r * V + i] / T - lse);
      total += ce;
    }
  }
  return N ? scale * T * T * total / static_cast<double>(N) : 0.0;
}

void distill_soft_ce_grad(float* ds, const float* s, const float* t, int64_t N, int64_t V, double T,
                          double scale) {
  const double k = scale * T / static_cast<double>(N);
#pragma omp parallel
  {
    std::vector<double> ps(V), pt(V);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < N; ++r) {
      softmax_row(s + r * V, V, T, ps.data());
      softmax_row(t + r * V, V, T, pt.data());
      for (int64_t i = 0; i < V; ++i) ds[r * V + i] = static_cast<float>(k * (ps[i] - pt[i]));
    }
  }
}

double distill_hidden_mse(const float* s, const float* t, int64_t N, int64_t H, double eps,
                          double scale) {
  double total = 0;
#pragma omp parallel reduction(+ : total)
  {
    std::vector<double> ns(H), nt(H);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < N; ++r) {
      normalize_row(s + r * H, H, eps, ns.data());
      normalize_row(t + r * H, H, eps, nt.data());
      for (int64_t i = 0; i < H; ++i) total += (ns[i] - nt[i]) * (ns[i] - nt[i]);
    }
  }
  return N * H ? scale * total / static_cast<double>(N * H) : 0.0;
}

void distill_hidden_mse_grad(float* ds, const float* s, const float* t, int64_t N, int64_t H,
                             double eps, double scale) {
  const double k = 2.0 * scale / static_cast<double>(N * H);
#pragma omp parallel
  {
    std::vector<double> ns(H), nt(H), g(H);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < N; ++r) {
      double sigma = normalize_row(s + r * H, H, eps, ns.data());
      normalize_row(t + r * H, H, eps, nt.data());
      double mean_g = 0, mean_gn = 0;
      for (int64_t i = 0; i < H; ++i) {
        g[i] = k * (ns[i] - nt[i]);
        mean_g += g[i];
        mean_gn += g[i] * ns[i];
      }
      mean_g /= H;
      mean_gn /= H;
      for (int64_t i = 0; i < H; ++i)
        ds[r * H + i] = static_cast<float>((g[i] - mean_g - ns[i] * mean_gn) / sigma);
    }
  }
}

}  // namespace bmsys::rt::cpu
