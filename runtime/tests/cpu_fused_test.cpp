// The fused elementwise kernels of the CPU reference (bmsys-fuse-elementwise,
// docs/kernels.md "Fused kernels") against the unfused kernels they replace, launched
// through the backend on random odd shapes: the results must be identical bit for bit
// (the CPU backend rounds exactly as the unfused chain does), and check_launch must
// refuse operands of the wrong shape or dtype.
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

}  // namespace
