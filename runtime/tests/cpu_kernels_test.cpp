// Each CPU kernel against a naive double-precision reference on small random
// shapes (odd sizes included); rope and attention also hand-checked.
#include "runtime/backends/cpu/cpu_kernels.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "test_util.h"

using namespace bmsys::rt;
using namespace bmsys::rt::test;

TEST(CpuKernels, Positions) {
  std::vector<int64_t> pos(6);
  cpu::positions(pos.data(), 2, 3, 5);
  EXPECT_EQ(pos, (std::vector<int64_t>{5, 6, 7, 5, 6, 7}));
}

TEST(CpuKernels, Embedding) {
  const int64_t V = 7, H = 5;
  auto table = random_floats(V * H, 1);
  std::vector<int64_t> ids = {3, 0, 6, 3};
  std::vector<float> y(ids.size() * H);
  cpu::embedding(y.data(), ids.data(), 4, table.data(), V, H);
  for (size_t i = 0; i < ids.size(); ++i)
    for (int64_t h = 0; h < H; ++h) EXPECT_EQ(y[i * H + h], table[ids[i] * H + h]);
  ids[2] = 7;
  expect_error([&] { cpu::embedding(y.data(), ids.data(), 4, table.data(), V, H); },
               {"token id 7", "position 2"});
  ids[2] = -1;
  expect_error([&] { cpu::embedding(y.data(), ids.data(), 4, table.data(), V, H); }, {"token id -1"});
}

TEST(CpuKernels, Linear) {
  for (bool wt : {false, true})
    for (bool with_bias : {false, true})
      for (auto [M, K, N] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {7, 13, 5}, {33, 64, 17}}) {
        SCOPED_TRACE(::testing::Message() << "wt=" << wt << " bias=" << with_bias << " M=" << M << " K=" << K << " N=" << N);
        auto x = random_floats(M * K, 2), w = random_floats(K * N, 3), b = random_floats(N, 4);
        std::vector<float> y(M * N, 123.f);
        cpu::linear(y.data(), x.data(), w.data(), with_bias ? b.data() : nullptr, M, K, N, wt);
        std::vector<double> ref(M * N);
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < N; ++n) {
            double acc = with_bias ? b[n] : 0.0;
            for (int64_t k = 0; k < K; ++k) acc += double(x[m * K + k]) * (wt ? w[k * N + n] : w[n * K + k]);
            ref[m * N + n] = acc;
          }
        expect_near_rel(y, ref, 1e-5);
      }
}

TEST(CpuKernels, Slice) {
  std::vector<float> x = {0, 1, 2, 3, 4, 10, 11, 12, 13, 14};
  std::vector<float> y(4);
  cpu::slice(y.data(), x.data(), sizeof(float), 2, 5, 2, 2);
  EXPECT_EQ(y, (std::vector<float>{2, 3, 12, 13}));
}

TEST(CpuKernels, LayerNormAndRmsNorm) {
  const int64_t rows = 5, H = 37;
  auto x = random_floats(rows * H, 5, -3.f, 7.f);  // offset mean: two-pass variance matters
  for (float& v : x) v += 1000.f;
  auto g = random_floats(H, 6), b = random_floats(H, 7);
  std::vector<float> y(rows * H);
  cpu::layer_norm(y.data(), x.data(), g.data(), b.data(), rows, H, 1e-5);
  std::vector<double> ref = ref_layer_norm(x, g, b, rows, H, 1e-5);
  expect_near_rel(y, ref, 1e-5);

  auto x2 = random_floats(rows * H, 8);
  cpu::rms_norm(y.data(), x2.data(), g.data(), rows, H, 1e-6);
  for (int64_t r = 0; r < rows; ++r) {
    double ms = 0;
    for (int64_t i = 0; i < H; ++i) ms += double(x2[r * H + i]) * x2[r * H + i];
    ms /= H;
    for (int64_t i = 0; i < H; ++i) ref[r * H + i] = x2[r * H + i] / std::sqrt(ms + 1e-6) * g[i];
  }
  expect_near_rel(y, ref, 1e-5);
}

TEST(CpuKernels, RopeHandChecked) {
  // One token, one head, D = 4, theta = 100: f = [1, 0.1]; pos = 2 -> angles [2, 0.2].
  std::vector<float> x = {1, 2, 3, 4}, y(4);
  std::vector<int64_t> pos = {2};
  cpu::rope(y.data(), x.data(), pos.data(), 1, 1, 4, 100.0);
  double a0 = 2.0, a1 = 0.2;
  std::vector<double> ref = {1 * std::cos(a0) - 3 * std::sin(a0), 2 * std::cos(a1) - 4 * std::sin(a1),
                             3 * std::cos(a0) + 1 * std::sin(a0), 4 * std::cos(a1) + 2 * std::sin(a1)};
  expect_near_rel(y, ref, 1e-6);
  // Position 0 is the identity.
  pos[0] = 0;
  cpu::rope(y.data(), x.data(), pos.data(), 1, 1, 4, 100.0);
  EXPECT_EQ(y, x);
}

TEST(CpuKernels, RopeRandom) {
  const int64_t T = 5, N = 3, D = 6;
  auto x = random_floats(T * N * D, 9);
  std::vector<int64_t> pos = {0, 1, 7, 30, 2};
  std::vector<float> y(x.size());
  cpu::rope(y.data(), x.data(), pos.data(), T, N, D, 10000.0);
  std::vector<double> ref(x.size());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < N; ++h)
      for (int64_t i = 0; i < D / 2; ++i) {
        double a = pos[t] * std::pow(10000.0, -2.0 * i / D);
        const float* xh = &x[(t * N + h) * D];
        ref[(t * N + h) * D + i] = xh[i] * std::cos(a) - xh[i + D / 2] * std::sin(a);
        ref[(t * N + h) * D + i + D / 2] = xh[i + D / 2] * std::cos(a) + xh[i] * std::sin(a);
      }
  expect_near_rel(y, ref, 1e-6);
}

TEST(CpuKernels, AttentionHandChecked) {
  // B=1, S=2, one head, D=1, causal, scale 1: q=[1,1], k=[0,ln 3], v=[2,6].
  std::vector<float> q = {1, 1}, k = {0, static_cast<float>(std::log(3.0))}, v = {2, 6}, y(2);
  cpu::AttentionParams p;
  p.B = 1; p.S = 2; p.Nq = 1; p.Nkv = 1; p.D = 1; p.scale = 1; p.causal = true;
  cpu::attention(y.data(), q.data(), k.data(), v.data(), p);
  // Position 0 sees only itself; position 1 weights (1, 3)/4 -> 0.25*2 + 0.75*6 = 5.
  expect_near_rel(y, {2.0, 5.0}, 1e-6);
  p.causal = false;
  cpu::attention(y.data(), q.data(), k.data(), v.data(), p);
  expect_near_rel(y, {5.0, 5.0}, 1e-6);
}

TEST(CpuKernels, AttentionGqaRandom) {
  const int64_t B = 2, S = 5, Nq = 6, Nkv = 2, D = 3;
  auto q = random_floats(B * S * Nq * D, 10, -2, 2), k = random_floats(B * S * Nkv * D, 11, -2, 2),
       v = random_floats(B * S * Nkv * D, 12);
  for (bool causal : {true, false}) {
    cpu::AttentionParams p;
    p.B = B; p.S = S; p.Nq = Nq; p.Nkv = Nkv; p.D = D; p.scale = 0.7; p.causal = causal;
    std::vector<float> y(q.size());
    cpu::attention(y.data(), q.data(), k.data(), v.data(), p);
    expect_near_rel(y, ref_attention(q, k, v, B, S, Nq, Nkv, D, 0.7, causal), 1e-5);
  }
}

TEST(CpuKernels, AttentionCachePrefillThenDecodeEqualsFullCall) {
  const int64_t B = 2, S = 7, Nq = 4, Nkv = 2, D = 4, Bmax = 3, Smax = 9, prefill = 4;
  auto q = random_floats(B * S * Nq * D, 13, -2, 2), k = random_floats(B * S * Nkv * D, 14, -2, 2),
       v = random_floats(B * S * Nkv * D, 15);
  auto full = ref_attention(q, k, v, B, S, Nq, Nkv, D, 0.5, true);
  std::vector<float> kc(Bmax * Smax * Nkv * D, 0.f), vc(kc.size(), 0.f);
  std::vector<float> got(q.size());
  // Gather positions [s0, s0+n) of a [B,S,F] tensor.
  auto take = [&](const std::vector<float>& t, int64_t F, int64_t s0, int64_t n) {
    std::vector<float> out;
    for (int64_t b = 0; b < B; ++b)
      out.insert(out.end(), t.begin() + (b * S + s0) * F, t.begin() + (b * S + s0 + n) * F);
    return out;
  };
  int64_t P = 0;
  for (int64_t n : {prefill, int64_t{1}, int64_t{1}, int64_t{1}}) {
    auto qs = take(q, Nq * D, P, n), ks = take(k, Nkv * D, P, n), vs = take(v, Nkv * D, P, n);
    std::vector<float> y(qs.size());
    cpu::AttentionParams p;
    p.B = B; p.S = n; p.Nq = Nq; p.Nkv = Nkv; p.D = D; p.scale = 0.5; p.causal = true;
    p.P = P; p.k_cache = kc.data(); p.v_cache = vc.data(); p.Bmax = Bmax; p.Smax = Smax;
    cpu::attention(y.data(), qs.data(), ks.data(), vs.data(), p);
    for (int64_t b = 0; b < B; ++b)
      std::copy(y.begin() + b * n * Nq * D, y.begin() + (b + 1) * n * Nq * D, got.begin() + (b * S + P) * Nq * D);
    P += n;
  }
  ASSERT_EQ(P, S);
  expect_near_rel(got, full, 1e-5);
  // The cache holds k at rows 0..S-1 of each batch row, zeros elsewhere.
  for (int64_t b = 0; b < Bmax; ++b)
    for (int64_t s = 0; s < Smax; ++s)
      for (int64_t i = 0; i < Nkv * D; ++i) {
        float want = (b < B && s < S) ? k[(b * S + s) * Nkv * D + i] : 0.f;
        ASSERT_EQ(kc[(b * Smax + s) * Nkv * D + i], want);
      }
}

TEST(CpuKernels, Activations) {
  const int64_t n = 101;
  auto x = random_floats(n, 16, -6, 6);
  x[0] = -100.f;  // silu must not produce NaN
  x[1] = 100.f;
  std::vector<float> y(n);
  std::vector<double> ref(n);
  const double c = std::sqrt(2.0 / M_PI);
  cpu::gelu(y.data(), x.data(), n, true);
  for (int64_t i = 0; i < n; ++i) ref[i] = 0.5 * x[i] * (1 + std::tanh(c * (x[i] + 0.044715 * std::pow(double(x[i]), 3))));
  expect_near_rel(y, ref, 1e-6);
  cpu::gelu(y.data(), x.data(), n, false);
  for (int64_t i = 0; i < n; ++i) ref[i] = 0.5 * x[i] * (1 + std::erf(x[i] / std::sqrt(2.0)));
  expect_near_rel(y, ref, 1e-6);
  cpu::silu(y.data(), x.data(), n);
  for (int64_t i = 0; i < n; ++i) ref[i] = x[i] / (1 + std::exp(-double(x[i])));
  expect_near_rel(y, ref, 1e-6);
  auto b = random_floats(n, 17);
  cpu::add(y.data(), x.data(), b.data(), n);
  for (int64_t i = 0; i < n; ++i) ref[i] = double(x[i]) + b[i];
  expect_near_rel(y, ref, 1e-7);
  cpu::mul(y.data(), x.data(), b.data(), n);
  for (int64_t i = 0; i < n; ++i) ref[i] = double(x[i]) * b[i];
  expect_near_rel(y, ref, 1e-7);
}

TEST(CpuKernels, CrossEntropy) {
  const int64_t B = 2, S = 5, V = 11;
  auto logits = random_floats(B * S * V, 18, -20, 20);
  logits[3] = 80.f;  // large logit: logsumexp must stay finite
  std::vector<int64_t> labels = {1, 0, 10, 3, 4, 5, 6, 7, 8, 9};
  for (bool shift : {false, true}) {
    const double ref = ref_cross_entropy(logits, labels, B, S, V, shift);
    EXPECT_NEAR(cpu::cross_entropy(logits.data(), labels.data(), B, S, V, shift), ref, 1e-9 * std::abs(ref));
  }
  labels[7] = 11;
  expect_error([&] { cpu::cross_entropy(logits.data(), labels.data(), B, S, V, false); }, {"label 11", "[1,2]"});
}

// linear_int8 (docs/kernels.md "Quantization"), both activation modes, against a naive
// reference: weight-only y = x·(q·scale)ᵀ + bias in double; int8 activations quantize
// each row of x (s = max|x|/127, round to nearest even, clamp ±127), sum x_q·q exactly
// in integers and scale by s·scale[n]. An all-zero row gives the bias.
TEST(CpuKernels, LinearInt8BothActivationModes) {
  const int64_t M = 4, K = 37, N = 11;
  auto x = random_floats(M * K, 21, -2, 2);
  for (int64_t k = 0; k < K; ++k) x[2 * K + k] = 0.f;  // row 2: zeros
  x[3 * K + 5] = 7.5f;                                 // row 3: one large value
  std::vector<int8_t> q(N * K);
  std::mt19937 rng(5);
  for (int8_t& v : q) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  auto scale = random_floats(N, 22, 0.001f, 0.05f);
  auto bias = random_floats(N, 23);
  for (bool with_bias : {false, true}) {
    const float* b = with_bias ? bias.data() : nullptr;
    std::vector<float> yf(M * N), yi(M * N);
    cpu::linear_int8(yf.data(), x.data(), q.data(), scale.data(), b, M, K, N, false);
    cpu::linear_int8(yi.data(), x.data(), q.data(), scale.data(), b, M, K, N, true);
    std::vector<double> rf(M * N), ri(M * N);
    for (int64_t m = 0; m < M; ++m) {
      float amax = 0.f;
      for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(x[m * K + k]));
      const float s = amax > 0.f ? amax / 127.f : 1.f;
      std::vector<int64_t> xq(K);
      for (int64_t k = 0; k < K; ++k) {
        float r = std::nearbyint(x[m * K + k] / s);
        xq[k] = static_cast<int64_t>(std::min(127.f, std::max(-127.f, r)));
        ASSERT_LE(std::abs(xq[k]), 127);
      }
      for (int64_t n = 0; n < N; ++n) {
        double accf = 0;
        int64_t acci = 0;
        for (int64_t k = 0; k < K; ++k) {
          accf += static_cast<double>(x[m * K + k]) * q[n * K + k] * scale[n];
          acci += xq[k] * q[n * K + k];
        }
        const double bn = with_bias ? bias[n] : 0.0;
        rf[m * N + n] = accf + bn;
        ri[m * N + n] = static_cast<double>(acci) * s * scale[n] + bn;
      }
    }
    expect_near_rel(yf, rf, 1e-5);
    expect_near_rel(yi, ri, 1e-5);
    for (int64_t n = 0; n < N; ++n) {
      EXPECT_EQ(yi[2 * N + n], with_bias ? bias[n] : 0.f);  // zero row
      EXPECT_EQ(yf[2 * N + n], with_bias ? bias[n] : 0.f);
    }
    // INT8 activations approximate the weight-only result: each x_q·s is within s/2 of x.
    for (int64_t m = 0; m < M; ++m) {
      float amax = 0.f;
      for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(x[m * K + k]));
      for (int64_t n = 0; n < N; ++n) {
        double bound = 0.5 * amax / 127.0 * 127.0 * scale[n] * K + 1e-5;
        EXPECT_NEAR(yi[m * N + n], yf[m * N + n], bound) << m << "," << n;
      }
    }
  }
}
