// Every CUDA training kernel (runtime/backends/cuda/train_ops.h) against the CPU
// reference backend, on random data and shapes that include odd sizes (not multiples
// of 8, 16 or 128), in f32 (tight) and f16/bf16 (inputs rounded to the dtype for both;
// tolerance for the rounding), with poisoned outputs. Also: the optimizer kernels over
// several steps replayed from one CUDA graph (T and L in device scalars), the skip of
// an overflowing loss-scaled step, bit-exact cast and fake_quant, and device errors.
#include "runtime/tests/cuda/cuda_test_util.h"

namespace bmsys::rt::cudatest {
namespace {

struct Case {
  std::vector<HostTensor> tensors;
  std::vector<Call> calls;
  std::vector<int> check;
  LaunchContext ctx;
};

// Runs `c` on the GPU (in the tensors' dtypes) and on the CPU (f32) and compares.
void expect_matches_cpu(const Case& c, double tol, const std::string& what) {
  std::vector<HostTensor> f32;
  for (const HostTensor& t : c.tensors) f32.push_back(as_f32(t));
  std::vector<HostTensor> want = run_calls(cpu(), f32, c.calls, c.ctx);
  std::vector<HostTensor> got = run_calls(gpu(), c.tensors, c.calls, c.ctx);
  for (int i : c.check) {
    if (!dtype_is_float(got[i].dtype)) {
      ASSERT_EQ(got[i].data, want[i].data) << what << " tensor " << i << " differs";
      continue;
    }
    const double e = rel_err(got[i], want[i]);
    EXPECT_LE(e, tol) << what << " tensor " << i << " " << shape_str(got[i].shape) << " relative error " << e;
  }
}

const DType kFloatTypes[] = {DType::F32, DType::BF16, DType::F16};

double tol(DType t, double f32) { return t == DType::F32 ? f32 : tol_for(t); }

int add(Case& c, HostTensor t) {
  c.tensors.push_back(std::move(t));
  return static_cast<int>(c.tensors.size()) - 1;
}

// --- embedding_grad --------------------------------------------------------------------
TEST(CudaTrainKernels, EmbeddingGrad) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(11);
  const int64_t shapes[][4] = {{1, 1, 1, 1}, {2, 7, 13, 5}, {3, 33, 257, 130}, {4, 100, 50, 64}, {2, 64, 1000, 17}};
  for (DType t : kFloatTypes)
    for (auto& s : shapes) {
      Case c;
      int ids = add(c, ids_tensor({s[0], s[1]}, s[2], rng));
      int dy = add(c, random_tensor(t, {s[0], s[1], s[3]}, rng));
      int dt = add(c, poison(t, {s[2], s[3]}));
      c.calls.push_back({KernelId::EmbeddingGrad, {}, {ids, dy}, {dt}});
      c.check = {dt};
      expect_matches_cpu(c, tol(t, 1e-6), fmt::format("embedding_grad {} B={} S={} V={} H={}", dtype_name(t), s[0], s[1], s[2], s[3]));
    }
}

TEST(CudaTrainKernels, EmbeddingGradBadIdIsAnError) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(12);
  std::vector<HostTensor> ts = {ids_tensor({1, 4}, 10, rng), random_tensor(DType::F32, {1, 4, 8}, rng),
                                poison(DType::F32, {10, 8})};
  ts[0].as<int64_t>()[2] = 300;
  try {
    run_calls(gpu(), ts, {{KernelId::EmbeddingGrad, {}, {0, 1}, {2}}}, LaunchContext{});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("embedding_grad"), std::string::npos) << m;
    EXPECT_NE(m.find("token id 300 at position 2"), std::string::npos) << m;
  }
}

// --- linear gradients ------------------------------------------------------------------
void linear_grad_case(DType t, int64_t B, int64_t S, int64_t K, int64_t N, bool wt, std::mt19937& rng) {
  {
    Case c;
    int dy = add(c, random_tensor(t, {B, S, N}, rng));
    int w = add(c, random_tensor(t, wt ? Shape{K, N} : Shape{N, K}, rng, -0.1f, 0.1f));
    int dx = add(c, poison(t, {B, S, K}));
    c.calls.push_back({KernelId::LinearGradInput, attrs({{"weight_transposed", int_attr(wt)}}), {dy, w}, {dx}});
    c.check = {dx};
    expect_matches_cpu(c, tol(t, 3e-5), fmt::format("linear_grad_input {} M={} K={} N={} wt={}", dtype_name(t), B * S, K, N, wt));
  }
  {
    Case c;
    int dy = add(c, random_tensor(t, {B, S, N}, rng));
    int x = add(c, random_tensor(t, {B, S, K}, rng));
    int dw = add(c, poison(t, wt ? Shape{K, N} : Shape{N, K}));
    c.calls.push_back({KernelId::LinearGradWeight, attrs({{"weight_transposed", int_attr(wt)}}), {dy, x}, {dw}});
    c.check = {dw};
    expect_matches_cpu(c, tol(t, 3e-5), fmt::format("linear_grad_weight {} M={} K={} N={} wt={}", dtype_name(t), B * S, K, N, wt));
  }
}

TEST(CudaTrainKernels, LinearGrads) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(13);
  const int64_t shapes[][4] = {{1, 1, 1, 1},  {2, 16, 64, 64},  {4, 32, 64, 256}, {3, 7, 129, 33},
                               {1, 77, 17, 300}, {2, 50, 512, 176}, {1, 5, 3, 1000}};
  for (DType t : kFloatTypes)
    for (auto& s : shapes)
      for (int wt = 0; wt < 2; ++wt) linear_grad_case(t, s[0], s[1], s[2], s[3], wt, rng);
}

TEST(CudaTrainKernels, LinearGradsRandomShapes) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(14);
  std::uniform_int_distribution<int64_t> b(1, 4), s(1, 40), k(1, 300), n(1, 300);
  for (int i = 0; i < 12; ++i) linear_grad_case(kFloatTypes[i % 3], b(rng), s(rng), k(rng), n(rng), i % 2, rng);
}

// --- sum_rows, slice_grad --------------------------------------------------------------
TEST(CudaTrainKernels, SumRows) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(15);
  const int64_t shapes[][3] = {{1, 1, 1}, {2, 16, 64}, {3, 333, 77}, {1, 1000, 130}, {8, 128, 2304}};
  for (DType t : kFloatTypes)
    for (auto& s : shapes) {
      Case c;
      int dy = add(c, random_tensor(t, {s[0], s[1], s[2]}, rng));
      int db = add(c, poison(t, {s[2]}));
      c.calls.push_back({KernelId::SumRows, {}, {dy}, {db}});
      c.check = {db};
      expect_matches_cpu(c, tol(t, 1e-6), fmt::format("sum_rows {} {}x{}x{}", dtype_name(t), s[0], s[1], s[2]));
    }
}

TEST(CudaTrainKernels, SliceGrad) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(16);
  const int64_t shapes[][4] = {{2, 16, 192, 64}, {1, 7, 13, 5}, {3, 5, 9, 0}, {1, 1, 3, 3}};  // B, S, K, N
  for (DType t : kFloatTypes)
    for (auto& s : shapes)
      for (int64_t off : {int64_t{0}, (s[2] - s[3]) / 2, s[2] - s[3]}) {
        Case c;
        int dy = add(c, random_tensor(t, {s[0], s[1], s[3]}, rng));
        int dx = add(c, poison(t, {s[0], s[1], s[2]}));
        c.calls.push_back({KernelId::SliceGrad, attrs({{"offset", int_attr(off)}, {"width", int_attr(s[2])}}), {dy}, {dx}});
        c.check = {dx};
        expect_matches_cpu(c, 0.0, fmt::format("slice_grad {} K={} N={} offset={}", dtype_name(t), s[2], s[3], off));
      }
}

// --- norm gradients --------------------------------------------------------------------
TEST(CudaTrainKernels, NormGrads) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(17);
  const int64_t shapes[][3] = {{1, 1, 1}, {2, 16, 64}, {3, 37, 129}, {1, 600, 33}, {2, 9, 4096}};
  for (DType t : kFloatTypes)
    for (auto& s : shapes)
      for (int layer = 0; layer < 2; ++layer) {
        Case c;
        int x = add(c, random_tensor(t, {s[0], s[1], s[2]}, rng, -2.f, 2.f));
        int g = add(c, random_tensor(t, {s[2]}, rng, 0.5f, 1.5f));
        int dy = add(c, random_tensor(t, {s[0], s[1], s[2]}, rng));
        int dx = add(c, poison(t, {s[0], s[1], s[2]}));
        int dg = add(c, poison(t, {s[2]}));
        Attrs a = attrs({{"eps", float_attr(1e-5)}});
        if (layer) {
          int db = add(c, poison(t, {s[2]}));
          c.calls.push_back({KernelId::LayerNormGrad, a, {x, g, dy}, {dx, dg, db}});
          c.check = {dx, dg, db};
        } else {
          c.calls.push_back({KernelId::RmsNormGrad, a, {x, g, dy}, {dx, dg}});
          // H == 1: rms_norm's dx = g dy eps / r^3 is the difference of two numbers near 1
          // that agree to ~1e-5, so both backends return rounding noise there (measured
          // 3e-3 relative apart in f32); only dg is meaningful.
          c.check = s[2] == 1 ? std::vector<int>{dg} : std::vector<int>{dx, dg};
        }
        // H == 1: layer norm's dx is exactly 0 (x - mean = 0), compared absolutely.
        expect_matches_cpu(c, tol(t, 2e-5), fmt::format("{}_grad {} {}x{}x{}", layer ? "layer_norm" : "rms_norm", dtype_name(t), s[0], s[1], s[2]));
      }
}

// --- rope, activations -----------------------------------------------------------------
TEST(CudaTrainKernels, RopeGrad) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(18);
  const int64_t shapes[][4] = {{1, 1, 1, 2}, {2, 16, 4, 16}, {3, 7, 3, 6}, {1, 40, 2, 128}};  // B, S, N, D
  for (DType t : kFloatTypes)
    for (auto& s : shapes) {
      Case c;
      int dy = add(c, random_tensor(t, {s[0], s[1], s[2] * s[3]}, rng));
      int pos = add(c, ids_tensor({s[0], s[1]}, 5000, rng));
      int dx = add(c, poison(t, {s[0], s[1], s[2] * s[3]}));
      c.calls.push_back({KernelId::RopeGrad, attrs({{"head_dim", int_attr(s[3])}, {"theta", float_attr(10000.0)}}), {dy, pos}, {dx}});
      c.check = {dx};
      expect_matches_cpu(c, tol(t, 1e-6), fmt::format("rope_grad {} {}x{}x{}x{}", dtype_name(t), s[0], s[1], s[2], s[3]));
    }
}

TEST(CudaTrainKernels, ActivationGrads) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(19);
  for (DType t : kFloatTypes)
    for (int64_t n : {1, 7, 1000, 12345})
      for (int op = 0; op < 3; ++op) {
        Case c;
        // One element is compared on its own: keep it where the derivatives are well
        // conditioned (away from gelu's zero of the derivative near -0.75 and from the
        // saturation where 1 + tanh cancels); larger n cover [-6, 6]. The same number of
        // draws either way.
        int x = add(c, n == 1 ? random_tensor(t, {n}, rng, 0.5f, 3.f) : random_tensor(t, {n}, rng, -6.f, 6.f));
        int dy = add(c, random_tensor(t, {n}, rng));
        int dx = add(c, poison(t, {n}));
        if (op == 2)
          c.calls.push_back({KernelId::SiluGrad, {}, {x, dy}, {dx}});
        else
          c.calls.push_back({KernelId::GeluGrad, attrs({{"approximate", str_attr(op ? "none" : "tanh")}}), {x, dy}, {dx}});
        c.check = {dx};
        expect_matches_cpu(c, tol(t, 1e-6), fmt::format("{} {} n={}", op == 2 ? "silu_grad" : op ? "gelu_grad(none)" : "gelu_grad(tanh)", dtype_name(t), n));
      }
}

// --- cross_entropy_grad ----------------------------------------------------------------
TEST(CudaTrainKernels, CrossEntropyGrad) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20);
  const int64_t shapes[][3] = {{1, 2, 1}, {2, 16, 256}, {3, 7, 1000}, {1, 33, 50257}};
  for (DType t : kFloatTypes)
    for (auto& s : shapes)
      for (int shift = 0; shift < 2; ++shift)
        for (int ls = 0; ls < 2; ++ls) {
          Case c;
          int lg = add(c, random_tensor(t, {s[0], s[1], s[2]}, rng, -4.f, 4.f));
          int lab = add(c, ids_tensor({s[0], s[1]}, s[2], rng));
          int dl = add(c, poison(t, {s[0], s[1], s[2]}));
          c.calls.push_back({KernelId::CrossEntropyGrad, attrs({{"shift", int_attr(shift)}, {"loss_scaling", int_attr(ls)}}), {lg, lab}, {dl}});
          c.check = {dl};
          c.ctx.loss_scale = 1024.0;  // used only with loss_scaling
          expect_matches_cpu(c, tol(t, 1e-6), fmt::format("cross_entropy_grad {} {}x{}x{} shift={} loss_scaling={}", dtype_name(t), s[0], s[1], s[2], shift, ls));
        }
}

TEST(CudaTrainKernels, CrossEntropyGradBadLabelIsAnError) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(21);
  std::vector<HostTensor> ts = {random_tensor(DType::F32, {1, 4, 16}, rng), ids_tensor({1, 4}, 16, rng),
                                poison(DType::F32, {1, 4, 16})};
  ts[1].as<int64_t>()[3] = -5;
  try {
    run_calls(gpu(), ts, {{KernelId::CrossEntropyGrad, attrs({{"shift", int_attr(1)}}), {0, 1}, {2}}}, LaunchContext{});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("label -5 at position 3"), std::string::npos) << m;
  }
}

// --- attention_grad --------------------------------------------------------------------
TEST(CudaTrainKernels, AttentionGrad) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(22);
  const int64_t shapes[][5] = {{1, 1, 1, 1, 4},  {2, 17, 4, 2, 16}, {1, 70, 2, 1, 64}, {2, 33, 6, 3, 24},
                               {1, 40, 2, 2, 128}, {1, 9, 2, 1, 256}, {2, 32, 4, 2, 16}, {1, 5, 3, 3, 7},
                               // several tiles of the tensor-core kernels (64 rows), partial last ones
                               {1, 200, 4, 2, 64}, {2, 130, 2, 1, 128}, {1, 150, 2, 2, 32}};
  for (DType t : kFloatTypes)
    for (auto& s : shapes)
      for (int causal = 0; causal < 2; ++causal) {
        const int64_t B = s[0], S = s[1], Nq = s[2], Nkv = s[3], D = s[4];
        Case c;
        int q = add(c, random_tensor(t, {B, S, Nq * D}, rng));
        int k = add(c, random_tensor(t, {B, S, Nkv * D}, rng));
        int v = add(c, random_tensor(t, {B, S, Nkv * D}, rng));
        int dy = add(c, random_tensor(t, {B, S, Nq * D}, rng));
        int dq = add(c, poison(t, {B, S, Nq * D}));
        int dk = add(c, poison(t, {B, S, Nkv * D}));
        int dv = add(c, poison(t, {B, S, Nkv * D}));
        Attrs a = attrs({{"num_heads", int_attr(Nq)}, {"num_kv_heads", int_attr(Nkv)}, {"head_dim", int_attr(D)},
                         {"scale", float_attr(1.0 / std::sqrt(double(D)))}, {"causal", int_attr(causal)}});
        c.calls.push_back({KernelId::AttentionGrad, a, {q, k, v, dy}, {dq, dk, dv}});
        c.check = {dq, dk, dv};
        expect_matches_cpu(c, tol(t, 2e-5), fmt::format("attention_grad {} B={} S={} Nq={} Nkv={} D={} causal={}", dtype_name(t), B, S, Nq, Nkv, D, causal));
      }
}

// --- global_norm -----------------------------------------------------------------------
TEST(CudaTrainKernels, GlobalNorm) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(23);
  for (DType t : kFloatTypes) {
    Case c;
    std::vector<int> ins;
    for (Shape s : {Shape{1}, Shape{7, 13}, Shape{256, 64}, Shape{100003}, Shape{3, 5, 7}})
      ins.push_back(add(c, random_tensor(t, s, rng)));
    int y = add(c, poison(t, {}));
    c.calls.push_back({KernelId::GlobalNorm, {}, ins, {y}});
    c.check = {y};
    expect_matches_cpu(c, tol(t, 1e-6), fmt::format("global_norm {}", dtype_name(t)));
  }
}

// --- optimizers ------------------------------------------------------------------------
// The calls run at steps T = 1..steps, one flush each, on the same device memory: the
// second flush is captured into a graph and the rest replay it, so T (and L) must
// reach the kernels through the device scalars.
std::vector<HostTensor> run_steps(Backend& be, const std::vector<HostTensor>& tensors,
                                  const std::vector<Call>& calls, LaunchContext ctx, int steps) {
  return run_calls(be, tensors, calls, ctx, steps, /*count_steps=*/true);
}

Attrs adamw_attrs(const std::string& schedule, int loss_scaling) {
  return attrs({{"lr", float_attr(1e-2)}, {"beta1", float_attr(0.9)}, {"beta2", float_attr(0.95)}, {"eps", float_attr(1e-8)},
                {"weight_decay", float_attr(0.1)}, {"max_norm", float_attr(1.0)}, {"schedule", str_attr(schedule)},
                {"warmup_steps", int_attr(2)}, {"total_steps", int_attr(6)}, {"min_lr", float_attr(1e-3)},
                {"loss_scaling", int_attr(loss_scaling)}});
}
Attrs sgd_attrs(const std::string& schedule, int loss_scaling) {
  return attrs({{"lr", float_attr(1e-1)}, {"momentum", float_attr(0.9)}, {"weight_decay", float_attr(0.01)},
                {"max_norm", float_attr(0.5)}, {"schedule", str_attr(schedule)}, {"warmup_steps", int_attr(1)},
                {"total_steps", int_attr(5)}, {"min_lr", float_attr(0.0)}, {"loss_scaling", int_attr(loss_scaling)}});
}

// global_norm of the grads feeding adamw/sgd: the whole update chain of train_step.
void optimizer_case(bool adam, const std::string& schedule, int loss_scaling, DType grad_t, int64_t n1, int64_t n2,
                    std::mt19937& rng) {
  std::vector<HostTensor> ts;
  LaunchContext ctx;
  ctx.loss_scale = loss_scaling ? 4096.0 : 1.0;
  const float gs = loss_scaling ? 4096.f : 1.f;
  for (int64_t n : {n1, n2}) {
    ts.push_back(random_tensor(DType::F32, {n}, rng));                          // param
    ts.push_back(random_tensor(grad_t, {n}, rng, -2.f * gs, 2.f * gs));          // grad (L times)
    ts.push_back(HostTensor(DType::F32, {n}));                                  // m / buf
    if (adam) ts.push_back(HostTensor(DType::F32, {n}));                        // v
  }
  const int per = adam ? 4 : 3;
  const int norm = static_cast<int>(ts.size());
  ts.push_back(poison(DType::F32, {}));
  std::vector<Call> calls;
  calls.push_back({KernelId::GlobalNorm, {}, {1, per + 1}, {norm}});
  for (int p = 0; p < 2; ++p) {
    const int b = p * per;
    if (adam)
      calls.push_back({KernelId::AdamW, adamw_attrs(schedule, loss_scaling), {b, b + 1, b + 2, b + 3, norm}, {b, b + 2, b + 3}});
    else
      calls.push_back({KernelId::Sgd, sgd_attrs(schedule, loss_scaling), {b, b + 1, b + 2, norm}, {b, b + 2}});
  }
  std::vector<HostTensor> f32;
  for (const HostTensor& t : ts) f32.push_back(as_f32(t));
  const auto before = gpu().stats();
  auto want = run_steps(cpu(), f32, calls, ctx, 5);
  auto got = run_steps(gpu(), ts, calls, ctx, 5);
  const auto after = gpu().stats();
  EXPECT_GE(after.graph_replays - before.graph_replays, 3) << "the optimizer steps did not replay a CUDA graph";
  for (int i = 0; i < static_cast<int>(ts.size()); ++i) {
    if (i % per == 1 && i != norm) continue;  // grads are inputs
    const double e = rel_err(got[i], want[i]);
    EXPECT_LE(e, 1e-6) << (adam ? "adamw" : "sgd") << " " << schedule << " loss_scaling=" << loss_scaling << " grad "
                       << dtype_name(grad_t) << " tensor " << i << " relative error " << e;
  }
}

TEST(CudaTrainKernels, OptimizersOverStepsFromOneGraph) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(24);
  for (bool adam : {true, false})
    for (const char* sched : {"constant", "cosine", "linear"})
      for (int ls = 0; ls < 2; ++ls) optimizer_case(adam, sched, ls, DType::F32, 1000, 77, rng);
}

// A loss-scaled update whose unscaled norm is not finite leaves param and states exactly
// as they were (the step is skipped on the device); without loss scaling it is applied.
TEST(CudaTrainKernels, OverflowSkipsTheUpdate) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(25);
  for (bool adam : {true, false}) {
    std::vector<HostTensor> ts = {random_tensor(DType::F32, {300}, rng), random_tensor(DType::F32, {300}, rng),
                                  random_tensor(DType::F32, {300}, rng), random_tensor(DType::F32, {300}, rng, 0.f, 1.f),
                                  HostTensor::from_f32({}, {INFINITY})};
    LaunchContext ctx;
    ctx.step = 3;
    ctx.loss_scale = 65536.0;
    Call c = adam ? Call{KernelId::AdamW, adamw_attrs("constant", 1), {0, 1, 2, 3, 4}, {0, 2, 3}}
                  : Call{KernelId::Sgd, sgd_attrs("constant", 1), {0, 1, 2, 4}, {0, 2}};
    auto got = run_calls(gpu(), ts, {c}, ctx);
    EXPECT_EQ(got[0].data, ts[0].data) << "param changed on an overflowing step";
    EXPECT_EQ(got[2].data, ts[2].data) << "state changed on an overflowing step";
    if (adam) {
      EXPECT_EQ(got[3].data, ts[3].data);
    }
    ts[4] = HostTensor::from_f32({}, {NAN});
    got = run_calls(gpu(), ts, {c}, ctx);
    EXPECT_EQ(got[0].data, ts[0].data) << "param changed on a NaN step";
  }
}

// AdamW with a bf16 gradient (f32 master weights) against the CPU on the same values.
TEST(CudaTrainKernels, AdamWWithHalfGradients) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(26);
  for (DType t : {DType::BF16, DType::F16}) optimizer_case(true, "constant", 0, t, 513, 64, rng);
}

// --- cast, fake_quant ------------------------------------------------------------------
TEST(CudaTrainKernels, CastIsExact) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(27);
  for (DType from : kFloatTypes)
    for (DType to : kFloatTypes) {
      std::vector<HostTensor> ts = {random_tensor(from, {3, 333}, rng, -70000.f, 70000.f), poison(to, {3, 333})};
      auto got = run_calls(gpu(), ts, {{KernelId::Cast, {}, {0}, {1}}}, LaunchContext{});
      HostTensor want(to, {3, 333});
      convert(want.data.data(), to, ts[0].data.data(), from, ts[0].numel());
      EXPECT_EQ(got[1].data, want.data) << "cast " << dtype_name(from) << " -> " << dtype_name(to);
    }
}

TEST(CudaTrainKernels, FakeQuantIsBitExact) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(28);
  for (auto s : {Shape{1, 1}, Shape{7, 13}, Shape{64, 176}, Shape{300, 5}})
    for (int axis = 0; axis < 2; ++axis) {
      Case c;
      int w = add(c, random_tensor(DType::F32, s, rng, -3.f, 3.f));
      int y = add(c, poison(DType::F32, s));
      c.calls.push_back({KernelId::FakeQuant, attrs({{"axis", int_attr(axis)}}), {w}, {y}});
      auto want = run_calls(cpu(), c.tensors, c.calls, LaunchContext{});
      auto got = run_calls(gpu(), c.tensors, c.calls, LaunchContext{});
      EXPECT_EQ(got[y].data, want[y].data) << "fake_quant " << shape_str(s) << " axis " << axis;
    }
}

// --- attention with a cache at a row offset (batched generation) ---------------------------
TEST(CudaTrainKernels, AttentionHonoursBatchOffset) {
  BMSYS_SKIP_WITHOUT_GPU();
  ASSERT_TRUE(gpu().supports_batch_offset());
  std::mt19937 rng(29);
  const int64_t Bmax = 4, Smax = 16, Nq = 4, Nkv = 2, D = 16;
  struct Shape3 {
    int64_t B, S, P, offset;
  };
  for (DType t : kFloatTypes)
    for (Shape3 c3 : {Shape3{1, 5, 0, 2}, Shape3{2, 1, 7, 1}, Shape3{3, 3, 4, 1}, Shape3{1, 1, 15, 3}}) {
      Case c;
      int q = add(c, random_tensor(t, {c3.B, c3.S, Nq * D}, rng));
      int k = add(c, random_tensor(t, {c3.B, c3.S, Nkv * D}, rng));
      int v = add(c, random_tensor(t, {c3.B, c3.S, Nkv * D}, rng));
      int kc = add(c, random_tensor(t, {Bmax, Smax, Nkv, D}, rng));  // earlier rows: some history
      int vc = add(c, random_tensor(t, {Bmax, Smax, Nkv, D}, rng));
      int y = add(c, poison(t, {c3.B, c3.S, Nq * D}));
      Attrs a = attrs({{"num_heads", int_attr(Nq)}, {"num_kv_heads", int_attr(Nkv)}, {"head_dim", int_attr(D)},
                       {"scale", float_attr(0.25)}, {"causal", int_attr(1)}});
      c.calls.push_back({KernelId::Attention, a, {q, k, v, kc, vc}, {y}});
      c.check = {y, kc, vc};
      c.ctx.start_pos = c3.P;
      c.ctx.batch_offset = c3.offset;
      expect_matches_cpu(c, tol(t, 1e-5), fmt::format("attention {} B={} S={} P={} batch_offset={}", dtype_name(t), c3.B,
                                                      c3.S, c3.P, c3.offset));
    }
}

}  // namespace
}  // namespace bmsys::rt::cudatest
