// Pipeline parallelism on NCCL (docs/distributed.md "Pipeline parallelism"), with two
// ranks as threads of this process, one GPU each (skipped with fewer than two GPUs):
// - the point-to-point channels: both ranks send a large buffer before receiving the
//   other's (on one NCCL communicator the two sends would wait for each other);
// - the pipeline kernels through CudaBackend::launch, as a 2-stage 1F1B step issues
//   them in one flush: pp_send / pp_recv interleaved with compute that overwrites a
//   send's input and reads a receive's output, and a receive into the buffer a send
//   still reads (their event ordering), pp_mean,
//   global_norm over the stages and pp_broadcast of the last stage's value;
// - a stage that never sends: the other fails within the timeout, naming the
//   transfer, the stage and the rank; also with a receive and a collective of two
//   communicators in flight at once (their aborts must not wait for each other).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <thread>

#include "runtime/backends/cuda/cuda_backend.h"
#include "runtime/backends/cuda/nccl_communicator.h"
#include "runtime/collectives/communicator.h"
#include "runtime/core/error.h"
#include "runtime/core/kernels.h"
#include "runtime/tests/cuda/nccl_test_util.h"

using namespace bmsys::rt;
using namespace bmsys::rt::nccltest;

namespace {

struct Stage {
  int rank = 0;
  std::shared_ptr<CudaBackend> backend;
  std::shared_ptr<Communicator> world;
  std::shared_ptr<Communicator> pp;  // the pipeline group over both ranks
};

// Runs body(stage) on two threads, each with a CudaBackend on GPU r, the NCCL
// communicator it makes and a pipeline group of both ranks with its channels
// connected. Returns each rank's error ("" if none).
std::vector<std::string> run_two_stages(double timeout_s, const std::function<void(Stage&)>& body) {
  return run_two_gpus("nccl-pp-test", timeout_s, [&](int r, std::shared_ptr<CudaBackend> backend,
                                                     std::shared_ptr<Communicator> world) {
    Stage k{r, std::move(backend), std::move(world), nullptr};
    k.pp = k.world->group("pp0", {0, 1});
    EXPECT_EQ(k.pp->rank(), r);
    k.pp->connect_peers({1 - r});
    body(k);
  });
}

TEST(Nccl, PointToPointSendsDoNotWaitForReceives) {
  BMSYS_SKIP_WITHOUT_TWO_GPUS();
  auto errors = run_two_stages(30, [](Stage& k) {
    CudaBackend& b = *k.backend;
    const int r = k.rank, peer = 1 - r;
    const int64_t n = 16 << 20;  // 64 MiB: far beyond NCCL's buffers, a send waits for its receive
    auto mine = upload(b, values(r, n));
    auto theirs = b.allocate(n * 4, "received");
    auto small = upload(b, values(r + 2, 5));
    auto small_in = b.allocate(5 * 4, "received");
    // Both ranks send first, then receive; then a second, small message each way.
    k.pp->send(mine->data(), n * 4, peer, 0);
    k.pp->send(small->data(), 5 * 4, peer, 1);
    k.pp->recv(theirs->data(), n * 4, peer, 0);
    k.pp->recv(small_in->data(), 5 * 4, peer, 1);
    k.pp->wait_sends();
    auto got = download(b, theirs->data(), n);
    auto want = values(peer, n);
    for (int64_t i = 0; i < n; i += 4099) ASSERT_EQ(got[i], want[i]) << "rank " << r << " element " << i;
    ASSERT_EQ(got[n - 1], want[n - 1]);
    got = download(b, small_in->data(), 5);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(got[i], values(peer + 2, 5)[i]);
  });
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
}

TensorView view(const std::unique_ptr<DeviceMemory>& d, Shape shape) {
  TensorView v;
  v.data = d->data();
  v.shape = std::move(shape);
  return v;
}

KernelLaunch make(KernelId k, const Attrs* a, std::vector<TensorView> in, std::vector<TensorView> out, Stage& s) {
  KernelLaunch l;
  l.kernel = k;
  l.attrs = a;
  l.inputs = std::move(in);
  l.outputs = std::move(out);
  l.ctx.pp_comm = s.pp.get();
  l.ctx.pp_rank = s.rank;
  l.ctx.pp_size = 2;
  check_launch(l);
  return l;
}

TEST(Nccl, PipelineKernelsOrderedAgainstCompute) {
  BMSYS_SKIP_WITHOUT_TWO_GPUS();
  auto errors = run_two_stages(30, [](Stage& k) {
    CudaBackend& b = *k.backend;
    const int r = k.rank;
    const int64_t n = 1 << 22;  // large enough that the transfers take a while
    Attrs none, mb0, mb1, mean, norm, bcast;
    for (Attrs* a : {&mb0, &mb1}) {
      a->set("peer", int_attr(1 - r));
      a->set("channel", int_attr(0));
    }
    mb0.set("micro_batch", int_attr(0));
    mb1.set("micro_batch", int_attr(1));
    mean.set("micro_batches", int_attr(2));
    norm.set("pp_stages", int_attr(2));
    norm.set("ranks", int_attr(0));
    bcast.set("root", int_attr(1));
    auto ones = upload(b, std::vector<float>(static_cast<size_t>(n), 1.0f));
    auto x = upload(b, values(r, n));
    auto a = b.allocate(n * 4, "a");
    auto g = b.allocate(n * 4, "g");
    auto h = b.allocate(n * 4, "h");
    auto out = b.allocate(n * 4, "out");
    auto nrm = b.allocate(4, "norm");
    auto loss = b.allocate(4, "loss");
    const Shape N = {n};
    if (r == 0) {
      // F0: a = x + x, sent; F1 overwrites a (waits for the send), sent; B0 receives
      // the gradient g and reads it.
      b.launch(make(KernelId::Add, &none, {view(x, N), view(x, N)}, {view(a, N)}, k));
      b.launch(make(KernelId::PpSend, &mb0, {view(a, N)}, {}, k));
      b.launch(make(KernelId::Add, &none, {view(ones, N), view(ones, N)}, {view(a, N)}, k));
      b.launch(make(KernelId::PpSend, &mb1, {view(a, N)}, {}, k));
      b.launch(make(KernelId::PpRecv, &mb0, {}, {view(g, N)}, k));
      b.launch(make(KernelId::Add, &none, {view(g, N), view(ones, N)}, {view(h, N)}, k));
      b.launch(make(KernelId::PpMean, &mean, {view(h, N)}, {view(out, N)}, k));
      b.launch(make(KernelId::GlobalNorm, &norm, {view(ones, {1024})}, {view(nrm, {})}, k));
      b.launch(make(KernelId::PpBroadcast, &bcast, {}, {view(loss, {})}, k));
    } else {
      // F0 receives, B0 sends g = 3 * h0 back; F1 receives into g, the buffer still
      // being sent (as the memory plan may reuse a send's input): the receive, on the
      // other channel's stream, must wait for the send.
      b.launch(make(KernelId::PpRecv, &mb0, {}, {view(h, N)}, k));
      b.launch(make(KernelId::Add, &none, {view(h, N), view(h, N)}, {view(g, N)}, k));
      b.launch(make(KernelId::Add, &none, {view(g, N), view(h, N)}, {view(g, N)}, k));
      b.launch(make(KernelId::PpSend, &mb0, {view(g, N)}, {}, k));
      b.launch(make(KernelId::PpRecv, &mb1, {}, {view(g, N)}, k));
      b.launch(make(KernelId::Add, &none, {view(g, N), view(ones, N)}, {view(out, N)}, k));
      b.launch(make(KernelId::GlobalNorm, &norm, {view(ones, {3072})}, {view(nrm, {})}, k));
      auto seven = upload(b, {7.0f});
      b.launch(make(KernelId::PpBroadcast, &bcast, {view(seven, {})}, {view(loss, {})}, k));
      b.synchronize();
    }
    b.synchronize();
    auto x0 = values(0, n);
    auto got = download(b, out->data(), n);
    if (r == 0) {
      // out = (3 * 2 x0 + 1) / 2
      for (int64_t i = 0; i < n; i += 1021) ASSERT_EQ(got[i], (6 * x0[i] + 1) / 2) << "element " << i;
    } else {
      // out = (1 + 1) + 1: micro-batch 1's activation
      for (int64_t i = 0; i < n; i += 1021) ASSERT_EQ(got[i], 3.0f) << "element " << i;
    }
    EXPECT_NEAR(download(b, nrm->data(), 1)[0], std::sqrt(4096.0f), 1e-3);
    EXPECT_EQ(download(b, loss->data(), 1)[0], 7.0f);
  });
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
}

TEST(Nccl, MissingStageFailsWithinTheTimeoutNamingIt) {
  BMSYS_SKIP_WITHOUT_TWO_GPUS();
  auto t0 = std::chrono::steady_clock::now();
  auto errors = run_two_stages(3, [](Stage& k) {
    if (k.rank == 1) return;  // stage 1 never sends
    CudaBackend& b = *k.backend;
    Attrs mb;
    mb.set("peer", int_attr(1));
    mb.set("channel", int_attr(0));
    mb.set("micro_batch", int_attr(0));
    auto g = b.allocate(64 * 4, "g");
    b.launch(make(KernelId::PpRecv, &mb, {}, {view(g, {64})}, k));
    b.synchronize();
  });
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(errors[0].find("pp_recv of micro-batch 0 (channel 0) from stage 1"), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("timed out"), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("rank 1 did not reach it"), std::string::npos) << errors[0];
  EXPECT_EQ(errors[1], "");
  EXPECT_LT(s, 30.0);
}

// A stage that never sends nor joins the group's collective, while this one has a
// receive on a channel and a global_norm all-reduce on the pipeline group in flight at
// once: two communicators with kernels waiting for the peer. Aborting them one after
// the other would hang in the first abort (it waits for the GPU, so for the other's
// kernel); all at once, the error comes within the timeout.
TEST(Nccl, HungStageWithTwoCommunicatorsInFlightFailsWithinTheTimeout) {
  BMSYS_SKIP_WITHOUT_TWO_GPUS();
  auto t0 = std::chrono::steady_clock::now();
  std::atomic<bool> done{false};
  auto errors = run_two_stages(3, [&](Stage& k) {
    if (k.rank == 1) {
      // Stage 1 hangs (alive, its communicators intact) until stage 0 has failed.
      for (int i = 0; i < 600 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      return;
    }
    struct Done {
      std::atomic<bool>& d;
      ~Done() { d = true; }
    } signal{done};
    CudaBackend& b = *k.backend;
    Attrs mb, norm;
    mb.set("peer", int_attr(1));
    mb.set("channel", int_attr(0));
    mb.set("micro_batch", int_attr(0));
    norm.set("pp_stages", int_attr(2));
    norm.set("ranks", int_attr(0));
    auto g = b.allocate(64 * 4, "g");
    auto ones = upload(b, std::vector<float>(256, 1.0f));
    auto nrm = b.allocate(4, "norm");
    // Independent buffers: the all-reduce does not wait for the receive.
    b.launch(make(KernelId::PpRecv, &mb, {}, {view(g, {64})}, k));
    b.launch(make(KernelId::GlobalNorm, &norm, {view(ones, {256})}, {view(nrm, {})}, k));
    b.synchronize();
  });
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(errors[0].find("pp_recv of micro-batch 0 (channel 0) from stage 1"), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("rank 1 did not reach it"), std::string::npos) << errors[0];
  EXPECT_EQ(errors[1], "");
  EXPECT_LT(s, 30.0);
}

}  // namespace
