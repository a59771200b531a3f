// The NCCL communicator and the CUDA backend's collective kernels (docs/distributed.md),
// with two ranks as threads of this process, one GPU each (skipped with fewer than two
// GPUs): the Communicator methods against host-computed results (odd sizes: padding),
// the collective kernels through CudaBackend::launch interleaved with compute that reads
// their outputs and overwrites their inputs (the event ordering of collectives.h), and
// a rank that never enters a collective: the other fails within the timeout naming it.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <functional>

#include "runtime/backends/cuda/cuda_backend.h"
#include "runtime/backends/cuda/nccl_communicator.h"
#include "runtime/collectives/communicator.h"
#include "runtime/core/error.h"
#include "runtime/core/kernels.h"
#include "runtime/tests/cuda/nccl_test_util.h"

using namespace bmsys::rt;
using namespace bmsys::rt::nccltest;

namespace {

struct Rank {
  int rank = 0;
  std::shared_ptr<CudaBackend> backend;
  std::shared_ptr<Communicator> comm;
};

// Runs body(rank) on two threads, each with a CudaBackend on GPU r and the NCCL
// communicator it makes. Returns each rank's error ("" if none).
std::vector<std::string> run_two(double timeout_s, const std::function<void(Rank&)>& body) {
  return run_two_gpus("nccl-test", timeout_s, [&](int r, std::shared_ptr<CudaBackend> backend,
                                                  std::shared_ptr<Communicator> world) {
    Rank k{r, std::move(backend), std::move(world)};
    EXPECT_EQ(k.comm->name(), "nccl");
    body(k);
  });
}

TEST(Nccl, CommunicatorMethods) {
  BMSYS_SKIP_WITHOUT_TWO_GPUS();
  auto errors = run_two(30, [](Rank& k) {
    CudaBackend& b = *k.backend;
    Communicator& c = *k.comm;
    const int r = k.rank;
    for (DType t : {DType::F32, DType::BF16}) {
      // all_reduce sum and mean (in place).
      const int64_t n = 1001;
      auto x = upload(b, values(r, n), t);
      c.all_reduce(x->data(), t, n, ReduceOp::Sum);
      auto s = download(b, x->data(), n, t);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(s[i], values(0, n)[i] + values(1, n)[i]) << dtype_name(t) << " " << i;
      c.all_reduce(x->data(), t, n, ReduceOp::Mean);
      s = download(b, x->data(), n, t);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(s[i], values(0, n)[i] + values(1, n)[i]) << i;
    }
    // reduce_scatter of an odd count: shards of S = 4, the padding zero.
    const int64_t n = 7, S = 4;
    auto x = upload(b, values(r, n));
    auto shard = b.allocate(S * 4, "shard");
    c.reduce_scatter(x->data(), DType::F32, n, shard->data(), ReduceOp::Mean);
    auto got = download(b, shard->data(), S);
    for (int64_t i = 0; i < S; ++i) {
      int64_t g = r * S + i;
      float want = g < n ? (values(0, n)[g] + values(1, n)[g]) / 2 : 0.0f;
      EXPECT_EQ(got[i], want) << "rank " << r << " shard element " << i;
    }
    // all_gather back: the padding dropped.
    auto full = b.allocate(n * 4, "full");
    c.all_gather(shard->data(), DType::F32, full->data(), n);
    got = download(b, full->data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(got[i], (values(0, n)[i] + values(1, n)[i]) / 2) << i;
    // broadcast from rank 1, barrier, host f64 all-reduce.
    auto y = upload(b, values(r, 5));
    c.broadcast(y->data(), DType::F32, 5, 1);
    got = download(b, y->data(), 5);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(got[i], values(1, 5)[i]);
    c.barrier();
    double d[2] = {1.5 + r, 1e-12 * (r + 1)};
    c.all_reduce_host_f64(d, 2);
    EXPECT_EQ(d[0], 4.0);
    EXPECT_DOUBLE_EQ(d[1], 3e-12);
  });
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
}

KernelLaunch make(KernelId k, const Attrs* a, std::vector<TensorView> in, TensorView out, Communicator* c, int r) {
  KernelLaunch l;
  l.kernel = k;
  l.attrs = a;
  l.inputs = std::move(in);
  l.outputs = {out};
  l.ctx.comm = c;
  l.ctx.rank = r;
  l.ctx.world_size = 2;
  return l;
}

TEST(Nccl, CollectiveKernelsOrderedAgainstCompute) {
  BMSYS_SKIP_WITHOUT_TWO_GPUS();
  auto errors = run_two(30, [](Rank& k) {
    CudaBackend& b = *k.backend;
    const int r = k.rank;
    const int64_t n = 1 << 20, S = n / 2;  // large enough that the collectives take a while
    Attrs mean, ranks;
    AttrValue two, m;
    two.ints = {2};
    m.type = AttrType::String;
    m.str = "mean";
    ranks.set("ranks", two);
    mean.set("ranks", two);
    mean.set("reduction", m);
    Attrs none;
    auto g = upload(b, values(r, n));
    auto ones = upload(b, std::vector<float>(static_cast<size_t>(n), 1.0f));
    auto shard = b.allocate(S * 4, "shard");
    auto full = b.allocate(n * 4, "full");
    auto sum = b.allocate(n * 4, "sum");
    auto param = upload(b, values(r, n));
    auto view = [](const std::unique_ptr<DeviceMemory>& d, int64_t count) {
      TensorView v;
      v.data = d->data();
      v.shape = {count};
      return v;
    };
    // reduce_scatter(g) -> shard, then compute overwrites g (must wait for the
    // collective), all_gather(shard) -> full, compute reads full (must wait),
    // all_reduce(g) -> sum, sync_param(param): one flush.
    b.launch(make(KernelId::ReduceScatter, &mean, {view(g, n)}, view(shard, S), k.comm.get(), r));
    b.launch(make(KernelId::Add, &none, {view(ones, n), view(ones, n)}, view(g, n), k.comm.get(), r));
    b.launch(make(KernelId::AllGather, &ranks, {view(shard, S)}, view(full, n), k.comm.get(), r));
    b.launch(make(KernelId::Add, &none, {view(full, n), view(ones, n)}, view(full, n), k.comm.get(), r));
    b.launch(make(KernelId::AllReduce, &mean, {view(g, n)}, view(sum, n), k.comm.get(), r));
    b.launch(make(KernelId::SyncParam, &ranks, {view(param, n)}, view(param, n), k.comm.get(), r));
    b.synchronize();
    auto v0 = values(0, n), v1 = values(1, n);
    auto got = download(b, full->data(), n);
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(got[i], (v0[i] + v1[i]) / 2 + 1.0f) << "all_gather after reduce_scatter, element " << i;
    got = download(b, sum->data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], 2.0f) << "all_reduce of the overwritten input, element " << i;
    got = download(b, param->data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], (i < S ? v0 : v1)[i]) << "sync_param, element " << i;
  });
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
}

TEST(Nccl, MissingRankFailsWithinTheTimeoutNamingIt) {
  BMSYS_SKIP_WITHOUT_TWO_GPUS();
  auto t0 = std::chrono::steady_clock::now();
  auto errors = run_two(3, [](Rank& k) {
    CudaBackend& b = *k.backend;
    auto x = upload(b, values(k.rank, 64));
    k.comm->all_reduce(x->data(), DType::F32, 64, ReduceOp::Sum);  // both
    if (k.rank == 1) return;                                       // rank 1 skips the next one
    k.comm->all_reduce(x->data(), DType::F32, 64, ReduceOp::Sum);
  });
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(errors[0].find("rank 0: collective all_reduce (#2 of this run) timed out"), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("rank 1 did not reach it"), std::string::npos) << errors[0];
  EXPECT_EQ(errors[1], "");
  EXPECT_LT(s, 30.0);
}

}  // namespace
