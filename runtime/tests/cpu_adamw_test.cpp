// The vectorized, multithreaded CPU AdamW (runtime/backends/cpu/adamw.h) against
// the scalar kernel it replaced (written out below, unchanged): bitwise equal on
// every instruction set this CPU runs, for sizes that leave every kind of tail
// (vector remainders, thread-chunk remainders), with and without weight decay,
// gradient clipping and loss scaling (a clip coefficient of c / L), over steps.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "runtime/backends/cpu/adamw.h"

namespace bmsys::rt {
namespace {

// The scalar kernel as it was (runtime/backends/cpu/cpu_kernels.cpp before the
// vectorized one), the reference every path must reproduce bit for bit.
void reference_adamw(float* param, const float* grad, float* m, float* v, int64_t n, const cpu::AdamWParams& p) {
  const double bc1 = 1.0 - std::pow(p.beta1, static_cast<double>(p.step));
  const double bc2 = 1.0 - std::pow(p.beta2, static_cast<double>(p.step));
  const double decay = 1.0 - p.lr * p.weight_decay;
  for (int64_t i = 0; i < n; ++i) {
    double g = p.clip * grad[i];
    double w = param[i] * decay;
    double mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    double vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    w -= p.lr * (mi / bc1) / (std::sqrt(vi / bc2) + p.eps);
    m[i] = static_cast<float>(mi);
    v[i] = static_cast<float>(vi);
    param[i] = static_cast<float>(w);
  }
}

std::vector<float> random_floats(int64_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& f : x) f = d(rng);
  return x;
}

std::vector<cpu::AdamWIsa> supported_isas() {
  std::vector<cpu::AdamWIsa> out;
  for (cpu::AdamWIsa isa : {cpu::AdamWIsa::Scalar, cpu::AdamWIsa::Avx2, cpu::AdamWIsa::Avx512})
    if (cpu::adamw_isa_supported(isa)) out.push_back(isa);
  return out;
}

struct Case {
  const char* name;
  double weight_decay, clip;  // clip: c, or c / L with loss scaling
  float grad_scale;           // the gradients' magnitude (L times the true ones when scaled)
};

const Case kCases[] = {
    {"plain", 0.0, 1.0, 1.0f},
    {"weight_decay", 0.1, 1.0, 1.0f},
    {"clipped", 0.01, 0.37, 3.0f},
    {"loss_scaled", 0.1, 1.0 / 65536.0, 65536.0f},         // L = 2^16, no clipping
    {"loss_scaled_clipped", 0.1, 0.25 / 1024.0, 4096.0f},  // L = 2^10, c = 0.25
};

// Sizes: below and above the serial threshold (2^15), with remainders mod 4, 8,
// 16 and the thread count.
const int64_t kSizes[] = {1, 3, 7, 8, 17, 31, 1001, (1 << 15) - 1, (1 << 15) + 5, 100003};

void expect_bitwise(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0) {
      ADD_FAILURE() << what << ": element " << i << " of " << got.size() << ": " << got[i] << " != " << want[i];
      return;
    }
}

TEST(CpuAdamW, BitwiseEqualToScalarOnEveryIsaAndSize) {
  std::vector<cpu::AdamWIsa> isas = supported_isas();
  for (cpu::AdamWIsa isa : isas) std::printf("[adamw] testing %s\n", cpu::adamw_isa_name(isa));
  for (const Case& c : kCases)
    for (int64_t n : kSizes) {
      const std::vector<float> p0 = random_floats(n, 1 + n, -1, 1);
      // Reference over three steps (moments start at zero, as in training).
      std::vector<float> rp = p0, rm(n, 0.f), rv(n, 0.f);
      std::vector<std::vector<float>> grads;
      for (int T = 1; T <= 3; ++T) grads.push_back(random_floats(n, 100 * T + n, -c.grad_scale, c.grad_scale));
      cpu::AdamWParams prm;
      prm.lr = 1e-3;
      prm.beta1 = 0.9;
      prm.beta2 = 0.95;
      prm.eps = 1e-8;
      prm.weight_decay = c.weight_decay;
      prm.clip = c.clip;
      for (int T = 1; T <= 3; ++T) {
        prm.step = T;
        reference_adamw(rp.data(), grads[T - 1].data(), rm.data(), rv.data(), n, prm);
      }
      for (cpu::AdamWIsa isa : isas) {
        std::vector<float> p = p0, m(n, 0.f), v(n, 0.f);
        for (int T = 1; T <= 3; ++T) {
          prm.step = T;
          cpu::adamw(isa, p.data(), grads[T - 1].data(), m.data(), v.data(), n, prm);
        }
        std::string what = std::string(c.name) + ", n=" + std::to_string(n) + ", " + cpu::adamw_isa_name(isa);
        expect_bitwise(p, rp, what + ", param");
        expect_bitwise(m, rm, what + ", exp_avg");
        expect_bitwise(v, rv, what + ", exp_avg_sq");
      }
    }
}

TEST(CpuAdamW, ThreadCountDoesNotChangeResults) {
  const int64_t n = 200003;
  const std::vector<float> p0 = random_floats(n, 7, -1, 1), g = random_floats(n, 8, -2, 2);
  cpu::AdamWParams prm;
  prm.lr = 1e-2;
  prm.weight_decay = 0.1;
  prm.step = 5;
  std::vector<float> rp = p0, rm(n, 0.01f), rv(n, 0.02f);
  reference_adamw(rp.data(), g.data(), rm.data(), rv.data(), n, prm);
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2, 3, 7}) {
    omp_set_num_threads(threads);
    std::vector<float> p = p0, m(n, 0.01f), v(n, 0.02f);
    cpu::adamw(p.data(), g.data(), m.data(), v.data(), n, prm);
    expect_bitwise(p, rp, std::to_string(threads) + " threads, param");
    expect_bitwise(m, rm, std::to_string(threads) + " threads, exp_avg");
    expect_bitwise(v, rv, std::to_string(threads) + " threads, exp_avg_sq");
  }
  omp_set_num_threads(saved);
}

TEST(CpuAdamW, DefaultIsaIsTheWidestSupported) {
  cpu::AdamWIsa want = cpu::adamw_isa_supported(cpu::AdamWIsa::Avx512) ? cpu::AdamWIsa::Avx512
                       : cpu::adamw_isa_supported(cpu::AdamWIsa::Avx2)  ? cpu::AdamWIsa::Avx2
                                                                         : cpu::AdamWIsa::Scalar;
  if (std::getenv("BMSYS_CPU_ADAMW_ISA")) GTEST_SKIP() << "BMSYS_CPU_ADAMW_ISA overrides the choice";
  EXPECT_EQ(cpu::adamw_default_isa(), want) << cpu::adamw_isa_name(cpu::adamw_default_isa());
}

TEST(CpuAdamW, NonFiniteGradientsPropagateLikeTheScalarKernel) {
  // NaN/Inf in, NaN/Inf out, at the same elements (the trainer's overflow check
  // relies on the grad norm, but a kernel must not mask them either).
  const int64_t n = 37;
  std::vector<float> g = random_floats(n, 3, -1, 1);
  g[5] = NAN;
  g[20] = INFINITY;
  g[36] = -INFINITY;
  cpu::AdamWParams prm;
  prm.lr = 1e-3;
  std::vector<float> rp = random_floats(n, 4, -1, 1), rm(n, 0.f), rv(n, 0.f);
  const std::vector<float> p0 = rp;
  reference_adamw(rp.data(), g.data(), rm.data(), rv.data(), n, prm);
  for (cpu::AdamWIsa isa : supported_isas()) {
    std::vector<float> p = p0, m(n, 0.f), v(n, 0.f);
    cpu::adamw(isa, p.data(), g.data(), m.data(), v.data(), n, prm);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_EQ(std::isnan(p[i]), std::isnan(rp[i])) << cpu::adamw_isa_name(isa) << " element " << i;
      if (!std::isnan(rp[i])) EXPECT_EQ(p[i], rp[i]) << cpu::adamw_isa_name(isa) << " element " << i;
    }
  }
}

}  // namespace
}  // namespace bmsys::rt
