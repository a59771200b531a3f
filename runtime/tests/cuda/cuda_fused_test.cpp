// The fused elementwise kernels of the CUDA backend (fused_kernels.h and
// rms_norm_grad_add in train_kernels.h; bmsys-fuse-elementwise) against the CPU
// reference on random data, in f32 (tight) and f16/bf16 (inputs rounded to the dtype
// for both sides; tolerance for the rounding), on shapes with odd sizes (the scalar
// tails and the non-vectorized row path) and sizes of 16-byte packs, with poisoned
// outputs. The reference computes the same fused kernel in f32; its equality with the
// unfused chain is runtime/tests/cpu_fused_test.cpp's.
#include "runtime/tests/cuda/cuda_test_util.h"

namespace bmsys::rt::cudatest {
namespace {

void expect_matches_cpu(const std::vector<HostTensor>& ts, const std::vector<Call>& calls,
                        const std::vector<int>& check, double tol, const std::string& what) {
  std::vector<HostTensor> f32;
  for (const HostTensor& t : ts) f32.push_back(as_f32(t));
  std::vector<HostTensor> want = run_calls(cpu(), f32, calls, LaunchContext{});
  std::vector<HostTensor> got = run_calls(gpu(), ts, calls, LaunchContext{});
  for (int i : check) {
    const double e = rel_err(got[i], want[i]);
    EXPECT_LE(e, tol) << what << " tensor " << i << " " << shape_str(got[i].shape) << " relative error " << e;
  }
}

const DType kFloatTypes[] = {DType::F32, DType::BF16, DType::F16};
// Rows of up to 4 packs per thread (add_rms_norm keeps them in registers) and longer.
const Shape kShapes[] = {{1, 1, 1}, {2, 3, 7}, {3, 5, 129}, {2, 9, 64}, {1, 33, 2048}, {4, 7, 5504}, {1, 1, 4096}, {2, 3, 16384}};

TEST(CudaFused, SwiGlu) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(41);
  for (DType t : kFloatTypes)
    for (const Shape& s : kShapes) {
      std::vector<HostTensor> ts = {random_tensor(t, s, rng, -4, 4), random_tensor(t, s, rng), poison(t, s)};
      expect_matches_cpu(ts, {{KernelId::SwiGlu, {}, {0, 1}, {2}}}, {2}, tol_for(t),
                         fmt::format("swiglu {} {}", dtype_name(t), shape_str(s)));
    }
}

TEST(CudaFused, SwiGluGrad) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(42);
  for (DType t : kFloatTypes)
    for (const Shape& s : kShapes) {
      std::vector<HostTensor> ts = {random_tensor(t, s, rng, -4, 4), random_tensor(t, s, rng),
                                    random_tensor(t, s, rng), poison(t, s), poison(t, s)};
      expect_matches_cpu(ts, {{KernelId::SwiGluGrad, {}, {0, 1, 2}, {3, 4}}}, {3, 4}, tol_for(t),
                         fmt::format("swiglu_grad {} {}", dtype_name(t), shape_str(s)));
    }
}

TEST(CudaFused, AddRmsNorm) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(43);
  for (DType t : kFloatTypes)
    for (const Shape& s : kShapes) {
      std::vector<HostTensor> ts = {random_tensor(t, s, rng), random_tensor(t, s, rng),
                                    random_tensor(t, {s.back()}, rng, 0.5f, 1.5f), poison(t, s), poison(t, s)};
      expect_matches_cpu(ts, {{KernelId::AddRmsNorm, attrs({{"eps", float_attr(1e-5)}}), {0, 1, 2}, {3, 4}}}, {3, 4},
                         tol_for(t), fmt::format("add_rms_norm {} {}", dtype_name(t), shape_str(s)));
    }
}

TEST(CudaFused, RmsNormGradAdd) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(44);
  for (DType t : kFloatTypes)
    for (const Shape& s : kShapes) {
      const Shape h{s.back()};
      std::vector<HostTensor> ts = {random_tensor(t, s, rng), random_tensor(t, h, rng, 0.5f, 1.5f),
                                    random_tensor(t, s, rng), random_tensor(t, s, rng), poison(t, s), poison(t, h)};
      // dgamma sums over rows: f16/bf16 round the column sums once more.
      expect_matches_cpu(ts, {{KernelId::RmsNormGradAdd, attrs({{"eps", float_attr(1e-5)}}), {0, 1, 2, 3}, {4, 5}}},
                         {4, 5}, tol_for(t), fmt::format("rms_norm_grad_add {} {}", dtype_name(t), shape_str(s)));
    }
}

// The whole fused MLP backward in bf16 against the unfused chain on the same GPU:
// the fused kernel rounds once where the chain rounds every intermediate, so they
// agree to bf16's rounding.
TEST(CudaFused, SwiGluGradAgreesWithUnfusedChain) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(45);
  const DType t = DType::BF16;
  const Shape s{2, 64, 5504};
  std::vector<HostTensor> ts = {random_tensor(t, s, rng, -4, 4), random_tensor(t, s, rng), random_tensor(t, s, rng),
                                poison(t, s), poison(t, s), poison(t, s), poison(t, s), poison(t, s), poison(t, s)};
  // 0 g, 1 u, 2 dy; fused: 3 dg, 4 du; chain: 5 silu, 6 dy*u, 7 dg, 8 du.
  std::vector<Call> calls = {{KernelId::SwiGluGrad, {}, {0, 1, 2}, {3, 4}},
                             {KernelId::Silu, {}, {0}, {5}},
                             {KernelId::Mul, {}, {2, 1}, {6}},
                             {KernelId::SiluGrad, {}, {0, 6}, {7}},
                             {KernelId::Mul, {}, {2, 5}, {8}}};
  std::vector<HostTensor> got = run_calls(gpu(), ts, calls, LaunchContext{});
  EXPECT_LE(rel_err(got[3], got[7]), 1e-2);
  EXPECT_LE(rel_err(got[4], got[8]), 1e-2);
}

}  // namespace
}  // namespace bmsys::rt::cudatest
