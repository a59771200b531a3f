// The fused kernels of the CPU reference (bmsys-fuse-elementwise, docs/kernels.md
// "Fused kernels") against the unfused kernels they replace, launched
// through the backend on random odd shapes: the results must be identical bit for bit
// (the CPU backend rounds exactly as the unfused chain does), and check_launch must
// refuse operands of the wrong shape or dtype.
#include <cmath>
#include <cstring>

#include "runtime/backends/cpu/cpu_backend.h"
#include "runtime/core/kernels.h"
#include "runtime/core/tensor.h"
#include "test_util.h"

using namespace bmsys::rt;
using namespace bmsys::rt::test;

namespace {

struct Launch {
  KernelId kernel;
  std::vector<std::vector<float>*> in, out;
  std::vector<Shape> in_shapes, out_shapes;
  double eps = -1;  // set: the launch has attribute eps
};

void run(CpuBackend& be, const Launch& x) {
  Attrs a;
  if (x.eps >= 0) {
    AttrValue v;
    v.type = AttrType::Float;
    v.floats = {x.eps};
    a.set("eps", v);
  }
  KernelLaunch l;
  l.kernel = x.kernel;
  l.attrs = &a;
  for (size_t i = 0; i < x.in.size(); ++i) l.inputs.push_back({x.in[i]->data(), DType::F32, x.in_shapes[i]});
  for (size_t i = 0; i < x.out.size(); ++i) l.outputs.push_back({x.out[i]->data(), DType::F32, x.out_shapes[i]});
  check_launch(l);
  be.launch(l);
}

void expect_same(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << what << " differs";
}

const Shape kShapes[] = {{1, 1, 1}, {2, 3, 7}, {3, 5, 129}, {1, 17, 64}};

TEST(CpuFused, SwiGluMatchesSiluMul) {
  CpuBackend be;
  uint32_t seed = 1;
  for (const Shape& s : kShapes) {
    const size_t n = static_cast<size_t>(shape_numel(s));
    auto g = random_floats(n, seed++, -4, 4), u = random_floats(n, seed++);
    std::vector<float> act(n), want(n), got(n);
    run(be, {KernelId::Silu, {&g}, {&act}, {s}, {s}});
    run(be, {KernelId::Mul, {&act, &u}, {&want}, {s, s}, {s}});
    run(be, {KernelId::SwiGlu, {&g, &u}, {&got}, {s, s}, {s}});
    expect_same(got, want, "swiglu");
  }
}

TEST(CpuFused, SwiGluGradMatchesUnfusedBackward) {
  CpuBackend be;
  uint32_t seed = 10;
  for (const Shape& s : kShapes) {
    const size_t n = static_cast<size_t>(shape_numel(s));
    auto g = random_floats(n, seed++, -4, 4), u = random_floats(n, seed++), dy = random_floats(n, seed++);
    std::vector<float> act(n), dact(n), want_dg(n), want_du(n), dg(n), du(n);
    run(be, {KernelId::Silu, {&g}, {&act}, {s}, {s}});
    run(be, {KernelId::Mul, {&dy, &u}, {&dact}, {s, s}, {s}});
    run(be, {KernelId::SiluGrad, {&g, &dact}, {&want_dg}, {s, s}, {s}});
    run(be, {KernelId::Mul, {&dy, &act}, {&want_du}, {s, s}, {s}});
    run(be, {KernelId::SwiGluGrad, {&g, &u, &dy}, {&dg, &du}, {s, s, s}, {s, s}});
    expect_same(dg, want_dg, "dgate");
    expect_same(du, want_du, "dup");
  }
}

TEST(CpuFused, AddRmsNormMatchesAddThenNorm) {
  CpuBackend be;
  uint32_t seed = 20;
  for (const Shape& s : kShapes) {
    const size_t n = static_cast<size_t>(shape_numel(s));
    const Shape h{s.back()};
    auto a = random_floats(n, seed++), b = random_floats(n, seed++);
    auto gamma = random_floats(static_cast<size_t>(s.back()), seed++, 0.5f, 1.5f);
    std::vector<float> want_sum(n), want_y(n), sum(n), y(n);
    run(be, {KernelId::Add, {&a, &b}, {&want_sum}, {s, s}, {s}});
    run(be, {KernelId::RmsNorm, {&want_sum, &gamma}, {&want_y}, {s, h}, {s}, 1e-5});
    run(be, {KernelId::AddRmsNorm, {&a, &b, &gamma}, {&sum, &y}, {s, s, h}, {s, s}, 1e-5});
    expect_same(sum, want_sum, "sum");
    expect_same(y, want_y, "y");
  }
}

TEST(CpuFused, RmsNormGradAddMatchesGradThenAdd) {
  CpuBackend be;
  uint32_t seed = 30;
  for (const Shape& s : kShapes) {
    const size_t n = static_cast<size_t>(shape_numel(s)), H = static_cast<size_t>(s.back());
    const Shape h{s.back()};
    auto x = random_floats(n, seed++), dy = random_floats(n, seed++), res = random_floats(n, seed++);
    auto gamma = random_floats(H, seed++, 0.5f, 1.5f);
    std::vector<float> dx0(n), want_dg(H), want_dx(n), dx(n), dg(H);
    run(be, {KernelId::RmsNormGrad, {&x, &gamma, &dy}, {&dx0, &want_dg}, {s, h, s}, {s, h}, 1e-5});
    run(be, {KernelId::Add, {&res, &dx0}, {&want_dx}, {s, s}, {s}});
    run(be, {KernelId::RmsNormGradAdd, {&x, &gamma, &dy, &res}, {&dx, &dg}, {s, h, s, s}, {s, h}, 1e-5});
    expect_same(dx, want_dx, "dx");
    expect_same(dg, want_dg, "dgamma");
  }
}

TEST(CpuFused, LaunchChecksNameTheOperand) {
  CpuBackend be;
  std::vector<float> a(12), b(12), c(12), d(12), g(4), g3(3);
  const Shape s{1, 3, 4}, s2{1, 4, 3};
  expect_error([&] { run(be, {KernelId::SwiGlu, {&a, &b}, {&c}, {s, s2}, {s}}); }, {"up (input 1)", "shape"});
  expect_error([&] { run(be, {KernelId::SwiGluGrad, {&a, &b, &c}, {&d, &a}, {s, s, s}, {s, s2}}); },
               {"dup (output 1)"});
  expect_error([&] { run(be, {KernelId::AddRmsNorm, {&a, &b, &g3}, {&c, &d}, {s, s, {3}}, {s, s}, 1e-5}); },
               {"gamma", "[3]"});
  expect_error([&] { run(be, {KernelId::AddRmsNorm, {&a, &b, &g}, {&c, &d}, {s, s, {4}}, {s, s}}); },
               {"attribute 'eps' is missing"});
  expect_error(
      [&] { run(be, {KernelId::RmsNormGradAdd, {&a, &g, &b, &c}, {&d, &g3}, {s, {4}, s, s2}, {s, {3}}, 1e-5}); },
      {"residual (input 3)"});
}

// --- rope_attention: rope(q), rope(k), attention in one kernel ---------------------------

struct AttnCase {
  int64_t B, S, Nq, Nkv, D;
  bool causal;
  double theta;
};

// attention's attributes, and rope's head_dim and theta (with_theta: rope_attention's).
Attrs attention_attrs(const AttnCase& c, bool with_theta) {
  Attrs a;
  a.set("num_heads", int_attr(c.Nq));
  a.set("num_kv_heads", int_attr(c.Nkv));
  a.set("head_dim", int_attr(c.D));
  a.set("scale", float_attr(1.0 / std::sqrt(static_cast<double>(c.D))));
  a.set("causal", int_attr(c.causal ? 1 : 0));
  if (with_theta) a.set("theta", float_attr(c.theta));
  return a;
}

TensorView fview(std::vector<float>& v, Shape s) { return {v.data(), DType::F32, std::move(s)}; }
TensorView iview(std::vector<int64_t>& v, Shape s) { return {v.data(), DType::I64, std::move(s)}; }

void launch(CpuBackend& be, KernelId k, const Attrs& a, std::vector<TensorView> in, std::vector<TensorView> out,
            const LaunchContext& ctx) {
  KernelLaunch l;
  l.kernel = k;
  l.attrs = &a;
  l.inputs = std::move(in);
  l.outputs = std::move(out);
  l.ctx = ctx;
  check_launch(l);
  be.launch(l);
}

// One call of both paths, each with its own cache (kc, vc of [Bmax,Smax,Nkv,D], or
// empty: no cache): rope + rope + attention, and rope_attention. y, and the caches
// the calls leave, must be equal bit for bit.
struct TwoPaths {
  std::vector<float> kc_ref, vc_ref, kc, vc;
  Shape cache_shape;

  void call(CpuBackend& be, const AttnCase& c, const LaunchContext& ctx, uint32_t seed, const char* what) {
    SCOPED_TRACE(what);
    const Shape qs{c.B, c.S, c.Nq * c.D}, ks{c.B, c.S, c.Nkv * c.D}, ps{c.B, c.S};
    auto q = random_floats(static_cast<size_t>(shape_numel(qs)), seed, -2, 2);
    auto k = random_floats(static_cast<size_t>(shape_numel(ks)), seed + 1, -2, 2);
    auto v = random_floats(static_cast<size_t>(shape_numel(ks)), seed + 2);
    // The positions of a call (P + s), shifted per row so that rows rotate differently.
    std::vector<int64_t> pos(static_cast<size_t>(c.B * c.S));
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t s = 0; s < c.S; ++s) pos[b * c.S + s] = ctx.start_pos + s + 37 * b;
    std::vector<float> qr(q.size()), kr(k.size()), want(q.size()), got(q.size());
    const bool cached = !kc.empty();

    Attrs rope;
    rope.set("head_dim", int_attr(c.D));
    rope.set("theta", float_attr(c.theta));
    launch(be, KernelId::Rope, rope, {fview(q, qs), iview(pos, ps)}, {fview(qr, qs)}, ctx);
    launch(be, KernelId::Rope, rope, {fview(k, ks), iview(pos, ps)}, {fview(kr, ks)}, ctx);
    std::vector<TensorView> in{fview(qr, qs), fview(kr, ks), fview(v, ks)};
    if (cached) {
      in.push_back(fview(kc_ref, cache_shape));
      in.push_back(fview(vc_ref, cache_shape));
    }
    launch(be, KernelId::Attention, attention_attrs(c, false), in, {fview(want, qs)}, ctx);

    in = {fview(q, qs), fview(k, ks), fview(v, ks), iview(pos, ps)};
    if (cached) {
      in.push_back(fview(kc, cache_shape));
      in.push_back(fview(vc, cache_shape));
    }
    launch(be, KernelId::RopeAttention, attention_attrs(c, true), in, {fview(got, qs)}, ctx);
    expect_same(got, want, "y");
    if (cached) {
      expect_same(kc, kc_ref, "k_cache");
      expect_same(vc, vc_ref, "v_cache");
    }
  }
};

TEST(CpuFused, RopeAttentionMatchesRopeThenAttention) {
  CpuBackend be;
  // Without a cache (a prefill of a training step's forward): GQA, MHA, causal or not.
  const AttnCase uncached[] = {{2, 5, 4, 2, 8, true, 1e4}, {1, 3, 3, 3, 4, false, 1e4}, {3, 7, 6, 2, 16, true, 5e5}};
  uint32_t seed = 40;
  for (const AttnCase& c : uncached) {
    TwoPaths t;
    LaunchContext ctx;
    ctx.batch = c.B;
    ctx.seq = c.S;
    t.call(be, c, ctx, seed += 3, "without a cache");
  }
}

TEST(CpuFused, RopeAttentionWithCachePrefillThenDecode) {
  CpuBackend be;
  // Grouped-query (6 query heads on 2 kv heads), batch 2 in cache rows 1..2 of 3: a
  // prefill of 4 tokens, then decode steps of one token each until the cache is full.
  const int64_t Bmax = 3, Smax = 8;
  for (bool causal : {true, false}) {
    AttnCase c{2, 4, 6, 2, 16, causal, 1e4};
    TwoPaths t;
    t.cache_shape = {Bmax, Smax, c.Nkv, c.D};
    const size_t n = static_cast<size_t>(shape_numel(t.cache_shape));
    t.kc_ref = random_floats(n, 90);  // stale contents, as a reused cache has
    t.vc_ref = random_floats(n, 91);
    t.kc = t.kc_ref;
    t.vc = t.vc_ref;
    LaunchContext ctx;
    ctx.max_batch = Bmax;
    ctx.max_seq = Smax;
    ctx.batch_offset = 1;
    ctx.batch = c.B;
    ctx.seq = c.S;
    uint32_t seed = causal ? 100 : 200;
    t.call(be, c, ctx, seed, "prefill");
    for (int64_t P = c.S; P < Smax; ++P) {
      AttnCase d = c;
      d.S = 1;
      ctx.seq = 1;
      ctx.start_pos = P;
      t.call(be, d, ctx, seed += 3, "decode");
    }
  }
  // Batch 1, multi-query (one kv head), Llama 3's theta: one decode step into the last
  // row of the cache, positions far from 0.
  AttnCase c{1, 1, 4, 1, 32, true, 5e5};
  TwoPaths t;
  t.cache_shape = {1, 300, 1, 32};
  t.kc_ref = random_floats(300 * 32, 92);
  t.vc_ref = random_floats(300 * 32, 93);
  t.kc = t.kc_ref;
  t.vc = t.vc_ref;
  LaunchContext ctx;
  ctx.max_seq = 300;
  ctx.start_pos = 299;
  t.call(be, c, ctx, 300, "decode at the last row");
}

TEST(CpuFused, RopeAttentionLaunchChecks) {
  CpuBackend be;
  const AttnCase c{1, 2, 2, 1, 4, true, 1e4};
  const Shape qs{1, 2, 8}, ks{1, 2, 4}, ps{1, 2}, cs{1, 4, 1, 4};
  std::vector<float> q(16), k(8), v(8), y(16), kc(16), vc(16), fpos(2);
  std::vector<int64_t> pos{0, 1}, pos3{0, 1, 2};
  const Attrs a = attention_attrs(c, true);
  LaunchContext ctx;
  auto base = [&] { return std::vector<TensorView>{fview(q, qs), fview(k, ks), fview(v, ks), iview(pos, ps)}; };
  auto with = [&](std::vector<TensorView> in, std::vector<TensorView> more) {
    in.insert(in.end(), more.begin(), more.end());
    return in;
  };
  expect_error([&] { launch(be, KernelId::RopeAttention, a, {fview(q, qs), fview(k, ks), fview(v, ks), fview(fpos, ps)},
                            {fview(y, qs)}, ctx); },
               {"pos (input 3)", "i64"});
  expect_error([&] { launch(be, KernelId::RopeAttention, a, {fview(q, qs), fview(k, ks), fview(v, ks), iview(pos3, {1, 3})},
                            {fview(y, qs)}, ctx); },
               {"pos (input 3)", "[1,3]"});
  expect_error([&] { launch(be, KernelId::RopeAttention, a, with(base(), {fview(kc, cs)}), {fview(y, qs)}, ctx); },
               {"rope_attention takes both k_cache and v_cache or neither"});
  expect_error([&] { launch(be, KernelId::RopeAttention, a, with(base(), {fview(kc, cs), fview(vc, {1, 4, 2, 2})}),
                            {fview(y, qs)}, ctx); },
               {"v_cache (input 5)"});
  LaunchContext late;
  late.start_pos = 3;
  expect_error([&] { launch(be, KernelId::RopeAttention, a, with(base(), {fview(kc, cs), fview(vc, cs)}), {fview(y, qs)},
                            late); },
               {"start_pos 3 + seq 2 exceeds the cache length 4"});
  Attrs no_theta = attention_attrs(c, false);
  expect_error([&] { launch(be, KernelId::RopeAttention, no_theta, base(), {fview(y, qs)}, ctx); },
               {"attribute 'theta' is missing"});
  // head_dim 3 (q [1,2,6] of 2 heads): rope needs pairs.
  AttnCase odd{1, 2, 2, 1, 3, true, 1e4};
  std::vector<float> q6(12), k3(6), v3(6), y6(12);
  expect_error([&] { launch(be, KernelId::RopeAttention, attention_attrs(odd, true),
                            {fview(q6, {1, 2, 6}), fview(k3, {1, 2, 3}), fview(v3, {1, 2, 3}), iview(pos, ps)},
                            {fview(y6, {1, 2, 6})}, ctx); },
               {"head_dim", "even"});
}

}  // namespace
