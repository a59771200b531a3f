// Ordering inside one flush under programmatic dependent launch (docs/cuda.md,
// "Programmatic dependent launch"): the GEMVs and add_rms_norm load their constant
// operands (weights, gamma) before griddepcontrol.wait, under the previous kernel's tail.
// That is only right where no earlier kernel of the flush writes them. Mixed precision
// casts its f32 masters to f16/bf16 copies in the same flush, so there the backend makes
// those kernels wait first (Launch::early_loads).
//
// The tests set a trap: a cast writes a wrong value into the operand, a slow one-block
// kernel follows (an RMS norm over 8M elements), then the cast of the right value, then
// the reader. Under PDL the right cast starts early and waits for the slow kernel, and the
// reader starts as soon as that cast's blocks run: an early load reads the wrong value.
// Run three times (eager, captured, replayed) against the CPU, which runs in order.
#include "runtime/backends/cuda/collectives.h"
#include "runtime/tests/cuda/cuda_test_util.h"

namespace bmsys::rt::cudatest {
namespace {

using cuda::Range;
using cuda::RangeSet;

Range span(uintptr_t b, size_t n) { return {reinterpret_cast<const void*>(b), n}; }

TEST(CudaFlush, RangeSetMergesAndFindsOverlaps) {
  RangeSet s;
  EXPECT_FALSE(s.overlaps(span(100, 10)));
  s.add(span(100, 10));  // [100, 110)
  s.add(span(200, 10));  // [200, 210)
  s.add(span(300, 0));   // empty: nothing
  EXPECT_TRUE(s.overlaps(span(109, 1)));
  EXPECT_FALSE(s.overlaps(span(110, 90)));  // [110, 200): between the two
  EXPECT_FALSE(s.overlaps(span(90, 10)));   // ends where the first starts
  EXPECT_TRUE(s.overlaps(span(90, 11)));
  EXPECT_TRUE(s.overlaps(span(150, 100)));  // spans the gap into the second
  EXPECT_FALSE(s.overlaps(span(300, 5)));
  EXPECT_FALSE(s.overlaps(span(105, 0)));   // an empty range overlaps nothing
  s.add(span(110, 90));                     // fills the gap: one span [100, 210)
  EXPECT_TRUE(s.overlaps(span(150, 1)));
  s.add(span(50, 400));  // swallows it
  EXPECT_TRUE(s.overlaps(span(449, 1)));
  EXPECT_FALSE(s.overlaps(span(450, 1)));
  EXPECT_FALSE(s.overlaps(span(0, 50)));
}

constexpr int64_t kSlow = int64_t{8} << 20;  // elements of the slow norm's single row

// Tensors 0-3: the slow norm's x, gamma and y, and the wrong value (all f32).
std::vector<HostTensor> trap_tensors(int64_t n, std::mt19937& rng) {
  HostTensor wrong(DType::F32, {n});
  for (int64_t i = 0; i < n; ++i) wrong.as<float>()[i] = 100.f;
  return {random_tensor(DType::F32, {1, kSlow}, rng), random_tensor(DType::F32, {kSlow}, rng, 0.5f, 1.5f),
          poison(DType::F32, {1, kSlow}), wrong};
}

// wrong -> dst, slow norm, master -> dst (tensors 0-3 from trap_tensors).
std::vector<Call> trap_calls(int master, int dst) {
  return {{KernelId::Cast, {}, {3}, {dst}},
          {KernelId::RmsNorm, attrs({{"eps", float_attr(1e-5)}}), {0, 1}, {2}},
          {KernelId::Cast, {}, {master}, {dst}}};
}

// The GPU's tensors `check` after three runs against the CPU's, which computes in f32.
void expect_in_order(const std::vector<HostTensor>& ts, const std::vector<Call>& calls, const std::vector<int>& check,
                     double tol, const std::string& what) {
  std::vector<HostTensor> f32;
  for (const HostTensor& t : ts) f32.push_back(as_f32(t));
  std::vector<HostTensor> want = run_calls(cpu(), f32, calls, LaunchContext{});
  std::vector<HostTensor> got = run_calls(gpu(), ts, calls, LaunchContext{}, 3);
  for (int i : check) {
    const double e = rel_err(got[i], want[i]);
    EXPECT_LE(e, tol) << what << ": tensor " << i << " relative error " << e
                      << " (an early load read the value the flush had overwritten)";
  }
}

TEST(CudaFlush, AddRmsNormWaitsForGammaWrittenInTheFlush) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(61);
  const int64_t H = 4096;
  for (DType t : {DType::BF16, DType::F16}) {
    std::vector<HostTensor> ts = trap_tensors(H, rng);
    ts.push_back(random_tensor(DType::F32, {H}, rng, 0.5f, 1.5f));  // 4: gamma's master
    ts.push_back(poison(t, {H}));                                    // 5: its f16/bf16 copy
    ts.push_back(random_tensor(t, {1, 1, H}, rng));                  // 6, 7: a, b
    ts.push_back(random_tensor(t, {1, 1, H}, rng));
    ts.push_back(poison(t, {1, 1, H}));  // 8, 9: sum, y
    ts.push_back(poison(t, {1, 1, H}));
    std::vector<Call> calls = trap_calls(4, 5);
    calls.push_back({KernelId::AddRmsNorm, attrs({{"eps", float_attr(1e-5)}}), {6, 7, 5}, {8, 9}});
    expect_in_order(ts, calls, {9}, tol_for(t), fmt::format("add_rms_norm {}", dtype_name(t)));
  }
}

TEST(CudaFlush, GemvWaitsForWeightWrittenInTheFlush) {
  BMSYS_SKIP_WITHOUT_GPU();
  std::mt19937 rng(62);
  const int64_t K = 4096, N = 1024;
  for (DType t : {DType::BF16, DType::F16}) {
    std::vector<HostTensor> ts = trap_tensors(N * K, rng);
    ts[3].shape = {N, K};
    ts.push_back(random_tensor(DType::F32, {N, K}, rng));  // 4: the weight's master
    ts.push_back(poison(t, {N, K}));                       // 5: its f16/bf16 copy
    ts.push_back(random_tensor(t, {1, 1, K}, rng));        // 6: x (one row: the GEMV)
    ts.push_back(poison(t, {1, 1, N}));                    // 7: y
    ts.push_back(random_tensor(t, {N, K}, rng));           // 8: a second weight on x
    ts.push_back(poison(t, {1, 1, N}));                    // 9: its y
    // Two linears on one x: one launch of the own GEMV (never cuBLASLt).
    std::vector<Call> calls = trap_calls(4, 5);
    calls.push_back({KernelId::Linear, attrs({}), {6, 5}, {7}});
    calls.push_back({KernelId::Linear, attrs({}), {6, 8}, {9}});
    expect_in_order(ts, calls, {7, 9}, tol_for(t), fmt::format("linear x2 (gemv) {}", dtype_name(t)));
  }
}

}  // namespace
}  // namespace bmsys::rt::cudatest
