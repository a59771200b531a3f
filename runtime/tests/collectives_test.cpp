// Collectives (docs/distributed.md): the Gloo communicator between ranks run as
// threads of this process (file and TCP rendezvous), shard layout and padding,
// timeouts that name the rank and collective, and the CPU collective kernels and
// ZeRO optimizer updates through the backend with a communicator.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <thread>

#include "runtime/backends/cpu/cpu_backend.h"
#include "runtime/backends/cpu/cpu_kernels.h"
#include "runtime/collectives/communicator.h"
#include "runtime/collectives/gloo_communicator.h"
#include "runtime/core/error.h"
#include "runtime/core/kernels.h"
#include "gloo_ranks.h"

using namespace bmsys::rt;
using namespace bmsys::rt::test;

namespace {

std::string fresh_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  return d.string();
}

// Runs body(rank, comm) on `world` threads connected through a file store, or a TCP
// store served by rank 0 when tcp_port is set.
void run_ranks(int world, double timeout_s, const std::function<void(int, Communicator&)>& body,
               const std::string& tcp_addr = "", int tcp_port = 0) {
  StoreFor tcp;
  if (tcp_port)
    tcp = [&](int r, const std::string&) {
      return std::shared_ptr<RendezvousStore>(make_tcp_store(
          tcp_addr, tcp_port, r == 0, std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000))));
    };
  run_gloo_ranks(world, timeout_s, [&](int r, std::shared_ptr<Communicator> c) { body(r, *c); }, tcp);
}

TEST(Collectives, ShardSize) {
  EXPECT_EQ(shard_size(10, 1), 10);
  EXPECT_EQ(shard_size(10, 2), 5);
  EXPECT_EQ(shard_size(7, 3), 3);
  EXPECT_EQ(shard_size(1, 4), 1);
  EXPECT_EQ(reduce_op_from_name("mean"), ReduceOp::Mean);
  EXPECT_THROW(reduce_op_from_name("max"), Error);
}

TEST(Collectives, SingleRankIsACopy) {
  SingleRankCommunicator c;
  std::vector<float> in = {1, 2, 3}, out(3);
  c.reduce_scatter(in.data(), DType::F32, 3, out.data(), ReduceOp::Mean);
  EXPECT_EQ(out, in);
  std::vector<float> full(3);
  c.all_gather(out.data(), DType::F32, full.data(), 3);
  EXPECT_EQ(full, in);
}

TEST(Collectives, GlooThreeRanksFileStore) {
  // n = 7 over 3 ranks: shards of 3, the last one padded with 2 zeros.
  run_ranks(3, 20, [](int r, Communicator& c) {
    ASSERT_EQ(c.rank(), r);
    ASSERT_EQ(c.world_size(), 3);
    std::vector<float> x(7);
    for (int i = 0; i < 7; ++i) x[static_cast<size_t>(i)] = static_cast<float>((r + 1) * (i + 1));
    std::vector<float> sum = x;
    c.all_reduce(sum.data(), DType::F32, 7, ReduceOp::Sum);
    for (int i = 0; i < 7; ++i) EXPECT_EQ(sum[static_cast<size_t>(i)], 6.0f * (i + 1));
    std::vector<float> mean = x;
    c.all_reduce(mean.data(), DType::F32, 7, ReduceOp::Mean);
    for (int i = 0; i < 7; ++i) EXPECT_FLOAT_EQ(mean[static_cast<size_t>(i)], 2.0f * (i + 1));

    std::vector<float> shard(3, -1.0f);
    c.reduce_scatter(x.data(), DType::F32, 7, shard.data(), ReduceOp::Sum);
    for (int j = 0; j < 3; ++j) {
      int i = r * 3 + j;
      EXPECT_EQ(shard[static_cast<size_t>(j)], i < 7 ? 6.0f * (i + 1) : 0.0f) << "rank " << r << " j " << j;
    }
    std::vector<float> full(7, -1.0f);
    c.all_gather(shard.data(), DType::F32, full.data(), 7);
    EXPECT_EQ(full, sum);

    double d = r + 0.5;
    c.all_reduce_host_f64(&d, 1);
    EXPECT_DOUBLE_EQ(d, 4.5);

    std::vector<float> b(2, static_cast<float>(r));
    c.broadcast(b.data(), DType::F32, 2, 2);
    EXPECT_EQ(b, std::vector<float>({2.0f, 2.0f}));
    c.barrier();
  });
}

TEST(Collectives, GlooTcpStore) {
  // A port the kernel picks, released for the store to take.
  int port = 0;
  {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    port = ntohs(sa.sin_port);
    ::close(fd);
  }
  run_ranks(
      2, 20,
      [](int r, Communicator& c) {
        float v = static_cast<float>(r + 1);
        c.all_reduce(&v, DType::F32, 1, ReduceOp::Sum);
        EXPECT_EQ(v, 3.0f);
      },
      "127.0.0.1", port);
}

TEST(Collectives, TimeoutNamesRankAndCollective) {
  std::atomic<bool> done{false};
  std::string error;
  run_ranks(2, 1.0, [&](int r, Communicator& c) {
    if (r == 1) {  // never joins the all_reduce, stays connected until rank 0 gave up
      while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return;
    }
    float v = 1;
    auto t0 = std::chrono::steady_clock::now();
    try {
      c.all_reduce(&v, DType::F32, 1, ReduceOp::Sum);
    } catch (const Error& e) {
      error = e.what();
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(s, 10.0);
    done = true;
  });
  EXPECT_NE(error.find("rank 0: collective all_reduce timed out after"), std::string::npos) << error;
  EXPECT_NE(error.find("a peer may have died"), std::string::npos) << error;
}

TEST(Collectives, RendezvousTimesOutWhenARankIsMissing) {
  std::string dir = fresh_dir("bmsys-coll-missing");
  DistributedEnv env;
  env.rank = 0;
  env.world_size = 2;
  env.timeout_s = 0.5;
  std::shared_ptr<RendezvousStore> store(make_file_store(dir));
  try {
    make_gloo_communicator(env, store);
    FAIL() << "connected without rank 1";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 0: connecting 2 ranks"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

// A store through which one rank reads a group's rendezvous keys late, so that it
// connects its pairs of the group after the other rank has connected its own.
class LateGroupReads final : public RendezvousStore {
 public:
  LateGroupReads(std::unique_ptr<RendezvousStore> s, std::chrono::milliseconds delay)
      : s_(std::move(s)), delay_(delay) {}
  void set(const std::string& key, const std::vector<char>& value) override { s_->set(key, value); }
  bool check(const std::string& key) override { return s_->check(key); }
  std::vector<char> get(const std::string& key, std::chrono::milliseconds timeout) override {
    if (key.rfind("group/", 0) == 0) std::this_thread::sleep_for(delay_);
    return s_->get(key, timeout);
  }

 private:
  std::unique_ptr<RendezvousStore> s_;
  std::chrono::milliseconds delay_;
};

// A group is connected on every member when group() returns: a rank that drops its
// group at once (and closes its sockets) must not fail a member still connecting. Gloo's
// connecting side alone would return as soon as it has sent its sequence number (the
// CI failure of PipelineMemory.EachRankHoldsOnlyItsStagesMemory). Which side of the pair
// connects depends on the ports: four rounds (without the barrier most rounds fail).
TEST(Collectives, GroupIsConnectedOnEveryMemberWhenItReturns) {
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    run_gloo_ranks(
        2, 10,
        [](int, std::shared_ptr<Communicator> world) {
          auto group = world->group("g", {0, 1});
          EXPECT_EQ(group->world_size(), 2);
        },
        [](int r, const std::string& dir) -> std::shared_ptr<RendezvousStore> {
          if (r == 1) return std::make_shared<LateGroupReads>(make_file_store(dir), std::chrono::milliseconds(100));
          return make_file_store(dir);
        });
  }
}

// --- Kernels through the CPU backend ----------------------------------------------

TensorView view(std::vector<float>& v, Shape s) { return TensorView{v.data(), DType::F32, std::move(s)}; }

void launch(CpuBackend& be, Communicator& c, KernelId k, const Attrs& attrs, std::vector<TensorView> in,
            std::vector<TensorView> out, int64_t step = 1) {
  KernelLaunch l;
  l.kernel = k;
  l.attrs = &attrs;
  l.inputs = std::move(in);
  l.outputs = std::move(out);
  l.ctx.step = step;
  l.ctx.comm = &c;
  l.ctx.rank = c.rank();
  l.ctx.world_size = c.world_size();
  check_launch(l);
  be.launch(l);
}

TEST(CollectiveKernels, ZeroAdamWSyncParamAndNormOnTwoRanks) {
  // A param of n = 5 over 2 ranks (S = 3): the ZeRO-1 update of each rank's slice
  // followed by sync_param equals the full update; global_norm over shards equals
  // the full norm; reduce_scatter + all_gather of a mean gradient round-trips.
  const int64_t n = 5, S = 3;
  std::vector<float> p0 = {0.5f, -1.0f, 2.0f, 0.25f, -0.75f};
  std::vector<float> g_full = {0.1f, -0.2f, 0.3f, -0.4f, 0.5f};
  // Reference: the plain kernel on the whole param.
  std::vector<float> ref = p0, m(n, 0), v(n, 0);
  cpu::AdamWParams ap;
  ap.lr = 1e-2;
  ap.beta1 = 0.9;
  ap.beta2 = 0.95;
  ap.eps = 1e-8;
  ap.weight_decay = 0.1;
  ap.step = 1;
  double ss = 0;
  for (float g : g_full) ss += static_cast<double>(g) * g;
  ap.clip = cpu::clip_coefficient(0.5, std::sqrt(ss));
  cpu::adamw(ref.data(), g_full.data(), m.data(), v.data(), n, ap);

  run_ranks(2, 20, [&](int r, Communicator& c) {
    CpuBackend be;
    // Both ranks computed the same gradient: the mean equals it.
    std::vector<float> grad = g_full, gshard(S, -1), norm(1, 0);
    Attrs rs;
    rs.set("ranks", int_attr(2));
    rs.set("reduction", str_attr("mean"));
    launch(be, c, KernelId::ReduceScatter, rs, {view(grad, {n})}, {view(gshard, {S})});
    for (int64_t j = 0; j < S; ++j)
      EXPECT_FLOAT_EQ(gshard[static_cast<size_t>(j)], r * S + j < n ? g_full[static_cast<size_t>(r * S + j)] : 0.0f);
    Attrs gn;
    gn.set("ranks", int_attr(2));
    launch(be, c, KernelId::GlobalNorm, gn, {view(gshard, {S})}, {view(norm, {})});
    EXPECT_NEAR(norm[0], std::sqrt(ss), 1e-6);

    std::vector<float> param = p0, ms(S, 0), vs(S, 0);
    Attrs ad;
    ad.set("lr", float_attr(1e-2));
    ad.set("beta1", float_attr(0.9));
    ad.set("beta2", float_attr(0.95));
    ad.set("eps", float_attr(1e-8));
    ad.set("weight_decay", float_attr(0.1));
    ad.set("max_norm", float_attr(0.5));
    ad.set("zero_ranks", int_attr(2));
    launch(be, c, KernelId::AdamW, ad, {view(param, {n}), view(gshard, {S}), view(ms, {S}), view(vs, {S}), view(norm, {})},
           {view(param, {n}), view(ms, {S}), view(vs, {S})});
    // Only this rank's slice moved.
    for (int64_t i = 0; i < n; ++i) {
      bool mine = i >= r * S && i < (r + 1) * S;
      if (!mine) {
        EXPECT_EQ(param[static_cast<size_t>(i)], p0[static_cast<size_t>(i)]) << i;
      }
    }
    Attrs sp;
    sp.set("ranks", int_attr(2));
    launch(be, c, KernelId::SyncParam, sp, {view(param, {n})}, {view(param, {n})});
    for (int64_t i = 0; i < n; ++i) EXPECT_FLOAT_EQ(param[static_cast<size_t>(i)], ref[static_cast<size_t>(i)]) << i;

    // ZeRO-3: the param is the shard itself; padding stays zero.
    std::vector<float> pshard(S, 0), ms3(S, 0), vs3(S, 0), full(n, 0);
    for (int64_t j = 0; j < S && r * S + j < n; ++j) pshard[static_cast<size_t>(j)] = p0[static_cast<size_t>(r * S + j)];
    ad.set("param_sharded", int_attr(1));
    launch(be, c, KernelId::AdamW, ad, {view(pshard, {S}), view(gshard, {S}), view(ms3, {S}), view(vs3, {S}), view(norm, {})},
           {view(pshard, {S}), view(ms3, {S}), view(vs3, {S})});
    if (r == 1) {
      EXPECT_EQ(pshard[2], 0.0f);
    }
    Attrs ag;
    ag.set("ranks", int_attr(2));
    launch(be, c, KernelId::AllGather, ag, {view(pshard, {S})}, {view(full, {n})});
    for (int64_t i = 0; i < n; ++i) EXPECT_FLOAT_EQ(full[static_cast<size_t>(i)], ref[static_cast<size_t>(i)]) << i;

    // all_reduce sum of a scalar.
    std::vector<float> x(1, static_cast<float>(r + 1)), y(1, 0);
    Attrs ar;
    ar.set("ranks", int_attr(2));
    ar.set("reduction", str_attr("sum"));
    launch(be, c, KernelId::AllReduce, ar, {view(x, {})}, {view(y, {})});
    EXPECT_EQ(y[0], 3.0f);

    // A launch compiled for another world size is refused.
    Attrs bad;
    bad.set("ranks", int_attr(4));
    bad.set("reduction", str_attr("sum"));
    try {
      launch(be, c, KernelId::AllReduce, bad, {view(x, {})}, {view(y, {})});
      ADD_FAILURE() << "ranks 4 accepted on 2 ranks";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("compiled for 4 data-parallel ranks"), std::string::npos) << e.what();
    }
  });
}

}  // namespace
