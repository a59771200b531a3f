// The distillation kernels of the CPU backend (docs/kernels.md "Distillation"):
// losses against naive float64 formulas, gradients against central finite
// differences of those formulas, and the check of a launch's shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "runtime/backends/cpu/cpu_distill.h"
#include "test_util.h"

using namespace bmsys::rt;
using namespace bmsys::rt::test;

namespace {
using Vec = std::vector<double>;

std::vector<float> random_vec(size_t n, unsigned seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

double soft_ce_ref(const Vec& s, const Vec& t, int64_t N, int64_t V, double T, double scale) {
  double total = 0;
  for (int64_t r = 0; r < N; ++r) {
    double zs = 0, zt = 0;
    for (int64_t i = 0; i < V; ++i) {
      zs += std::exp(s[r * V + i] / T);
      zt += std::exp(t[r * V + i] / T);
    }
    for (int64_t i = 0; i < V; ++i)
      total -= std::exp(t[r * V + i] / T) / zt * (s[r * V + i] / T - std::log(zs));
  }
  return scale * T * T * total / N;
}

double mse_ref(const Vec& s, const Vec& t, int64_t N, int64_t H, double eps, double scale) {
  auto norm = [&](const Vec& x, int64_t r, Vec& n) {
    double m = 0, v = 0;
    for (int64_t i = 0; i < H; ++i) m += x[r * H + i] / H;
    for (int64_t i = 0; i < H; ++i) v += (x[r * H + i] - m) * (x[r * H + i] - m) / H;
    for (int64_t i = 0; i < H; ++i) n[i] = (x[r * H + i] - m) / std::sqrt(v + eps);
  };
  double total = 0;
  Vec ns(H), nt(H);
  for (int64_t r = 0; r < N; ++r) {
    norm(s, r, ns);
    norm(t, r, nt);
    for (int64_t i = 0; i < H; ++i) total += (ns[i] - nt[i]) * (ns[i] - nt[i]);
  }
  return scale * total / (N * H);
}

double rel_err(const std::vector<float>& got, const Vec& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / den);
}

TEST(CpuDistill, SoftCrossEntropyAndGradient) {
  const int64_t N = 6, V = 13;
  const double T = 2.5, scale = 0.7;
  auto s = random_vec(N * V, 1, 2.0f), t = random_vec(N * V, 2, 2.0f);
  Vec sd(s.begin(), s.end()), td(t.begin(), t.end());
  double loss = cpu::distill_soft_ce(s.data(), t.data(), N, V, T, scale);
  EXPECT_NEAR(loss, soft_ce_ref(sd, td, N, V, T, scale), 1e-6 * std::fabs(loss));
  std::vector<float> ds(N * V);
  cpu::distill_soft_ce_grad(ds.data(), s.data(), t.data(), N, V, T, scale);
  Vec want = fd_grad([&](const Vec& x) { return soft_ce_ref(x, td, N, V, T, scale); }, sd);
  EXPECT_LT(rel_err(ds, want), 1e-5);
}

TEST(CpuDistill, SoftCrossEntropyOfEqualLogitsIsTheEntropyAndHasNoGradient) {
  const int64_t N = 3, V = 7;
  auto s = random_vec(N * V, 3, 1.0f);
  std::vector<float> ds(N * V);
  cpu::distill_soft_ce_grad(ds.data(), s.data(), s.data(), N, V, 1.0, 1.0);
  for (float g : ds) EXPECT_NEAR(g, 0.0f, 1e-7f);
}

TEST(CpuDistill, HiddenMseAndGradient) {
  const int64_t N = 5, H = 11;
  const double eps = 1e-5, scale = 1.3;
  auto s = random_vec(N * H, 4, 3.0f), t = random_vec(N * H, 5, 0.5f);
  Vec sd(s.begin(), s.end()), td(t.begin(), t.end());
  double loss = cpu::distill_hidden_mse(s.data(), t.data(), N, H, eps, scale);
  EXPECT_NEAR(loss, mse_ref(sd, td, N, H, eps, scale), 1e-6 * std::fabs(loss));
  std::vector<float> ds(N * H);
  cpu::distill_hidden_mse_grad(ds.data(), s.data(), t.data(), N, H, eps, scale);
  Vec want = fd_grad([&](const Vec& x) { return mse_ref(x, td, N, H, eps, scale); }, sd);
  EXPECT_LT(rel_err(ds, want), 1e-4);
}

TEST(CpuDistill, HiddenMseIgnoresScaleAndShiftOfTheStates) {
  // n(a·x + b) = n(x) for a > 0: a teacher with larger activations costs nothing.
  const int64_t N = 4, H = 9;
  auto s = random_vec(N * H, 6, 1.0f);
  std::vector<float> t(s.size());
  for (size_t i = 0; i < s.size(); ++i) t[i] = 4.0f * s[i] + 3.0f;
  EXPECT_NEAR(cpu::distill_hidden_mse(s.data(), t.data(), N, H, 1e-9, 1.0), 0.0, 1e-8);
}
}  // namespace
