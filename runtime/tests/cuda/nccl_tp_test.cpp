// Tensor parallelism on the CUDA backend (backends/cuda/tensor_parallel.h) with two
// ranks as threads of this process, one GPU each (skipped with fewer than two GPUs):
// NCCL groups of the world communicator (collectives through a group and through the
// world interleaved on their shared stream; a member that never enters a group's
// collective is named, by world rank, within the timeout), and the vocab-parallel
// embedding / embedding_grad / cross_entropy / cross_entropy_grad, tp_all_reduce and
// global_norm over tensor-parallel shards through CudaBackend::launch, against the CPU
// reference on the whole vocabulary (odd sizes; f32 and bf16).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <functional>

#include "runtime/backends/cuda/cuda_backend.h"
#include "runtime/backends/cuda/nccl_communicator.h"
#include "runtime/collectives/communicator.h"
#include "runtime/tests/cuda/cuda_test_util.h"
#include "runtime/tests/cuda/nccl_test_util.h"

using namespace bmsys::rt;
using namespace bmsys::rt::cudatest;
using namespace bmsys::rt::nccltest;

namespace {

struct Rank {
  int rank = 0;
  std::shared_ptr<CudaBackend> backend;
  std::shared_ptr<Communicator> world, tp;  // tp: the group {0, 1} of the world
};

// body(rank) on two threads, each with a CudaBackend on GPU r, the NCCL world
// communicator and the group of both ranks. Returns each rank's error ("" if none).
std::vector<std::string> run_two(double timeout_s, const std::function<void(Rank&)>& body) {
  return run_two_gpus("nccl-tp-test", timeout_s, [&](int r, std::shared_ptr<CudaBackend> backend,
                                                     std::shared_ptr<Communicator> world) {
    Rank k{r, std::move(backend), std::move(world), nullptr};
    k.tp = k.world->group("tp0", {0, 1});
    EXPECT_EQ(k.tp->rank(), r);
    EXPECT_EQ(k.tp->world_size(), 2);
    body(k);
  });
}

HostTensor upload_download(CudaBackend& b, const std::function<void(void*)>& f, const HostTensor& t) {
  auto m = b.allocate(t.bytes(), "test");
  b.upload(m->data(), t.dtype, t.data.data(), t.dtype, t.numel());
  f(m->data());
  HostTensor out = t;
  b.copy_to_host(out.data.data(), m->data(), out.bytes());
  return out;
}

TEST(Nccl, GroupsShareTheStreamWithTheWorld) {
  BMSYS_SKIP_WITHOUT_TWO_GPUS();
  auto errors = run_two(30, [](Rank& k) {
    CudaBackend& b = *k.backend;
    EXPECT_EQ(k.world->group("alone", {k.rank})->name(), "single");  // one member
    HostTensor x(DType::F32, {1001});
    for (int64_t i = 0; i < x.numel(); ++i) x.as<float>()[i] = static_cast<float>((k.rank + 1) * (i % 7));
    HostTensor got = upload_download(b, [&](void* p) {
      k.tp->all_reduce(p, DType::F32, 1001, ReduceOp::Sum);     // 3 * (i % 7)
      k.world->all_reduce(p, DType::F32, 1001, ReduceOp::Sum);  // 6 * (i % 7)
      k.tp->all_reduce(p, DType::F32, 1001, ReduceOp::Max);     // unchanged
    }, x);
    for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(got.as<float>()[i], 6.0f * static_cast<float>(i % 7)) << i;
  });
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
}

TEST(Nccl, GroupMemberMissingIsNamedWithinTheTimeout) {
  BMSYS_SKIP_WITHOUT_TWO_GPUS();
  auto t0 = std::chrono::steady_clock::now();
  auto errors = run_two(3, [](Rank& k) {
    CudaBackend& b = *k.backend;
    HostTensor x(DType::F32, {64});
    upload_download(b, [&](void* p) {
      k.tp->all_reduce(p, DType::F32, 64, ReduceOp::Sum);  // both
      if (k.rank == 1) return;                             // rank 1 skips the next one
      k.tp->all_reduce(p, DType::F32, 64, ReduceOp::Sum);
    }, x);
  });
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(errors[0].find("rank 0 (group 'tp0', rank 0 of 2): collective all_reduce"), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("rank 1 did not reach it"), std::string::npos) << errors[0];
  EXPECT_EQ(errors[1], "");
  EXPECT_LT(s, 30.0);
}

// Columns [c0, c0+w) of the rows of x [rows, V].
HostTensor columns(const HostTensor& x, int64_t c0, int64_t w) {
  const int64_t V = x.shape.back(), rows = x.numel() / V;
  Shape s = x.shape;
  s.back() = w;
  HostTensor out(x.dtype, s);
  const size_t es = dtype_size(x.dtype);
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(out.data.data() + r * w * es, x.data.data() + (r * V + c0) * es, static_cast<size_t>(w) * es);
  return out;
}

// Rows [r0, r0+n) of x [R, H].
HostTensor rows(const HostTensor& x, int64_t r0, int64_t n) {
  const int64_t H = x.shape.back();
  HostTensor out(x.dtype, {n, H});
  const size_t es = dtype_size(x.dtype);
  std::memcpy(out.data.data(), x.data.data() + r0 * H * es, static_cast<size_t>(n * H) * es);
  return out;
}

HostTensor convert_to(const HostTensor& t, DType d) {
  if (t.dtype == d) return t;
  HostTensor o(d, t.shape);
  convert(o.data.data(), d, t.data.data(), t.dtype, t.numel());
  return o;
}

TEST(Nccl, VocabParallelKernelsMatchTheCpuReference) {
  BMSYS_SKIP_WITHOUT_TWO_GPUS();
  const int64_t B = 2, S = 5, Vl = 37, V = 2 * Vl, H = 13;
  for (DType t : {DType::F32, DType::BF16}) {
    std::mt19937 rng(11);
    // The same values on both ranks (made here, before the threads); the CPU computes
    // on the dtype's values as f32, over the whole vocabulary.
    HostTensor logits = as_f32(random_tensor(t, {B, S, V}, rng, -4.f, 4.f));
    HostTensor labels = ids_tensor({B, S}, V, rng), ids = ids_tensor({B, S}, V, rng);
    HostTensor table = as_f32(random_tensor(t, {V, H}, rng)), dy = as_f32(random_tensor(t, {B, S, H}, rng));
    Attrs shift = attrs({{"shift", int_attr(1)}}), none;
    CpuBackend cpu;
    auto ref = run_calls(cpu, {logits, labels, HostTensor(DType::F32, {}), HostTensor(DType::F32, {B, S, V}), ids,
                               table, HostTensor(DType::F32, {B, S, H}), dy, HostTensor(DType::F32, {V, H})},
                         {{KernelId::CrossEntropy, shift, {0, 1}, {2}},
                          {KernelId::CrossEntropyGrad, shift, {0, 1}, {3}},
                          {KernelId::Embedding, none, {4, 5}, {6}},
                          {KernelId::EmbeddingGrad, none, {4, 7}, {8}}},
                         LaunchContext{});
    auto errors = run_two(60, [&](Rank& k) {
      const int r = k.rank;
      Attrs vp = attrs({{"vocab_shards", int_attr(2)}});
      Attrs vps = attrs({{"vocab_shards", int_attr(2)}, {"shift", int_attr(1)}});
      Attrs tpr = attrs({{"ranks", int_attr(2)}});
      LaunchContext ctx;
      SingleRankCommunicator one;
      ctx.comm = &one;
      ctx.tp_comm = k.tp.get();
      ctx.tp_rank = r;
      ctx.tp_size = 2;
      auto got = run_calls(*k.backend,
                           {convert_to(columns(logits, r * Vl, Vl), t), labels, poison(DType::F32, {}),
                            poison(t, {B, S, Vl}), ids, convert_to(rows(table, r * Vl, Vl), t), poison(t, {B, S, H}),
                            poison(t, {B, S, H}), convert_to(dy, t), poison(t, {Vl, H})},
                           {{KernelId::CrossEntropy, vps, {0, 1}, {2}},
                            {KernelId::CrossEntropyGrad, vps, {0, 1}, {3}},
                            {KernelId::Embedding, vp, {4, 5}, {6}},
                            {KernelId::TpAllReduce, tpr, {6}, {7}},
                            {KernelId::EmbeddingGrad, vp, {4, 8}, {9}}},
                           ctx);
      const double tol = tol_for(t);
      EXPECT_LT(rel_err(got[2], ref[2]), t == DType::F32 ? 1e-6 : 1e-3) << dtype_name(t) << " cross_entropy rank " << r;
      EXPECT_LT(rel_err(got[3], columns(ref[3], r * Vl, Vl)), tol) << dtype_name(t) << " cross_entropy_grad rank " << r;
      EXPECT_LT(rel_err(got[7], ref[6]), tol) << dtype_name(t) << " embedding + tp_all_reduce rank " << r;
      EXPECT_LT(rel_err(got[9], rows(ref[8], r * Vl, Vl)), tol) << dtype_name(t) << " embedding_grad rank " << r;
    });
    EXPECT_EQ(errors[0], "") << dtype_name(t);
    EXPECT_EQ(errors[1], "") << dtype_name(t);
  }
}

TEST(Nccl, GlobalNormOverTensorParallelShards) {
  BMSYS_SKIP_WITHOUT_TWO_GPUS();
  std::mt19937 rng(5);
  // Inputs 0 and 2 sharded (each rank its own values), input 1 replicated.
  HostTensor a0 = random_tensor(DType::F32, {7}, rng), a1 = random_tensor(DType::F32, {7}, rng);
  HostTensor c = random_tensor(DType::F32, {5}, rng);
  HostTensor d0 = random_tensor(DType::F32, {3, 3}, rng), d1 = random_tensor(DType::F32, {3, 3}, rng);
  double ss = 0;
  for (const HostTensor* x : {&a0, &a1, &c, &d0, &d1})
    for (float v : x->to_f32()) ss += static_cast<double>(v) * v;
  const double want = std::sqrt(ss);
  auto errors = run_two(60, [&](Rank& k) {
    AttrValue flags;
    flags.type = AttrType::Ints;
    flags.ints = {1, 0, 1};
    Attrs a = attrs({{"tp_sharded", flags}});
    LaunchContext ctx;
    SingleRankCommunicator one;
    ctx.comm = &one;
    ctx.tp_comm = k.tp.get();
    ctx.tp_rank = k.rank;
    ctx.tp_size = 2;
    auto got = run_calls(*k.backend, {k.rank ? a1 : a0, c, k.rank ? d1 : d0, poison(DType::F32, {})},
                         {{KernelId::GlobalNorm, a, {0, 1, 2}, {3}}}, ctx);
    EXPECT_NEAR(got[3].as<float>()[0], want, 1e-5 * want) << "rank " << k.rank;
  });
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
}

}  // namespace
