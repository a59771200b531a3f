// The training kernels of the CPU backend (docs/kernels.md "Training kernels")
// against central finite differences of naive float64 forwards, or naive float64
// references, on small random shapes with odd sizes.
#include <cmath>
#include <functional>
#include <type_traits>

#include "runtime/backends/cpu/cpu_backend.h"
#include "runtime/backends/cpu/cpu_kernels.h"
#include "runtime/core/kernels.h"
#include "test_util.h"

using namespace bmsys::rt;
using namespace bmsys::rt::test;

namespace {

using Vec = std::vector<double>;

Vec dbl(const std::vector<float>& v) { return Vec(v.begin(), v.end()); }

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// --- float64 forwards --------------------------------------------------------------

Vec rms_norm_d(const Vec& x, const Vec& g, int64_t rows, int64_t H, double eps) {
  Vec y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ms = 0;
    for (int64_t i = 0; i < H; ++i) ms += x[r * H + i] * x[r * H + i];
    ms /= H;
    for (int64_t i = 0; i < H; ++i) y[r * H + i] = x[r * H + i] / std::sqrt(ms + eps) * g[i];
  }
  return y;
}

Vec rope_d(const Vec& x, const std::vector<int64_t>& pos, int64_t T, int64_t N, int64_t D, double theta) {
  Vec y(x.size());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < N; ++h)
      for (int64_t i = 0; i < D / 2; ++i) {
        double a = pos[t] * std::pow(theta, -2.0 * i / D);
        const double* xh = &x[(t * N + h) * D];
        y[(t * N + h) * D + i] = xh[i] * std::cos(a) - xh[i + D / 2] * std::sin(a);
        y[(t * N + h) * D + i + D / 2] = xh[i + D / 2] * std::cos(a) + xh[i] * std::sin(a);
      }
  return y;
}

// Slices [off, off+n) of a flat vector.
Vec part(const Vec& x, size_t off, size_t n) { return Vec(x.begin() + off, x.begin() + off + n); }
Vec concat(std::initializer_list<Vec> vs) {
  Vec out;
  for (const Vec& v : vs) out.insert(out.end(), v.begin(), v.end());
  return out;
}

}  // namespace

TEST(CpuTrainKernels, EmbeddingGrad) {
  const int64_t V = 9, H = 5, n = 13;
  std::vector<int64_t> ids = {3, 0, 8, 3, 3, 1, 0, 7, 7, 2, 3, 8, 0};
  auto dy = random_floats(n * H, 101);
  std::vector<float> dt(V * H, 42.f);
  cpu::embedding_grad(dt.data(), ids.data(), n, dy.data(), V, H);
  Vec ref(V * H, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t h = 0; h < H; ++h) ref[ids[i] * H + h] += dy[i * H + h];
  expect_near_rel(dt, ref, 1e-6);  // rows 4..6 never used: zero
  ids[5] = 9;
  expect_error([&] { cpu::embedding_grad(dt.data(), ids.data(), n, dy.data(), V, H); }, {"token id 9", "position 5"});
}

TEST(CpuTrainKernels, LinearGrads) {
  for (bool wt : {false, true})
    for (auto [M, K, N] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {7, 13, 5}, {33, 19, 17}}) {
      SCOPED_TRACE(::testing::Message() << "wt=" << wt << " M=" << M << " K=" << K << " N=" << N);
      auto dy = random_floats(M * N, 102), x = random_floats(M * K, 103), w = random_floats(N * K, 104);
      auto W = [&](int64_t n, int64_t k) { return double(wt ? w[k * N + n] : w[n * K + k]); };
      std::vector<float> dx(M * K), dw(N * K);
      cpu::linear_grad_input(dx.data(), dy.data(), w.data(), M, K, N, wt);
      Vec rdx(M * K, 0.0), rdw(N * K, 0.0);
      for (int64_t m = 0; m < M; ++m)
        for (int64_t k = 0; k < K; ++k)
          for (int64_t n = 0; n < N; ++n) rdx[m * K + k] += double(dy[m * N + n]) * W(n, k);
      expect_near_rel(dx, rdx, 1e-5);
      cpu::linear_grad_weight(dw.data(), dy.data(), x.data(), M, K, N, wt);
      for (int64_t m = 0; m < M; ++m)
        for (int64_t k = 0; k < K; ++k)
          for (int64_t n = 0; n < N; ++n) rdw[wt ? k * N + n : n * K + k] += double(dy[m * N + n]) * x[m * K + k];
      expect_near_rel(dw, rdw, 1e-6);
    }
}

TEST(CpuTrainKernels, SumRowsAndSliceGrad) {
  const int64_t rows = 7, N = 131;  // more columns than one block
  auto dy = random_floats(rows * N, 105);
  std::vector<float> db(N);
  cpu::sum_rows(db.data(), dy.data(), rows, N);
  Vec ref(N, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < N; ++c) ref[c] += dy[r * N + c];
  expect_near_rel(db, ref, 1e-6);

  std::vector<float> g = {1, 2, 3, 4}, dx(10, 9.f);
  cpu::slice_grad(dx.data(), g.data(), sizeof(float), 2, 2, 1, 5);
  EXPECT_EQ(dx, (std::vector<float>{0, 1, 2, 0, 0, 0, 3, 4, 0, 0}));
}

TEST(CpuTrainKernels, LayerNormGradMatchesFiniteDifferences) {
  const int64_t rows = 5, H = 71;  // H > one column block
  const double eps = 1e-5;
  auto x = random_floats(rows * H, 106, -2, 3), g = random_floats(H, 107), b = random_floats(H, 108),
       dy = random_floats(rows * H, 109);
  std::vector<float> dx(rows * H), dg(H), dbeta(H);
  cpu::layer_norm_grad(dx.data(), dg.data(), dbeta.data(), x.data(), g.data(), dy.data(), rows, H, eps);
  Vec dyd = dbl(dy);
  Vec all = fd_grad([&](const Vec& p) {
    return dot(dyd, ref_layer_norm(part(p, 0, rows * H), part(p, rows * H, H), part(p, rows * H + H, H), rows, H, eps));
  }, concat({dbl(x), dbl(g), dbl(b)}));
  expect_near_rel(dx, part(all, 0, rows * H), 1e-5);
  expect_near_rel(dg, part(all, rows * H, H), 1e-5);
  expect_near_rel(dbeta, part(all, rows * H + H, H), 1e-5);
}

TEST(CpuTrainKernels, RmsNormGradMatchesFiniteDifferences) {
  const int64_t rows = 3, H = 67;
  const double eps = 1e-6;
  auto x = random_floats(rows * H, 110), g = random_floats(H, 111), dy = random_floats(rows * H, 112);
  std::vector<float> dx(rows * H), dg(H);
  cpu::rms_norm_grad(dx.data(), dg.data(), x.data(), g.data(), dy.data(), rows, H, eps);
  Vec dyd = dbl(dy);
  Vec all = fd_grad([&](const Vec& p) {
    return dot(dyd, rms_norm_d(part(p, 0, rows * H), part(p, rows * H, H), rows, H, eps));
  }, concat({dbl(x), dbl(g)}));
  expect_near_rel(dx, part(all, 0, rows * H), 1e-5);
  expect_near_rel(dg, part(all, rows * H, H), 1e-5);
}

TEST(CpuTrainKernels, RopeGradMatchesFiniteDifferences) {
  const int64_t T = 5, N = 3, D = 6;
  std::vector<int64_t> pos = {0, 1, 7, 30, 2};
  auto x = random_floats(T * N * D, 113), dy = random_floats(T * N * D, 114);
  std::vector<float> dx(x.size());
  cpu::rope_grad(dx.data(), dy.data(), pos.data(), T, N, D, 10000.0);
  Vec dyd = dbl(dy);
  expect_near_rel(dx, fd_grad([&](const Vec& p) { return dot(dyd, rope_d(p, pos, T, N, D, 10000.0)); }, dbl(x)), 1e-5);
}

TEST(CpuTrainKernels, AttentionGradGqaMatchesFiniteDifferences) {
  const int64_t B = 2, S = 5, Nq = 6, Nkv = 2, D = 3;
  const double scale = 0.7;
  auto q = random_floats(B * S * Nq * D, 115, -2, 2), k = random_floats(B * S * Nkv * D, 116, -2, 2),
       v = random_floats(B * S * Nkv * D, 117), dy = random_floats(B * S * Nq * D, 118);
  const size_t nq = q.size(), nk = k.size();
  for (bool causal : {true, false}) {
    SCOPED_TRACE(causal ? "causal" : "not causal");
    cpu::AttentionParams p;
    p.B = B; p.S = S; p.Nq = Nq; p.Nkv = Nkv; p.D = D; p.scale = scale; p.causal = causal;
    std::vector<float> dq(nq), dk(nk), dv(nk);
    cpu::attention_grad(dq.data(), dk.data(), dv.data(), q.data(), k.data(), v.data(), dy.data(), p);
    Vec dyd = dbl(dy);
    Vec all = fd_grad([&](const Vec& x) {
      return dot(dyd, ref_attention(part(x, 0, nq), part(x, nq, nk), part(x, nq + nk, nk), B, S, Nq, Nkv, D, scale, causal));
    }, concat({dbl(q), dbl(k), dbl(v)}));
    expect_near_rel(dq, part(all, 0, nq), 1e-5);
    expect_near_rel(dk, part(all, nq, nk), 1e-5);
    expect_near_rel(dv, part(all, nq + nk, nk), 1e-5);
  }
}

TEST(CpuTrainKernels, ActivationGradsMatchFiniteDifferences) {
  const int64_t n = 101;
  auto x = random_floats(n, 119, -6, 6), dy = random_floats(n, 120);
  x[0] = -40.f;  // saturated: no NaN
  x[1] = 40.f;
  std::vector<float> dx(n);
  const double c = std::sqrt(2.0 / M_PI);
  auto fd = [&](auto f) {
    Vec g(n);
    for (int64_t i = 0; i < n; ++i) {
      double h = 1e-6;
      g[i] = dy[i] * (f(x[i] + h) - f(x[i] - h)) / (2 * h);
    }
    return g;
  };
  cpu::gelu_grad(dx.data(), x.data(), dy.data(), n, true);
  expect_near_rel(dx, fd([&](double v) { return 0.5 * v * (1 + std::tanh(c * (v + 0.044715 * v * v * v))); }), 1e-5);
  cpu::gelu_grad(dx.data(), x.data(), dy.data(), n, false);
  expect_near_rel(dx, fd([&](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }), 1e-5);
  cpu::silu_grad(dx.data(), x.data(), dy.data(), n);
  expect_near_rel(dx, fd([&](double v) { return v / (1 + std::exp(-v)); }), 1e-5);
}

TEST(CpuTrainKernels, CrossEntropyGradMatchesFiniteDifferences) {
  const int64_t B = 2, S = 5, V = 11;
  auto logits = random_floats(B * S * V, 121, -5, 5);
  std::vector<int64_t> labels = {1, 0, 10, 3, 4, 5, 6, 7, 8, 9};
  for (bool shift : {false, true}) {
    std::vector<float> d(logits.size(), 7.f);
    cpu::cross_entropy_grad(d.data(), logits.data(), labels.data(), B, S, V, shift);
    Vec ref = fd_grad([&](const Vec& p) { return ref_cross_entropy(p, labels, B, S, V, shift); }, dbl(logits));
    expect_near_rel(d, ref, 1e-6);
    if (shift)  // the last position of each row is not scored
      for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < V; ++i) EXPECT_EQ(d[((b * S) + S - 1) * V + i], 0.f);
  }
  labels[7] = -1;
  std::vector<float> d(logits.size());
  expect_error([&] { cpu::cross_entropy_grad(d.data(), logits.data(), labels.data(), B, S, V, false); }, {"label -1", "[1,2]"});
}

TEST(CpuTrainKernels, SumSquares) {
  const int64_t n = 20011;  // spans several blocks
  auto x = random_floats(n, 122, -3, 3);
  double ref = 0;
  for (float v : x) ref += double(v) * v;
  EXPECT_NEAR(cpu::sum_squares(x.data(), n), ref, 1e-12 * ref);
  EXPECT_EQ(cpu::sum_squares(x.data(), 0), 0.0);
}

namespace {

Attrs opt_attrs(std::initializer_list<std::pair<const char*, double>> floats, const std::string& schedule = "",
                int64_t warmup = -1, int64_t total = -1) {
  Attrs a;
  for (auto& [n, v] : floats) {
    AttrValue x;
    x.type = AttrType::Float;
    x.floats = {v};
    a.set(n, x);
  }
  if (!schedule.empty()) {
    AttrValue s;
    s.type = AttrType::String;
    s.str = schedule;
    a.set("schedule", s);
  }
  for (auto [n, v] : {std::pair<const char*, int64_t>{"warmup_steps", warmup}, {"total_steps", total}})
    if (v >= 0) {
      AttrValue x;
      x.type = AttrType::Int;
      x.ints = {v};
      a.set(n, x);
    }
  return a;
}

}  // namespace

TEST(CpuTrainKernels, LrScheduleHandChecked) {
  auto s = LrSchedule::from_attrs(opt_attrs({{"lr", 1.0}, {"min_lr", 0.1}}, "cosine", 4, 14));
  EXPECT_DOUBLE_EQ(s.at(1), 0.25);  // warmup: lr*T/warmup
  EXPECT_DOUBLE_EQ(s.at(4), 1.0);
  EXPECT_DOUBLE_EQ(s.at(9), 0.1 + 0.9 * 0.5);  // p = 0.5
  EXPECT_DOUBLE_EQ(s.at(14), 0.1);
  EXPECT_DOUBLE_EQ(s.at(100), 0.1);  // clamped
  auto lin = LrSchedule::from_attrs(opt_attrs({{"lr", 2.0}}, "linear", 0, 10));
  EXPECT_DOUBLE_EQ(lin.at(5), 1.0);
  EXPECT_DOUBLE_EQ(lin.at(10), 0.0);
  auto c = LrSchedule::from_attrs(opt_attrs({{"lr", 3e-4}}));
  EXPECT_DOUBLE_EQ(c.at(1), 3e-4);
  EXPECT_DOUBLE_EQ(c.at(1000), 3e-4);
  expect_error([] { LrSchedule::from_attrs(opt_attrs({{"lr", 1.0}}, "exp")); }, {"'schedule'", "\"exp\""});
}

TEST(CpuTrainKernels, AdamWMatchesPyTorchAlgorithmOverSteps) {
  // torch.optim.AdamW after clip_grad_norm_, written out in float64.
  const int64_t n = 37;
  const double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1, max_norm = 1.0;
  auto p0 = random_floats(n, 123);
  std::vector<float> param = p0, m(n, 0.f), v(n, 0.f);
  Vec rp = dbl(p0), rm(n, 0.0), rv(n, 0.0);
  for (int64_t T = 1; T <= 4; ++T) {
    auto grad = random_floats(n, 200 + T, -T, T);  // norms above and below max_norm
    double norm = std::sqrt(cpu::sum_squares(grad.data(), n));
    cpu::AdamWParams p;
    p.lr = lr; p.beta1 = b1; p.beta2 = b2; p.eps = eps; p.weight_decay = wd; p.step = T;
    p.clip = cpu::clip_coefficient(max_norm, norm);
    cpu::adamw(param.data(), grad.data(), m.data(), v.data(), n, p);
    double clip = std::min(1.0, max_norm / (norm + 1e-6));
    for (int64_t i = 0; i < n; ++i) {
      double g = grad[i] * clip;
      rp[i] *= 1 - lr * wd;
      rm[i] = b1 * rm[i] + (1 - b1) * g;
      rv[i] = b2 * rv[i] + (1 - b2) * g * g;
      double step_size = lr / (1 - std::pow(b1, T));
      double denom = std::sqrt(rv[i]) / std::sqrt(1 - std::pow(b2, T)) + eps;
      rp[i] -= step_size * rm[i] / denom;
    }
  }
  expect_near_rel(param, rp, 1e-6);
  expect_near_rel(m, rm, 1e-6);
  expect_near_rel(v, rv, 1e-6);
}

TEST(CpuTrainKernels, SgdMatchesPyTorchAlgorithmOverSteps) {
  const int64_t n = 23;
  const double lr = 0.05, mom = 0.9, wd = 0.01;
  for (double momentum : {0.0, mom}) {
    auto p0 = random_floats(n, 124);
    std::vector<float> param = p0, buf(n, 0.f);
    Vec rp = dbl(p0), rb(n, 0.0);
    for (int64_t T = 1; T <= 3; ++T) {
      auto grad = random_floats(n, 300 + T);
      cpu::SgdParams p;
      p.lr = lr; p.momentum = momentum; p.weight_decay = wd; p.step = T; p.clip = 0.5;
      cpu::sgd(param.data(), grad.data(), buf.data(), n, p);
      for (int64_t i = 0; i < n; ++i) {
        double g = 0.5 * grad[i] + wd * rp[i];
        rb[i] = (T == 1 || momentum == 0) ? g : momentum * rb[i] + g;
        rp[i] -= lr * rb[i];
      }
    }
    expect_near_rel(param, rp, 1e-6);
  }
  EXPECT_EQ(cpu::clip_coefficient(0.0, 100.0), 1.0);
  EXPECT_EQ(cpu::clip_coefficient(1.0, 0.5), 1.0);
  EXPECT_NEAR(cpu::clip_coefficient(1.0, 4.0), 0.25, 1e-7);
}

// Dynamic loss scaling through the backend's launch (docs/kernels.md): with
// loss_scaling = 1, cross_entropy_grad multiplies by L, adamw/sgd divide the grad and
// the norm by L (bit-identical to the unscaled update for a power-of-two L) and skip
// the update entirely when the unscaled norm is not finite.
TEST(CpuTrainKernels, LossScalingScalesAndSkips) {
  CpuBackend be;
  const int64_t B = 2, S = 3, V = 5;
  auto logits = random_floats(B * S * V, 7);
  std::vector<int64_t> labels = {1, 4, 0, 2, 3, 1};
  std::vector<float> d1(B * S * V), dL(B * S * V);
  Attrs ce;
  ce.set("shift", AttrValue{AttrType::Int, {1}, {}, ""});
  Attrs ce_scaled = ce;
  ce_scaled.set("loss_scaling", AttrValue{AttrType::Int, {1}, {}, ""});
  auto ce_launch = [&](const Attrs& a, float* out, double L) {
    KernelLaunch l;
    l.kernel = KernelId::CrossEntropyGrad;
    l.attrs = &a;
    l.inputs = {TensorView{logits.data(), DType::F32, {B, S, V}}, TensorView{labels.data(), DType::I64, {B, S}}};
    l.outputs = {TensorView{out, DType::F32, {B, S, V}}};
    l.ctx.loss_scale = L;
    check_launch(l);
    be.launch(l);
  };
  ce_launch(ce, d1.data(), 1024.0);  // no loss_scaling: L ignored
  ce_launch(ce_scaled, dL.data(), 1024.0);
  for (size_t i = 0; i < d1.size(); ++i) ASSERT_EQ(dL[i], d1[i] * 1024.0f) << i;

  const int64_t n = 19;
  auto grad = random_floats(n, 11, -3, 3);
  std::vector<float> grad_scaled(n);
  for (int64_t i = 0; i < n; ++i) grad_scaled[i] = grad[i] * 65536.0f;
  float norm = static_cast<float>(std::sqrt(cpu::sum_squares(grad.data(), n)));
  float norm_scaled = norm * 65536.0f, norm_inf = INFINITY, norm_nan = NAN;
  auto attr = [](auto v) {
    AttrValue a;
    if constexpr (std::is_same_v<decltype(v), int>) {
      a.type = AttrType::Int;
      a.ints = {v};
    } else {
      a.type = AttrType::Float;
      a.floats = {v};
    }
    return a;
  };
  for (bool adam : {true, false}) {
    Attrs opt;
    opt.set("lr", attr(1e-2));
    opt.set("weight_decay", attr(0.1));
    opt.set("max_norm", attr(1.0));
    if (adam) {
      opt.set("beta1", attr(0.9));
      opt.set("beta2", attr(0.95));
      opt.set("eps", attr(1e-8));
    } else {
      opt.set("momentum", attr(0.9));
    }
    Attrs opt_scaled = opt;
    opt_scaled.set("loss_scaling", attr(1));
    auto run = [&](const Attrs& a, std::vector<float>& g, float* nrm, double L) {
      std::vector<float> param = random_floats(n, 5), m(n, 0.25f), v(n, 0.5f);
      KernelLaunch l;
      l.kernel = adam ? KernelId::AdamW : KernelId::Sgd;
      l.attrs = &a;
      TensorView pv{param.data(), DType::F32, {n}}, mv{m.data(), DType::F32, {n}}, vv{v.data(), DType::F32, {n}};
      l.inputs = {pv, TensorView{g.data(), DType::F32, {n}}, mv};
      if (adam) l.inputs.push_back(vv);
      l.inputs.push_back(TensorView{nrm, DType::F32, {}});
      l.outputs = adam ? std::vector<TensorView>{pv, mv, vv} : std::vector<TensorView>{pv, mv};
      l.ctx.step = 2;
      l.ctx.loss_scale = L;
      check_launch(l);
      be.launch(l);
      param.insert(param.end(), m.begin(), m.end());
      param.insert(param.end(), v.begin(), v.end());
      return param;
    };
    auto plain = run(opt, grad, &norm, 1.0);
    auto scaled = run(opt_scaled, grad_scaled, &norm_scaled, 65536.0);
    for (int64_t i = 0; i < 3 * n; ++i) ASSERT_EQ(scaled[i], plain[i]) << (adam ? "adamw " : "sgd ") << i;
    std::vector<float> untouched = random_floats(n, 5);
    untouched.resize(n, 0.f);
    untouched.insert(untouched.end(), static_cast<size_t>(n), 0.25f);
    untouched.insert(untouched.end(), static_cast<size_t>(n), 0.5f);
    EXPECT_EQ(run(opt_scaled, grad_scaled, &norm_inf, 65536.0), untouched);
    EXPECT_EQ(run(opt_scaled, grad_scaled, &norm_nan, 65536.0), untouched);
  }
  // loss_scaling must be 0 or 1; L positive.
  Attrs bad = ce;
  bad.set("loss_scaling", attr(2));
  expect_error([&] { ce_launch(bad, dL.data(), 1.0); }, {"loss_scaling", "0 or 1"});
  expect_error([&] { ce_launch(ce_scaled, dL.data(), 0.0); }, {"loss scale must be a positive number"});
}
