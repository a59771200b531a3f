// Every CUDA kernel against the CPU reference backend, on random data and shapes that
// include odd sizes (not multiples of 8, 16 or 128), in f32 (tight) and f16/bf16
// (inputs rounded to the dtype for both; tolerance for the rounding). Also: the
// fusions the backend applies to a flush, CUDA graph replay across start positions,
// device-side errors, out-of-memory messages and the trace file.
#include <map>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "runtime/tests/cuda/cuda_test_util.h"

namespace bmsys::rt::cudatest {
namespace {

// The own GEMVs and their fusions (BMSYS_CUDA_GEMV=1, the default: tuned per shape; 2, 3:
// one kernel) or cuBLASLt for every linear (0).
CudaBackend& gpu_gemv(int variant = 1) {
  static std::map<int, CudaBackend*> backends;
  CudaBackend*& be = backends[variant];
  if (!be) {
    ScopedEnv env("BMSYS_CUDA_GEMV", std::to_string(variant).c_str());
    be = new CudaBackend(BackendOptions{});
  }
  return *be;
}

struct Case {
  std::vector<HostTensor> tensors;  // in the test dtype (ints as they are)
  std::vector<Call> calls;
  std::vector<int> check;           // tensors to compare after the calls
  LaunchContext ctx;
};

// Runs `c` on the GPU (in the tensors' dtypes) and on the CPU (f32) and compares.
void expect_matches_cpu(const Case& c, double tol, Backend* be = nullptr,
                        const std::string& what = "") {
  std::vector<HostTensor> f32;
  for (const HostTensor& t : c.tensors) f32.push_back(as_f32(t));
  std::vector<HostTensor> want = run_calls(cpu(), f32, c.calls, c.ctx);
  std::vector<HostTensor> got = run_calls(be ? *be : gpu(), c.tensors, c.calls, c.ctx);
  for (int i : c.check) {
    if (!dtype_is_float(got[i].dtype)) {
      ASSERT_EQ(got[i].data, want[i].data) << what << " tensor " << i << " differs";
      continue;
    }
    double e = rel_err(got[i], want[i]);
    EXPECT_LE(e, tol) << what << " tensor " << i << " " << shape_str(got[i].shape)
                      << " relative error " << e;
  }
}

const DType kFloatTypes[] = {DType::F32, DType::BF16, DType::F16};

// --- linear ------------------------------------------------------------------------------
void linear_case(DType t, int64_t M, int64_t K, int64_t N, bool wt, bool bias, std::mt19937& rng,
                 Backend* be = nullptr) {
  Case c;
  c.tensors.push_back(random_tensor(t, {M, K}, rng));
  c.tensors.push_back(random_tensor(t, wt ? Shape{K, N} : Shape{N, K}, rng, -0.1f, 0.1f));
  std::vector<int> in = {0, 1};
  if (bias) {
    c.tensors.push_back(random_tensor(t, {N}, rng));
    in.push_back(2);
  }
  c.tensors.push_back(poison(t, {M, N}));
  int y = static_cast<int>(c.tensors.size()) - 1;
  c.calls.push_back({KernelId::Linear, attrs({{"weight_transposed", int_attr(wt)}}), in, {y}});
  c.check = {y};
  expect_matches_cpu(c, t == DType::F32 ? 3e-5 : tol_for(t), be,
                     fmt::format("linear {} M={} K={} N={} wt={} bias={}", dtype_name(t), M, K, N,
                                 wt, bias));
}

TEST(CudaKernels, Linear) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(1);
  const int64_t shapes[][3] = {{1, 64, 48},   {1, 1000, 777}, {3, 77, 129},  {8, 256, 200},
                               {9, 64, 64},   {37, 129, 257}, {128, 512, 384}, {2, 4096, 1000},
                               {1, 11008, 96}, {5, 17, 3}};
  for (DType t : kFloatTypes)
    for (auto& s : shapes)
      for (int wt = 0; wt < 2; ++wt)
        for (int bias = 0; bias < 2; ++bias) {
          linear_case(t, s[0], s[1], s[2], wt, bias, rng);
          for (int v : {1, 2, 3}) linear_case(t, s[0], s[1], s[2], wt, bias, rng, &gpu_gemv(v));
        }
}

TEST(CudaKernels, LinearWithoutGemv) {
  BMSYS_SKIP_WITHOUT_GPU();
  ScopedEnv env("BMSYS_CUDA_GEMV", "0");
  CudaBackend be{BackendOptions{}};
  std::mt19937 rng(2);
  for (DType t : kFloatTypes) {
    linear_case(t, 1, 4096, 512, false, true, rng, &be);
    linear_case(t, 4, 77, 33, false, false, rng, &be);
  }
}

TEST(CudaKernels, LinearRandomShapes) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(3);
  std::uniform_int_distribution<int64_t> m(1, 40), k(1, 700), n(1, 700);
  for (int i = 0; i < 24; ++i) {
    DType t = kFloatTypes[i % 3];
    linear_case(t, m(rng), k(rng), n(rng), i % 2, (i / 2) % 2, rng);
  }
}

// Three GEMVs sharing x in one flush (the q/k/v pattern) run as one grouped launch.
TEST(CudaKernels, GroupedGemv) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(4);
  for (DType t : kFloatTypes) {
    for (int64_t M : {1, 3}) {
      const int64_t K = 520, N[3] = {512, 129, 129};
      Case c;
      c.tensors.push_back(random_tensor(t, {M, K}, rng));
      for (int j = 0; j < 3; ++j) c.tensors.push_back(random_tensor(t, {N[j], K}, rng, -0.1f, 0.1f));
      for (int j = 0; j < 3; ++j) c.tensors.push_back(poison(t, {M, N[j]}));
      for (int j = 0; j < 3; ++j)
        c.calls.push_back({KernelId::Linear, attrs({}), {0, 1 + j}, {4 + j}});
      c.check = {4, 5, 6};
      auto before = gpu_gemv().stats().launches_saved;
      expect_matches_cpu(c, t == DType::F32 ? 3e-5 : tol_for(t), &gpu_gemv(), "grouped gemv");
      EXPECT_GE(gpu_gemv().stats().launches_saved - before, 2) << "q/k/v were not grouped";
    }
  }
}

// Decode-sized linears sharing x (q/k/v, gate/up) through cuBLASLt (own GEMVs off) run
// concurrently on fork streams: the same results as the CPU, bit-identical to the same
// calls one after the other, eagerly, captured into a graph and replayed; an op after
// them reading two branches' outputs sees them complete.
TEST(CudaKernels, ForkedLinears) {
  BMSYS_SKIP_WITHOUT_GPU();
  ScopedEnv cublas("BMSYS_CUDA_GEMV", "0");
  std::unique_ptr<CudaBackend> serial;
  {
    ScopedEnv env("BMSYS_CUDA_FORK", "0");
    serial = std::make_unique<CudaBackend>(BackendOptions{});
  }
  CudaBackend forked{BackendOptions{}};
  std::mt19937 rng(41);
  for (DType t : kFloatTypes)
    for (int64_t M : {1, 3, 8}) {
      const int64_t K = 520, N[3] = {512, 136, 136};
      Case c;
      c.tensors.push_back(random_tensor(t, {1, M, K}, rng));
      for (int j = 0; j < 3; ++j) c.tensors.push_back(random_tensor(t, {N[j], K}, rng, -0.1f, 0.1f));
      for (int j = 0; j < 3; ++j) c.tensors.push_back(poison(t, {1, M, N[j]}));
      c.tensors.push_back(poison(t, {1, M, N[1]}));
      for (int j = 0; j < 3; ++j) c.calls.push_back({KernelId::Linear, attrs({}), {0, 1 + j}, {4 + j}});
      c.calls.push_back({KernelId::Add, attrs({}), {5, 6}, {7}});
      c.check = {4, 5, 6, 7};
      const std::string what = fmt::format("forked linears {} M={}", dtype_name(t), M);
      auto before = forked.stats().forked_linears;
      expect_matches_cpu(c, t == DType::F32 ? 3e-5 : tol_for(t), &forked, what);
      EXPECT_EQ(forked.stats().forked_linears - before, 2) << what << ": q/k/v did not fork";
      std::vector<HostTensor> a = run_calls(forked, c.tensors, c.calls, c.ctx, 3);
      std::vector<HostTensor> b = run_calls(*serial, c.tensors, c.calls, c.ctx);
      for (int i : c.check) EXPECT_EQ(a[i].data, b[i].data) << what << ": differs from serial, tensor " << i;
    }
  EXPECT_EQ(serial->stats().forked_linears, 0);
  EXPECT_GE(forked.stats().graph_replays, 1) << "the forked flush was not replayed from a graph";
}

// A decode GEMV followed by the elementwise op that consumes its output runs as one
// launch (the op as the GEMV's epilogue); both outputs are written.
TEST(CudaKernels, GemvEpilogues) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(22);
  for (DType t : kFloatTypes)
    for (int64_t M : {1, 2, 5, 8})
      for (int k = 0; k < 5; ++k) {
        const int64_t K = 264, N = 72;
        Case c;
        c.tensors = {random_tensor(t, {1, M, K}, rng), random_tensor(t, {N, K}, rng, -0.2f, 0.2f),
                     random_tensor(t, {N}, rng), random_tensor(t, {1, M, N}, rng),
                     poison(t, {1, M, N}), poison(t, {1, M, N})};
        c.calls.push_back({KernelId::Linear, attrs({}), k == 4 ? std::vector<int>{0, 1} : std::vector<int>{0, 1, 2}, {4}});
        switch (k) {
          case 0: c.calls.push_back({KernelId::Add, attrs({}), {3, 4}, {5}}); break;
          case 1: c.calls.push_back({KernelId::Mul, attrs({}), {4, 3}, {5}}); break;
          case 2: c.calls.push_back({KernelId::Silu, attrs({}), {4}, {5}}); break;
          case 3: c.calls.push_back({KernelId::Gelu, attrs({{"approximate", str_attr("tanh")}}), {4}, {5}}); break;
          case 4: c.calls.push_back({KernelId::Gelu, attrs({{"approximate", str_attr("none")}}), {4}, {5}}); break;
        }
        c.check = {4, 5};
        auto before = gpu_gemv().stats().launches_saved;
        expect_matches_cpu(c, t == DType::F32 ? 3e-5 : tol_for(t), &gpu_gemv(),
                           fmt::format("gemv epilogue {} M={} op {}", dtype_name(t), M, k));
        EXPECT_GE(gpu_gemv().stats().launches_saved - before, 1) << "epilogue not fused, op " << k;
        // cuBLASLt and the separate elementwise kernel compute the same.
        expect_matches_cpu(c, t == DType::F32 ? 3e-5 : tol_for(t), &gpu_gemv(0), "linear + elementwise");
      }
}

// rms_norm followed by GEMVs of its output: the norm runs inside the (grouped) GEMV,
// bit-identical to the separate kernels.
TEST(CudaKernels, FusedRmsNormGemv) {
  BMSYS_SKIP_WITHOUT_GPU();
  for (int variant : {1, 2, 3}) {
    std::mt19937 rng(24);
    CudaBackend& fused = gpu_gemv(variant);
    std::unique_ptr<CudaBackend> unfused_be;
    {
      // The pipelined GEMV, unfused: every own GEMV kernel sums in the same order, so the
      // fused norm in any of them must match it bit for bit.
      ScopedEnv env("BMSYS_CUDA_FUSE", "0"), env2("BMSYS_CUDA_GEMV", "3");
      unfused_be = std::make_unique<CudaBackend>(BackendOptions{});
    }
    CudaBackend& unfused = *unfused_be;
    for (DType t : kFloatTypes)
      for (int64_t M : {1, 3}) {
        const int64_t K = 520, N[3] = {512, 129, 64};
        Case c;
        c.tensors = {random_tensor(t, {1, M, K}, rng, -2.f, 2.f), random_tensor(t, {K}, rng), poison(t, {1, M, K})};
        for (int j = 0; j < 3; ++j) c.tensors.push_back(random_tensor(t, {N[j], K}, rng, -0.1f, 0.1f));
        for (int j = 0; j < 3; ++j) c.tensors.push_back(poison(t, {1, M, N[j]}));
        c.calls.push_back({KernelId::RmsNorm, attrs({{"eps", float_attr(1e-5)}}), {0, 1}, {2}});
        for (int j = 0; j < 3; ++j) c.calls.push_back({KernelId::Linear, attrs({}), {2, 3 + j}, {6 + j}});
        c.check = {2, 6, 7, 8};
        auto before = fused.stats().launches_saved;
        expect_matches_cpu(c, t == DType::F32 ? 3e-5 : tol_for(t), &fused, "rms_norm+gemv");
        EXPECT_GE(fused.stats().launches_saved - before, 3) << "norm and q/k/v were not fused";
        std::vector<HostTensor> a = run_calls(fused, c.tensors, c.calls, c.ctx);
        std::vector<HostTensor> b = run_calls(unfused, c.tensors, c.calls, c.ctx);
        for (int i : c.check)
          EXPECT_EQ(a[i].data, b[i].data) << "fused (variant " << variant << ") differs from unfused, tensor " << i;
      }
  }
}

// A decode GEMV, the add_rms_norm of its output and the residual, and the GEMVs of the
// norm's output (o_proj, then gate/up or the next layer's q/k/v): the add runs as the
// first GEMV's epilogue, the norm as the prologue of the grouped GEMV after it, and
// add_rms_norm's launch disappears. Both of its outputs are written, bit-identical to the
// add_rms_norm kernel between the same GEMVs (its 256-thread order of sums repeated).
TEST(CudaKernels, SplitAddRmsNormGemv) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::unique_ptr<CudaBackend> unfused_be;
  {
    ScopedEnv env("BMSYS_CUDA_FUSE", "0"), env2("BMSYS_CUDA_GEMV", "2");
    unfused_be = std::make_unique<CudaBackend>(BackendOptions{});
  }
  for (int variant : {1, 2, 3}) {
    CudaBackend& fused = gpu_gemv(variant);
    std::mt19937 rng(26);
    for (DType t : kFloatTypes)
      for (int64_t M : {1, 3}) {
        const int64_t K = 264, H = 520, N[3] = {512, 129, 64};
        Case c;
        // 0 x, 1 w_o, 2 residual h, 3 gamma, 4 o, 5 sum, 6 y, 7-9 weights, 10-12 outputs
        c.tensors = {random_tensor(t, {1, M, K}, rng), random_tensor(t, {H, K}, rng, -0.2f, 0.2f),
                     random_tensor(t, {1, M, H}, rng, -2.f, 2.f), random_tensor(t, {H}, rng, 0.5f, 1.5f),
                     poison(t, {1, M, H}), poison(t, {1, M, H}), poison(t, {1, M, H})};
        for (int j = 0; j < 3; ++j) c.tensors.push_back(random_tensor(t, {N[j], H}, rng, -0.1f, 0.1f));
        for (int j = 0; j < 3; ++j) c.tensors.push_back(poison(t, {1, M, N[j]}));
        c.calls.push_back({KernelId::Linear, attrs({}), {0, 1}, {4}});
        c.calls.push_back({KernelId::AddRmsNorm, attrs({{"eps", float_attr(1e-5)}}), {2, 4, 3}, {5, 6}});
        for (int j = 0; j < 3; ++j) c.calls.push_back({KernelId::Linear, attrs({}), {6, 7 + j}, {10 + j}});
        c.check = {4, 5, 6, 10, 11, 12};
        const std::string what = fmt::format("split add_rms_norm {} M={} variant {}", dtype_name(t), M, variant);
        auto before = fused.stats().launches_saved;
        expect_matches_cpu(c, t == DType::F32 ? 3e-5 : tol_for(t), &fused, what);
        // q/k/v grouped (2) and add_rms_norm's launch (1)
        EXPECT_GE(fused.stats().launches_saved - before, 3) << what << ": add_rms_norm was not split";
        std::vector<HostTensor> a = run_calls(fused, c.tensors, c.calls, c.ctx);
        std::vector<HostTensor> b = run_calls(*unfused_be, c.tensors, c.calls, c.ctx);
        for (int i : c.check) EXPECT_EQ(a[i].data, b[i].data) << what << ": differs from unfused, tensor " << i;
      }
  }
}

// gate/up GEMVs and the swiglu of their outputs: one launch, a block computing the same
// rows of both and their swiglu; bit-identical to the swiglu kernel after the GEMVs.
TEST(CudaKernels, GemvSwiGluPair) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::unique_ptr<CudaBackend> unfused_be;
  {
    ScopedEnv env("BMSYS_CUDA_FUSE", "0"), env2("BMSYS_CUDA_GEMV", "2");
    unfused_be = std::make_unique<CudaBackend>(BackendOptions{});
  }
  std::mt19937 rng(27);
  for (DType t : kFloatTypes)
    for (int64_t M : {1, 2, 5})
      for (int order = 0; order < 2; ++order) {
        const int64_t K = 264, N = 77;
        Case c;
        // 0 x, 1 w_gate, 2 w_up, 3 gate, 4 up, 5 y
        c.tensors = {random_tensor(t, {1, M, K}, rng), random_tensor(t, {N, K}, rng, -0.2f, 0.2f),
                     random_tensor(t, {N, K}, rng, -0.2f, 0.2f), poison(t, {1, M, N}), poison(t, {1, M, N}),
                     poison(t, {1, M, N})};
        // order 1: up's GEMV first (the step puts gate first)
        c.calls.push_back({KernelId::Linear, attrs({}), {0, order ? 2 : 1}, {order ? 4 : 3}});
        c.calls.push_back({KernelId::Linear, attrs({}), {0, order ? 1 : 2}, {order ? 3 : 4}});
        c.calls.push_back({KernelId::SwiGlu, attrs({}), {3, 4}, {5}});
        c.check = {3, 4, 5};
        const std::string what = fmt::format("gemv swiglu {} M={} order {}", dtype_name(t), M, order);
        auto before = gpu_gemv().stats().launches_saved;
        expect_matches_cpu(c, t == DType::F32 ? 3e-5 : tol_for(t), &gpu_gemv(), what);
        EXPECT_GE(gpu_gemv().stats().launches_saved - before, 2) << what << ": swiglu was not fused";
        std::vector<HostTensor> a = run_calls(gpu_gemv(), c.tensors, c.calls, c.ctx);
        std::vector<HostTensor> b = run_calls(*unfused_be, c.tensors, c.calls, c.ctx);
        for (int i : c.check) EXPECT_EQ(a[i].data, b[i].data) << what << ": differs from unfused, tensor " << i;
      }
}

// The pipelined GEMV alone (BMSYS_CUDA_GEMV=3).
TEST(CudaKernels, GemvPipelinedKernel) {
  BMSYS_SKIP_WITHOUT_GPU();
  ScopedEnv env("BMSYS_CUDA_GEMV", "3");
  CudaBackend be{BackendOptions{}};
  std::mt19937 rng(25);
  for (DType t : kFloatTypes) {
    linear_case(t, 1, 4096, 1000, false, true, rng, &be);
    linear_case(t, 2, 1000, 77, false, false, rng, &be);
    linear_case(t, 1, 11008, 64, false, true, rng, &be);
    linear_case(t, 8, 512, 300, false, true, rng, &be);
  }
}

// The row GEMV (BMSYS_CUDA_GEMV=2): x staged in shared memory, x read from global memory
// (x above 64 KB: M = 8, K = 11008 in f32 and 2-byte types), and odd K (no 16-byte rows).
TEST(CudaKernels, GemvRowKernel) {
  BMSYS_SKIP_WITHOUT_GPU();
  ScopedEnv env("BMSYS_CUDA_GEMV", "2");
  CudaBackend be{BackendOptions{}};
  std::mt19937 rng(23);
  for (DType t : kFloatTypes) {
    linear_case(t, 1, 4096, 1000, false, true, rng, &be);
    linear_case(t, 3, 1001, 77, false, false, rng, &be);
    linear_case(t, 8, 11008, 64, false, true, rng, &be);
  }
}

// --- norms -------------------------------------------------------------------------------
TEST(CudaKernels, Norms) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(5);
  const int64_t shapes[][2] = {{1, 4096}, {7, 1000}, {33, 77}, {2, 64}, {3, 5}, {300, 768}};
  for (DType t : kFloatTypes)
    for (auto& s : shapes) {
      Case c;
      c.tensors = {random_tensor(t, {s[0], s[1]}, rng, -2.f, 2.f), random_tensor(t, {s[1]}, rng),
                   random_tensor(t, {s[1]}, rng), poison(t, {s[0], s[1]}), poison(t, {s[0], s[1]})};
      c.calls.push_back({KernelId::RmsNorm, attrs({{"eps", float_attr(1e-5)}}), {0, 1}, {3}});
      c.calls.push_back({KernelId::LayerNorm, attrs({{"eps", float_attr(1e-5)}}), {0, 1, 2}, {4}});
      c.check = {3, 4};
      expect_matches_cpu(c, tol_for(t), nullptr, fmt::format("norms {} {}x{}", dtype_name(t), s[0], s[1]));
    }
}

// --- rope --------------------------------------------------------------------------------
TEST(CudaKernels, Rope) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(6);
  const int64_t shapes[][4] = {{1, 1, 32, 128}, {2, 13, 3, 16}, {1, 37, 5, 64}, {3, 4, 1, 6}};
  for (DType t : kFloatTypes)
    for (auto& s : shapes)
      for (double theta : {10000.0, 500000.0}) {
        const int64_t B = s[0], S = s[1], N = s[2], D = s[3];
        Case c;
        HostTensor pos(DType::I64, {B, S});
        // Positions below and above the backend's table of angles (8192 positions).
        std::uniform_int_distribution<int64_t> pd(0, 12000);
        for (int64_t i = 0; i < B * S; ++i) pos.as<int64_t>()[i] = pd(rng);
        c.tensors = {random_tensor(t, {B, S, N * D}, rng), pos, poison(t, {B, S, N * D})};
        c.calls.push_back({KernelId::Rope, attrs({{"head_dim", int_attr(D)}, {"theta", float_attr(theta)}}),
                           {0, 1}, {2}});
        c.check = {2};
        expect_matches_cpu(c, t == DType::F32 ? 2e-5 : tol_for(t), nullptr,
                           fmt::format("rope {} {}x{}x{}x{}", dtype_name(t), B, S, N, D));
      }
}

// rope on q then on k with the same positions runs as one launch.
TEST(CudaKernels, RopePair) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(7);
  for (DType t : kFloatTypes) {
    Case c;
    c.tensors = {random_tensor(t, {2, 5, 4 * 16}, rng), random_tensor(t, {2, 5, 2 * 16}, rng),
                 ids_tensor({2, 5}, 100, rng), poison(t, {2, 5, 64}), poison(t, {2, 5, 32})};
    Attrs a = attrs({{"head_dim", int_attr(16)}, {"theta", float_attr(10000.0)}});
    c.calls.push_back({KernelId::Rope, a, {0, 2}, {3}});
    c.calls.push_back({KernelId::Rope, a, {1, 2}, {4}});
    c.check = {3, 4};
    auto before = gpu().stats().launches_saved;
    expect_matches_cpu(c, t == DType::F32 ? 2e-5 : tol_for(t), nullptr, "rope pair");
    EXPECT_GE(gpu().stats().launches_saved - before, 1);
  }
}

// --- attention ---------------------------------------------------------------------------
struct AttnCase {
  int64_t B, S, Nq, Nkv, D;
  bool causal, cache;
  int64_t P, Smax;
};

// attention, or with `rope` rope_attention (positions drawn below and above the
// backend's table of angles).
void attention_case(DType t, const AttnCase& a, std::mt19937& rng, Backend* be = nullptr, bool rope = false) {
  Case c;
  c.tensors = {random_tensor(t, {a.B, a.S, a.Nq * a.D}, rng, -2.f, 2.f),
               random_tensor(t, {a.B, a.S, a.Nkv * a.D}, rng, -2.f, 2.f),
               random_tensor(t, {a.B, a.S, a.Nkv * a.D}, rng)};
  std::vector<int> in = {0, 1, 2};
  if (rope) {
    HostTensor pos(DType::I64, {a.B, a.S});
    std::uniform_int_distribution<int64_t> pd(0, 12000);
    for (int64_t i = 0; i < a.B * a.S; ++i) pos.as<int64_t>()[i] = pd(rng);
    c.tensors.push_back(pos);
    in.push_back(3);
  }
  if (a.cache) {
    // History in the cache (rows < P) and garbage beyond, as after earlier calls.
    c.tensors.push_back(random_tensor(t, {a.B, a.Smax, a.Nkv, a.D}, rng, -2.f, 2.f));
    c.tensors.push_back(random_tensor(t, {a.B, a.Smax, a.Nkv, a.D}, rng));
    in.push_back(static_cast<int>(c.tensors.size()) - 2);
    in.push_back(static_cast<int>(c.tensors.size()) - 1);
  }
  c.tensors.push_back(poison(t, {a.B, a.S, a.Nq * a.D}));
  int y = static_cast<int>(c.tensors.size()) - 1;
  Attrs at = attrs({{"num_heads", int_attr(a.Nq)},
                    {"num_kv_heads", int_attr(a.Nkv)},
                    {"head_dim", int_attr(a.D)},
                    {"scale", float_attr(1.0 / std::sqrt(static_cast<double>(a.D)))},
                    {"causal", int_attr(a.causal)}});
  if (rope) at = attrs({{"num_heads", int_attr(a.Nq)},
                        {"num_kv_heads", int_attr(a.Nkv)},
                        {"head_dim", int_attr(a.D)},
                        {"scale", float_attr(1.0 / std::sqrt(static_cast<double>(a.D)))},
                        {"causal", int_attr(a.causal)},
                        {"theta", float_attr(10000.0)}});
  c.calls.push_back({rope ? KernelId::RopeAttention : KernelId::Attention, at, in, {y}});
  c.check = {y};
  if (a.cache) {
    c.check.push_back(in[in.size() - 2]);
    c.check.push_back(in[in.size() - 1]);
  }
  c.ctx.batch = a.B;
  c.ctx.seq = a.S;
  c.ctx.start_pos = a.P;
  c.ctx.max_batch = a.B;
  c.ctx.max_seq = a.cache ? a.Smax : a.S;
  expect_matches_cpu(c, t == DType::F32 ? 2e-5 : tol_for(t), be,
                     fmt::format("{} {} B={} S={} Nq={} Nkv={} D={} causal={} cache={} P={} Smax={}",
                                 rope ? "rope_attention" : "attention", dtype_name(t), a.B, a.S, a.Nq, a.Nkv,
                                 a.D, a.causal, a.cache, a.P, a.Smax));
}

const AttnCase kAttnCases[] = {
    // no cache (prefill / infer)
    {2, 16, 4, 2, 16, true, false, 0, 0},
    {1, 37, 3, 3, 64, true, false, 0, 0},
    {2, 70, 4, 4, 128, false, false, 0, 0},
    {1, 129, 8, 2, 64, true, false, 0, 0},
    {1, 5, 2, 1, 80, true, false, 0, 0},
    {1, 33, 2, 2, 32, true, false, 0, 0},
    {1, 3, 2, 2, 256, true, false, 0, 0},
    // with a cache: chunked prefill at P
    {2, 9, 4, 2, 16, true, true, 0, 64},
    {1, 70, 4, 4, 128, true, true, 5, 200},
    {1, 17, 6, 3, 64, false, true, 11, 40},
    // decode (S = 1)
    {2, 1, 4, 2, 16, true, true, 20, 64},
    {1, 1, 32, 32, 128, true, true, 300, 1024},
    {1, 1, 8, 1, 64, true, true, 0, 16},
    {1, 1, 16, 2, 128, true, true, 1000, 2048},
    {1, 1, 24, 2, 64, true, true, 77, 100},
    {2, 1, 4, 4, 80, false, true, 50, 128},
    {3, 1, 2, 2, 36, true, true, 63, 64},
    {1, 1, 16, 2, 256, true, true, 500, 1024},  // 4-warp blocks (8 heads of 256)
    {16, 1, 32, 32, 32, true, true, 40, 64},    // no key split (enough blocks without)
};

TEST(CudaKernels, Attention) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(8);
  for (DType t : kFloatTypes)
    for (const AttnCase& a : kAttnCases) attention_case(t, a, rng);
}

TEST(CudaKernels, AttentionWithoutTensorCores) {
  BMSYS_SKIP_WITHOUT_GPU();
  ScopedEnv env("BMSYS_CUDA_FLASH", "0");
  CudaBackend be{BackendOptions{}};
  std::mt19937 rng(9);
  for (DType t : {DType::BF16, DType::F16})
    for (int i = 0; i < 4; ++i) attention_case(t, kAttnCases[i], rng, &be);
}

// rope_attention: the decode kernel rotates q and the new key itself (head_dim 64, 128,
// 256); every other case (prefill, no cache, head_dim 16/32/80/36) runs rope first.
TEST(CudaKernels, RopeAttention) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(11);
  const AttnCase cases[] = {
      {1, 1, 32, 32, 128, true, true, 300, 1024}, {2, 1, 8, 1, 64, true, true, 20, 64},
      {1, 1, 24, 2, 64, true, true, 77, 100},     {1, 1, 16, 2, 256, true, true, 500, 1024},
      {3, 1, 4, 4, 128, true, true, 0, 16},       {2, 1, 4, 2, 16, true, true, 20, 64},
      {2, 1, 4, 4, 80, false, true, 50, 128},     {1, 1, 4, 4, 32, true, true, 9, 40},
      {1, 70, 4, 4, 128, true, true, 5, 200},     {2, 16, 4, 2, 16, true, false, 0, 0},
      {1, 37, 3, 3, 64, true, false, 0, 0},
  };
  for (DType t : kFloatTypes)
    for (const AttnCase& a : cases) attention_case(t, a, rng, nullptr, true);
}

TEST(CudaKernels, AttentionRandomShapes) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(10);
  const int64_t dims[] = {16, 32, 64, 128, 48};
  for (int i = 0; i < 18; ++i) {
    AttnCase a;
    a.B = 1 + rng() % 3;
    a.Nkv = 1 + rng() % 3;
    a.Nq = a.Nkv * (1 + rng() % 3);
    a.D = dims[rng() % 5];
    a.cache = rng() % 2;
    a.S = a.cache && rng() % 2 ? 1 : 1 + rng() % 150;
    a.Smax = a.cache ? a.S + rng() % 200 : 0;
    a.P = a.cache ? rng() % (a.Smax - a.S + 1) : 0;
    a.causal = rng() % 4 != 0;
    attention_case(kFloatTypes[i % 3], a, rng);
  }
}

// --- elementwise -------------------------------------------------------------------------
TEST(CudaKernels, Elementwise) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(11);
  for (DType t : kFloatTypes)
    for (int64_t n : {1, 7, 4096, 100003}) {
      Case c;
      c.tensors = {random_tensor(t, {n}, rng, -4.f, 4.f), random_tensor(t, {n}, rng, -4.f, 4.f)};
      for (int k = 0; k < 5; ++k) c.tensors.push_back(poison(t, {n}));
      c.calls.push_back({KernelId::Gelu, attrs({{"approximate", str_attr("tanh")}}), {0}, {2}});
      c.calls.push_back({KernelId::Gelu, attrs({{"approximate", str_attr("none")}}), {0}, {3}});
      c.calls.push_back({KernelId::Silu, attrs({}), {0}, {4}});
      c.calls.push_back({KernelId::Add, attrs({}), {0, 1}, {5}});
      c.calls.push_back({KernelId::Mul, attrs({}), {1, 0}, {6}});
      c.check = {2, 3, 4, 5, 6};
      expect_matches_cpu(c, t == DType::F32 ? 1e-5 : tol_for(t), nullptr,
                         fmt::format("elementwise {} n={}", dtype_name(t), n));
    }
}

// silu followed by mul of its output runs as one launch and still writes silu's output.
TEST(CudaKernels, SiluMul) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(12);
  for (DType t : kFloatTypes)
    for (int64_t n : {11008, 13}) {
      Case c;
      c.tensors = {random_tensor(t, {1, n}, rng, -4.f, 4.f), random_tensor(t, {1, n}, rng),
                   poison(t, {1, n}), poison(t, {1, n})};
      c.calls.push_back({KernelId::Silu, attrs({}), {0}, {2}});
      c.calls.push_back({KernelId::Mul, attrs({}), {2, 1}, {3}});
      c.check = {2, 3};
      auto before = gpu().stats().launches_saved;
      expect_matches_cpu(c, t == DType::F32 ? 1e-5 : tol_for(t), nullptr, "silu*mul");
      EXPECT_GE(gpu().stats().launches_saved - before, 1);
    }
}

// linear (cuBLASLt) followed by tanh-GELU: the GELU_AUX epilogue writes both.
TEST(CudaKernels, LinearGelu) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(13);
  for (DType t : kFloatTypes)
    for (int wt = 0; wt < 2; ++wt) {
      const int64_t M = 16, K = 64, N = 256;
      Case c;
      c.tensors = {random_tensor(t, {M, K}, rng), random_tensor(t, wt ? Shape{K, N} : Shape{N, K}, rng, -0.3f, 0.3f),
                   random_tensor(t, {N}, rng), poison(t, {M, N}), poison(t, {M, N})};
      c.calls.push_back({KernelId::Linear, attrs({{"weight_transposed", int_attr(wt)}}), {0, 1, 2}, {3}});
      c.calls.push_back({KernelId::Gelu, attrs({{"approximate", str_attr("tanh")}}), {3}, {4}});
      c.check = {3, 4};
      expect_matches_cpu(c, t == DType::F32 ? 1e-5 : tol_for(t), nullptr, "linear+gelu");
    }
}

TEST(CudaKernels, Slice) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(14);
  const int64_t cases[][4] = {{4, 192, 64, 64}, {3, 7, 2, 3}, {1, 100, 0, 100}, {5, 33, 32, 1}};
  for (DType t : {DType::F32, DType::BF16, DType::F16, DType::I64})
    for (auto& s : cases) {
      Case c;
      if (t == DType::I64) c.tensors.push_back(ids_tensor({s[0], s[1]}, 1000, rng));
      else c.tensors.push_back(random_tensor(t, {s[0], s[1]}, rng));
      c.tensors.push_back(poison(t, {s[0], s[3]}));
      c.calls.push_back({KernelId::Slice, attrs({{"offset", int_attr(s[2])}, {"size", int_attr(s[3])}}), {0}, {1}});
      c.check = {1};
      expect_matches_cpu(c, 0.0, nullptr, "slice");
    }
}

TEST(CudaKernels, EmbeddingAndPositions) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(15);
  for (DType t : kFloatTypes)
    for (int64_t H : {77, 64, 4096}) {
      Case c;
      c.tensors = {ids_tensor({2, 9}, 300, rng), random_tensor(t, {300, H}, rng), poison(t, {2, 9, H}),
                   poison(DType::I64, {2, 9})};
      c.calls.push_back({KernelId::Embedding, attrs({}), {0, 1}, {2}});
      c.calls.push_back({KernelId::Positions, attrs({}), {0}, {3}});
      c.check = {2, 3};
      c.ctx.start_pos = 7;
      expect_matches_cpu(c, 0.0, nullptr, "embedding/positions");
    }
}

TEST(CudaKernels, EmbeddingIdOutOfRange) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(16);
  HostTensor ids = ids_tensor({1, 4}, 10, rng);
  ids.as<int64_t>()[2] = 10;
  std::vector<HostTensor> ts = {ids, random_tensor(DType::F32, {10, 8}, rng), poison(DType::F32, {1, 4, 8})};
  std::vector<Call> calls = {{KernelId::Embedding, attrs({}), {0, 1}, {2}}};
  try {
    run_calls(gpu(), ts, calls, LaunchContext{});
    ADD_FAILURE() << "no error for an out-of-range id";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("token id 10 at position 2 is outside the vocabulary [0, 10)"), std::string::npos) << m;
  }
  // The backend still works afterwards.
  ids.as<int64_t>()[2] = 3;
  ts[0] = ids;
  EXPECT_NO_THROW(run_calls(gpu(), ts, calls, LaunchContext{}));
}

TEST(CudaKernels, CrossEntropy) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(17);
  const int64_t cases[][3] = {{2, 16, 256}, {1, 3, 32000}, {4, 31, 50}};
  for (DType t : kFloatTypes)
    for (auto& s : cases)
      for (int shift = 0; shift < 2; ++shift) {
        Case c;
        c.tensors = {random_tensor(t, {s[0], s[1], s[2]}, rng, -5.f, 5.f), ids_tensor({s[0], s[1]}, s[2], rng),
                     poison(DType::F32, {1})};
        c.calls.push_back({KernelId::CrossEntropy, attrs({{"shift", int_attr(shift)}}), {0, 1}, {2}});
        c.check = {2};
        expect_matches_cpu(c, t == DType::F32 ? 1e-6 : 1e-3, nullptr, "cross_entropy");
      }
  // A label outside the vocabulary.
  HostTensor labels = ids_tensor({1, 4}, 8, rng);
  labels.as<int64_t>()[3] = -1;
  std::vector<HostTensor> ts = {random_tensor(DType::F32, {1, 4, 8}, rng), labels, poison(DType::F32, {1})};
  std::vector<Call> calls = {{KernelId::CrossEntropy, attrs({{"shift", int_attr(1)}}), {0, 1}, {2}}};
  try {
    run_calls(gpu(), ts, calls, LaunchContext{});
    ADD_FAILURE() << "no error for a bad label";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("label -1"), std::string::npos) << e.what();
  }
}

TEST(CudaKernels, Argmax) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(18);
  for (DType t : kFloatTypes) {
    const int64_t rows = 3, V = 32000;
    HostTensor x = random_tensor(t, {rows, V}, rng);
    // Ties: the first maximum wins, as torch.argmax.
    HostTensor f = as_f32(x);
    std::vector<float> v = f.to_f32();
    convert(x.data.data() + (1 * V + 5) * dtype_size(t), t, "\0\0\0\x40", DType::F32, 1);  // 2.0
    convert(x.data.data() + (1 * V + 900) * dtype_size(t), t, "\0\0\0\x40", DType::F32, 1);
    v = as_f32(x).to_f32();
    auto mem = gpu().allocate(x.bytes(), "argmax input");
    gpu().upload(mem->data(), t, x.data.data(), t, x.numel());
    std::vector<int64_t> got(rows);
    gpu().argmax_rows(TensorView{mem->data(), t, {rows, V}}, got.data());
    for (int64_t r = 0; r < rows; ++r) {
      int64_t best = 0;
      for (int64_t i = 1; i < V; ++i)
        if (v[r * V + i] > v[r * V + best]) best = i;
      EXPECT_EQ(got[r], best) << "row " << r;
    }
    EXPECT_EQ(got[1], 5);
  }
}

// queue_pick (greedy decoding fed on the device): the ids land in device memory and,
// per ticket, on the host; an unread ticket survives the ring of host slots growing for
// a larger batch; tickets too old or never issued are refused.
TEST(CudaKernels, QueuedArgmaxTickets) {
  BMSYS_SKIP_WITHOUT_GPU();
  CudaBackend be{BackendOptions{}};
  std::mt19937 rng(28);
  const int64_t rows = 100, V = 1000;
  HostTensor x = random_tensor(DType::BF16, {rows, V}, rng);
  std::vector<float> v = as_f32(x).to_f32();
  std::vector<int64_t> want(rows);
  for (int64_t r = 0; r < rows; ++r)
    want[r] = std::max_element(v.begin() + r * V, v.begin() + (r + 1) * V) - (v.begin() + r * V);
  auto mem = be.allocate(x.bytes(), "logits");
  be.upload(mem->data(), DType::BF16, x.data.data(), DType::BF16, x.numel());
  auto dst = be.allocate(rows * sizeof(int64_t), "ids");
  // Rows 1..2 (a stride of V) first, then all 100: more than the ring's first 64 per slot.
  const auto* row1 = static_cast<const uint8_t*>(mem->data()) + V * dtype_size(DType::BF16);
  const uint64_t t1 = be.queue_pick(row1, DType::BF16, 2, V, V, dst->data());
  const uint64_t t2 = be.queue_pick(mem->data(), DType::BF16, rows, V, V, dst->data());
  EXPECT_EQ(be.picked_ids(t1), std::vector<int64_t>(want.begin() + 1, want.begin() + 3));
  EXPECT_EQ(be.picked_ids(t2), want);
  std::vector<int64_t> on_device(rows);
  be.copy_to_host(on_device.data(), dst->data(), rows * sizeof(int64_t));
  EXPECT_EQ(on_device, want);
  for (uint64_t k = 0; k < Backend::kPickTickets; ++k) be.queue_pick(mem->data(), DType::BF16, 1, V, V, dst->data());
  EXPECT_THROW(be.picked_ids(t2), Error);
  EXPECT_THROW(be.picked_ids(t2 + 100), Error);
}

// Sampling on the device (queue_pick; pick.cu) picks what pick_token picks on the host
// from the same logits and uniforms: greedy (the argmax kernel, NaN never the maximum),
// temperature only (a scan in id order),
// top-k, top-p (nuclei small and of nearly everything), both; one row (DeviceRadixSort)
// and several (segmented), more rows than one pick launch takes; ties, NaN, -0, rows of
// -inf (the first id) and with +inf (the first +inf).
TEST(CudaKernels, PickDrawsWhatTheHostDraws) {
  BMSYS_SKIP_WITHOUT_GPU();
  CudaBackend be{BackendOptions{}};
  std::mt19937 rng(29);
  std::mt19937_64 bits(30);
  struct Case {
    double temperature;
    int64_t top_k;
    double top_p;
  };
  const Case cases[] = {{1.0, 0, 1.0}, {0.8, 40, 1.0}, {1.2, 0, 0.9}, {0.7, 50, 0.8},
                        {3.0, 0, 0.99}, {0.5, 1, 1.0}, {0.0, 0, 1.0}};
  const int64_t shapes[][2] = {{1, 7}, {1, 1000}, {3, 1000}, {1, 32000}, {2, 32000}, {70, 100}};
  int checked = 0;
  for (DType t : {DType::F32, DType::BF16})
    for (auto& sh : shapes) {
      const int64_t rows = sh[0], V = sh[1];
      HostTensor x = random_tensor(DType::F32, {rows, V}, rng, -8.f, 8.f);
      float* xv = x.as<float>();
      for (int64_t i = 0; i < rows * V / 20; ++i) xv[bits() % (rows * V)] = xv[bits() % (rows * V)];  // ties
      if (V >= 7) {
        xv[3] = std::nanf("");
        xv[4] = -0.0f;
        xv[5] = 0.0f;
      }
      if (rows >= 3) {
        for (int64_t i = 0; i < V; ++i) xv[V + i] = -INFINITY;  // row 1: all -inf
        xv[2 * V + 5] = INFINITY;                                // row 2: +inf at 5 and 6
        xv[2 * V + 6] = INFINITY;
      }
      HostTensor xt = t == DType::F32 ? x : HostTensor(t, x.shape);
      if (t != DType::F32) convert(xt.data.data(), t, x.data.data(), DType::F32, x.numel());
      const std::vector<float> v = xt.to_f32();
      auto mem = be.allocate(xt.bytes(), "logits");
      be.upload(mem->data(), t, xt.data.data(), t, xt.numel());
      auto dst = be.allocate(rows * sizeof(int64_t), "ids");
      for (const Case& c : cases) {
        PickOptions o;
        o.temperature = c.temperature;
        o.top_k = c.top_k;
        o.top_p = c.top_p;
        std::vector<double> u(rows);
        for (double& d : u) d = pick_uniform(bits());
        const std::vector<int64_t> got = be.picked_ids(be.queue_pick(mem->data(), t, rows, V, V, dst->data(), o, u));
        PickScratch scratch;
        for (int64_t r = 0; r < rows; ++r) {
          std::vector<double> row(v.begin() + r * V, v.begin() + (r + 1) * V);
          for (double& d : row) d = std::isnan(d) ? -INFINITY : d;
          const int64_t want = pick_token(row, o, u[r], scratch);
          EXPECT_EQ(got[r], want) << dtype_name(t) << " rows=" << rows << " V=" << V << " row " << r
                                  << ": T=" << c.temperature << " top_k=" << c.top_k << " top_p=" << c.top_p
                                  << " u=" << u[r];
          ++checked;
        }
        std::vector<int64_t> on_device(rows);
        be.copy_to_host(on_device.data(), dst->data(), rows * sizeof(int64_t));
        EXPECT_EQ(on_device, got) << "the ids in device memory";
      }
    }
  EXPECT_EQ(checked, 2 * 7 * (1 + 1 + 3 + 1 + 2 + 70));
  // A draw needs a uniform in [0, 1) for every row.
  auto mem = be.allocate(64 * sizeof(float), "logits");
  PickOptions o;
  o.temperature = 1;
  EXPECT_THROW(be.queue_pick(mem->data(), DType::F32, 2, 32, 32, mem->data(), o, {0.5}), Error);
  EXPECT_THROW(be.queue_pick(mem->data(), DType::F32, 1, 32, 32, mem->data(), o, {1.0}), Error);
}

TEST(CudaKernels, UploadConversions) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(19);
  HostTensor f = random_tensor(DType::F32, {1000}, rng);
  for (DType t : {DType::BF16, DType::F16}) {
    auto mem = gpu().allocate(1000 * dtype_size(t), "conversion");
    gpu().upload(mem->data(), t, f.data.data(), DType::F32, 1000);
    HostTensor got(t, {1000}), want(t, {1000});
    gpu().copy_to_host(got.data.data(), mem->data(), got.bytes());
    convert(want.data.data(), t, f.data.data(), DType::F32, 1000);
    EXPECT_EQ(got.data, want.data) << dtype_name(t);
  }
  // i32 -> i64 and an i64 that does not fit i32.
  std::vector<int32_t> i32 = {1, -2, 300000, 7};
  auto m64 = gpu().allocate(4 * 8, "ids");
  gpu().upload(m64->data(), DType::I64, i32.data(), DType::I32, 4);
  std::vector<int64_t> back(4);
  gpu().copy_to_host(back.data(), m64->data(), 32);
  EXPECT_EQ(back, (std::vector<int64_t>{1, -2, 300000, 7}));
  std::vector<int64_t> big = {1, int64_t(1) << 40};
  auto m32 = gpu().allocate(8, "small ints");
  EXPECT_THROW(
      {
        gpu().upload(m32->data(), DType::I32, big.data(), DType::I64, 2);
        gpu().synchronize();
      },
      Error);
}

// A decode-shaped sequence replayed at every start position through one CUDA graph.
TEST(CudaKernels, GraphReplayAcrossPositions) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(20);
  CudaBackend be{BackendOptions{}};
  CpuBackend ref;
  for (DType t : {DType::F32, DType::BF16}) {
    const int64_t Nq = 4, Nkv = 2, D = 32, Smax = 40, H = Nq * D;
    std::vector<HostTensor> ts = {ids_tensor({1, 1}, 50, rng), random_tensor(t, {50, H}, rng),
                                  random_tensor(t, {H}, rng), random_tensor(t, {H, H}, rng, -0.1f, 0.1f),
                                  random_tensor(t, {Nkv * D, H}, rng, -0.1f, 0.1f),
                                  random_tensor(t, {Nkv * D, H}, rng, -0.1f, 0.1f),
                                  HostTensor(t, {1, Smax, Nkv, D}), HostTensor(t, {1, Smax, Nkv, D}),
                                  HostTensor(DType::I64, {1, 1}), poison(t, {1, 1, H}), poison(t, {1, 1, H}),
                                  poison(t, {1, 1, H}), poison(t, {1, 1, Nkv * D}), poison(t, {1, 1, Nkv * D}),
                                  poison(t, {1, 1, H}), poison(t, {1, 1, Nkv * D}), poison(t, {1, 1, H})};
    // 0 ids, 1 table, 2 gamma, 3 wq, 4 wk, 5 wv, 6 kc, 7 vc, 8 pos, 9 emb, 10 norm, 11 q, 12 k, 13 v,
    // 14 qr, 15 kr, 16 y
    Attrs none = attrs({});
    Attrs rope = attrs({{"head_dim", int_attr(D)}, {"theta", float_attr(10000.0)}});
    Attrs attn = attrs({{"num_heads", int_attr(Nq)}, {"num_kv_heads", int_attr(Nkv)}, {"head_dim", int_attr(D)},
                        {"scale", float_attr(0.17)}, {"causal", int_attr(1)}});
    Attrs eps = attrs({{"eps", float_attr(1e-5)}});
    std::vector<Call> calls = {{KernelId::Positions, none, {0}, {8}},
                               {KernelId::Embedding, none, {0, 1}, {9}},
                               {KernelId::RmsNorm, eps, {9, 2}, {10}},
                               {KernelId::Linear, none, {10, 3}, {11}},
                               {KernelId::Linear, none, {10, 4}, {12}},
                               {KernelId::Linear, none, {10, 5}, {13}},
                               {KernelId::Rope, rope, {11, 8}, {14}},
                               {KernelId::Rope, rope, {12, 8}, {15}},
                               {KernelId::Attention, attn, {14, 15, 13, 6, 7}, {16}}};
    std::vector<HostTensor> f32;
    for (auto& x : ts) f32.push_back(as_f32(x));
    auto run_seq = [&](Backend& b, std::vector<HostTensor>& tensors, std::vector<HostTensor>& outs) {
      std::vector<std::unique_ptr<DeviceMemory>> mem;
      for (auto& x : tensors) {
        mem.push_back(b.allocate(x.bytes(), "t"));
        b.upload(mem.back()->data(), x.dtype, x.data.data(), x.dtype, x.numel());
      }
      for (int64_t P = 0; P < 12; ++P) {
        HostTensor id = ids_tensor({1, 1}, 50, rng);
        b.upload(mem[0]->data(), DType::I64, id.data.data(), DType::I64, 1);
        for (const Call& c : calls) {
          KernelLaunch l;
          l.kernel = c.kernel;
          l.attrs = &c.attrs;
          l.ctx.start_pos = P;
          l.ctx.max_seq = Smax;
          for (int i : c.inputs) l.inputs.push_back({mem[i]->data(), tensors[i].dtype, tensors[i].shape});
          for (int i : c.outputs) l.outputs.push_back({mem[i]->data(), tensors[i].dtype, tensors[i].shape});
          check_launch(l);
          b.launch(l);
        }
        HostTensor y(tensors[16].dtype, tensors[16].shape);
        b.copy_to_host(y.data.data(), mem[16]->data(), y.bytes());
        outs.push_back(y);
      }
    };
    // Same ids on both: reseed the generator for each run.
    std::vector<HostTensor> got, want;
    rng.seed(99);
    run_seq(be, ts, got);
    rng.seed(99);
    run_seq(ref, f32, want);
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_LE(rel_err(got[i], want[i]), t == DType::F32 ? 2e-5 : 3e-2) << dtype_name(t) << " step " << i;
  }
  EXPECT_GE(be.stats().graph_replays, 10) << "decode steps were not replayed from a graph";
}

TEST(CudaBackend, OutOfMemoryNamesTheNeed) {
  BMSYS_SKIP_WITHOUT_GPU();
  try {
    gpu().allocate(size_t(1) << 50, "weight 'huge'");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("out of memory allocating"), std::string::npos) << m;
    EXPECT_NE(m.find("weight 'huge'"), std::string::npos) << m;
    EXPECT_NE(m.find("free of"), std::string::npos) << m;
  }
  try {
    gpu().check_memory_plan(uint64_t(1) << 50, "weights 1 PiB");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("the memory plan needs"), std::string::npos) << m;
    EXPECT_NE(m.find("weights 1 PiB"), std::string::npos) << m;
  }
  EXPECT_NE(gpu().memory_report().find("free of"), std::string::npos);
}

TEST(CudaBackend, TraceFile) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::string path = ::testing::TempDir() + "/bmsys-cuda-trace.json";
  {
    BackendOptions o;
    o.trace_path = path;
    CudaBackend be(o);
    std::mt19937 rng(21);
    Case c;
    c.tensors = {random_tensor(DType::F32, {4, 64}, rng), random_tensor(DType::F32, {64}, rng),
                 poison(DType::F32, {4, 64})};
    c.calls.push_back({KernelId::RmsNorm, attrs({{"eps", float_attr(1e-5)}}), {0, 1}, {2}});
    c.check = {2};
    expect_matches_cpu(c, 1e-5, &be, "traced rms_norm");
  }
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << path;
  nlohmann::json j = nlohmann::json::parse(in);
  bool kernel = false, copy = false, track = false;
  for (auto& e : j["traceEvents"]) {
    if (e["ph"] == "X" && e["name"] == "rms_norm") kernel = true;
    if (e["ph"] == "X" && e["cat"] == "copy") copy = true;
    if (e["ph"] == "M" && e["name"] == "thread_name" && e["args"]["name"] == "compute stream") track = true;
  }
  EXPECT_TRUE(kernel);
  EXPECT_TRUE(copy);
  EXPECT_TRUE(track);
}

TEST(CudaBackend, NoDeviceSkipsCleanly) {
  // Runs everywhere: without a GPU the backend refuses with a clear message.
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
  try {
    CudaBackend be{BackendOptions{}};
    ADD_FAILURE() << "created without a device";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace bmsys::rt::cudatest
