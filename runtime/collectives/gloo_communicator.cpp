#include "runtime/collectives/gloo_communicator.h"

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>
#include <gloo/transport/unbound_buffer.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "runtime/core/error.h"

namespace bmsys::rt {

namespace {

using Clock = std::chrono::steady_clock;

// Our store seen as Gloo's.
class GlooStoreAdapter final : public gloo::rendezvous::Store {
 public:
  // `prefix` keeps the keys of a group's rendezvous apart from the world's.
  GlooStoreAdapter(RendezvousStore& s, std::chrono::milliseconds timeout, std::string prefix = "")
      : s_(s), timeout_(timeout), prefix_(std::move(prefix)) {}
  void set(const std::string& key, const std::vector<char>& data) override { s_.set(prefix_ + key, data); }
  std::vector<char> get(const std::string& key) override { return s_.get(prefix_ + key, timeout_); }
  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override {
    for (const std::string& k : keys) s_.get(prefix_ + k, timeout);
  }

 private:
  RendezvousStore& s_;
  std::chrono::milliseconds timeout_;
  std::string prefix_;
};

template <typename T>
void sum_fn(void* c, const void* a, const void* b, size_t n) {
  T* o = static_cast<T*>(c);
  const T* x = static_cast<const T*>(a);
  const T* y = static_cast<const T*>(b);
  for (size_t i = 0; i < n; ++i) o[i] = x[i] + y[i];
}

template <typename T>
void max_fn(void* c, const void* a, const void* b, size_t n) {
  T* o = static_cast<T*>(c);
  const T* x = static_cast<const T*>(a);
  const T* y = static_cast<const T*>(b);
  for (size_t i = 0; i < n; ++i) o[i] = x[i] > y[i] ? x[i] : y[i];
}

class GlooCommunicator final : public Communicator {
 public:
  GlooCommunicator(const DistributedEnv& env, std::shared_ptr<RendezvousStore> store)
      : env_(env), store_(std::move(store)),
        timeout_(std::chrono::milliseconds(static_cast<int64_t>(env.timeout_s * 1000))),
        label_(fmt::format("rank {}", env.rank)) {
    gloo::transport::tcp::attr attr;
    const char* host = std::getenv("BMSYS_GLOO_HOSTNAME");
    attr.hostname = host && *host ? host : "127.0.0.1";
    try {
      dev_ = gloo::transport::tcp::CreateDevice(attr);
    } catch (const std::exception& e) {
      fail("rank {}: creating the gloo TCP device on {}: {}", env.rank, attr.hostname, e.what());
    }
    connect("", fmt::format("{} ranks", env.world_size));
  }

  // A group: `env` holds the group rank and size; `label` names this rank in
  // messages ("rank 3 (tensor-parallel group 1, rank 1 of 2)").
  GlooCommunicator(const DistributedEnv& env, std::shared_ptr<RendezvousStore> store,
                   std::shared_ptr<gloo::transport::Device> dev, const std::string& prefix, std::string label)
      : env_(env), store_(std::move(store)),
        timeout_(std::chrono::milliseconds(static_cast<int64_t>(env.timeout_s * 1000))),
        label_(std::move(label)), dev_(std::move(dev)) {
    connect(prefix, fmt::format("the {} ranks of group '{}'", env.world_size, prefix));
  }

  std::shared_ptr<Communicator> group(const std::string& name, const std::vector<int>& members) override {
    int index = -1;
    for (size_t i = 0; i < members.size(); ++i) {
      if (members[i] < 0 || members[i] >= env_.world_size)
        fail("{}: group '{}' names rank {}, outside the world of {}", label_, name, members[i], env_.world_size);
      if (members[i] == env_.rank) index = static_cast<int>(i);
    }
    if (index < 0) fail("{}: group '{}' does not contain this rank", label_, name);
    if (members.size() == 1) return std::make_shared<SingleRankCommunicator>();
    DistributedEnv g = env_;
    g.rank = index;
    g.world_size = static_cast<int>(members.size());
    return std::make_shared<GlooCommunicator>(
        g, store_, dev_, "group/" + name + "/",
        fmt::format("rank {} ({} rank {} of {})", env_.rank, name, index, members.size()));
  }

  void connect(const std::string& prefix, const std::string& what) {
    try {
      auto ctx = std::make_shared<gloo::rendezvous::Context>(env_.rank, env_.world_size);
      ctx->setTimeout(timeout_);
      GlooStoreAdapter adapter(*store_, timeout_, prefix);
      ctx->connectFullMesh(adapter, dev_);
      // Gloo's connecting side counts a pair as connected once it has sent its
      // sequence number, before the listening side has taken the socket. A rank
      // that returned here, finished its work and closed its sockets could then
      // fail a peer still connecting ("Connection closed by peer"). The barrier
      // makes connected mean connected on every rank of the group. Tag 0: the
      // collectives count from 1.
      gloo::BarrierOptions b(ctx);
      b.setTag(0);
      b.setTimeout(timeout_);
      gloo::barrier(b);
      ctx_ = ctx;
    } catch (const Error& e) {
      fail("{}: connecting {} (gloo): {}", label_, what, e.what());
    } catch (const std::exception& e) {
      fail("{}: connecting {} (gloo) failed within {:.0f}s: {}", label_, what, env_.timeout_s, e.what());
    }
  }

  int rank() const override { return env_.rank; }
  int world_size() const override { return env_.world_size; }
  std::string name() const override { return "gloo"; }

  void all_reduce(void* data, DType dtype, int64_t count, ReduceOp op) override {
    if (count <= 0) return;
    guard("all_reduce", [&] {
      if (op == ReduceOp::Max) {
        if (dtype == DType::F32)
          reduce_typed<float>(static_cast<float*>(data), count, &max_fn<float>);
        else if (dtype == DType::F64)
          reduce_typed<double>(static_cast<double*>(data), count, &max_fn<double>);
        else
          fail("gloo all_reduce: dtype {} is not supported (f32, f64)", dtype_name(dtype));
        return;
      }
      if (dtype == DType::F32) {
        reduce_typed<float>(static_cast<float*>(data), count);
        if (op == ReduceOp::Mean) {
          float* f = static_cast<float*>(data);
          for (int64_t i = 0; i < count; ++i) f[i] /= static_cast<float>(env_.world_size);
        }
      } else if (dtype == DType::F64) {
        reduce_typed<double>(static_cast<double*>(data), count);
        if (op == ReduceOp::Mean) {
          double* f = static_cast<double*>(data);
          for (int64_t i = 0; i < count; ++i) f[i] /= env_.world_size;
        }
      } else {
        fail("gloo all_reduce: dtype {} is not supported (f32, f64)", dtype_name(dtype));
      }
    });
  }

  void all_reduce_host_f64(double* data, int64_t count) override {
    all_reduce(data, DType::F64, count, ReduceOp::Sum);
  }

  void reduce_scatter(const void* in, DType dtype, int64_t count, void* shard, ReduceOp op) override {
    // An all-reduce of the zero-padded tensor, of which this rank keeps its shard:
    // simple, and every rank's shard is bit-identical to what the others would compute.
    const int64_t S = shard_size(count, env_.world_size);
    const size_t es = dtype_size(dtype);
    std::vector<uint8_t> tmp(static_cast<size_t>(S * env_.world_size) * es, 0);
    std::memcpy(tmp.data(), in, static_cast<size_t>(count) * es);
    all_reduce_named("reduce_scatter", tmp.data(), dtype, S * env_.world_size, op);
    std::memcpy(shard, tmp.data() + static_cast<size_t>(env_.rank * S) * es, static_cast<size_t>(S) * es);
  }

  void all_gather(const void* shard, DType dtype, void* out, int64_t count) override {
    const int64_t S = shard_size(count, env_.world_size);
    const size_t es = dtype_size(dtype);
    std::vector<uint8_t> in(static_cast<size_t>(S) * es), all(static_cast<size_t>(S * env_.world_size) * es);
    std::memcpy(in.data(), shard, in.size());
    guard("all_gather", [&] {
      gloo::AllgatherOptions o(ctx_);
      o.setInput(in.data(), in.size());
      o.setOutput(all.data(), all.size());
      o.setTag(next_tag());
      o.setTimeout(timeout_);
      gloo::allgather(o);
    });
    std::memcpy(out, all.data(), static_cast<size_t>(count) * es);
  }

  void broadcast(void* data, DType dtype, int64_t count, int root) override {
    guard("broadcast", [&] {
      gloo::BroadcastOptions o(ctx_);
      o.setOutput(static_cast<uint8_t*>(data), static_cast<size_t>(count) * dtype_size(dtype));
      o.setRoot(root);
      o.setTag(next_tag());
      o.setTimeout(timeout_);
      gloo::broadcast(o);
    });
  }

  // Pipeline parallelism: point-to-point through Gloo's unbound buffers, in a slot
  // space of its own (Gloo's collectives build theirs from small prefixes).
  void send(const void* data, size_t bytes, int peer, uint64_t tag) override {
    if (bytes == 0) return;
    guard_p2p("send to", peer, [&] {
      auto p = std::make_unique<PendingSend>();
      p->data.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + bytes);
      p->peer = peer;
      p->buf = ctx_->createUnboundBuffer(p->data.data(), bytes);
      p->buf->send(peer, p2p_slot(tag));
      pending_.push_back(std::move(p));
    });
  }

  void recv(void* data, size_t bytes, int peer, uint64_t tag) override {
    if (bytes == 0) return;
    guard_p2p("receive from", peer, [&] {
      auto buf = ctx_->createUnboundBuffer(data, bytes);
      buf->recv(peer, p2p_slot(tag));
      if (!buf->waitRecv(timeout_)) fail("the receive was aborted");
    });
  }

  void wait_sends() override {
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& p : pending)
      guard_p2p("send to", p->peer, [&] {
        if (!p->buf->waitSend(timeout_)) fail("the send was aborted");
      });
  }

  void barrier() override {
    guard("barrier", [&] {
      gloo::BarrierOptions o(ctx_);
      o.setTag(next_tag());
      o.setTimeout(timeout_);
      gloo::barrier(o);
    });
  }

 private:
  uint32_t next_tag() { return tag_++; }

  struct PendingSend {
    std::vector<uint8_t> data;  // a copy: the sender's buffer may be reused at once
    std::unique_ptr<gloo::transport::UnboundBuffer> buf;
    int peer = -1;
  };
  static uint64_t p2p_slot(uint64_t tag) { return (uint64_t{0xb5} << 56) | (tag & ((uint64_t{1} << 56) - 1)); }

  template <typename F>
  void guard_p2p(const char* what, int peer, F&& f) {
    std::string saved = current_;
    current_ = fmt::format("{} rank {}", what, peer);
    try {
      guard("p2p", f);
    } catch (...) {
      current_ = saved;
      throw;
    }
    current_ = saved;
  }

  template <typename T>
  void reduce_typed(T* data, int64_t count, void (*fn)(void*, const void*, const void*, size_t) = &sum_fn<T>) {
    gloo::AllreduceOptions o(ctx_);
    o.setOutput(data, static_cast<size_t>(count));
    o.setReduceFunction(gloo::AllreduceOptions::Func(fn));
    o.setTag(next_tag());
    o.setTimeout(timeout_);
    gloo::allreduce(o);
  }

  void all_reduce_named(const char* what, void* data, DType dtype, int64_t count, ReduceOp op) {
    std::string saved = current_;
    current_ = what;
    try {
      all_reduce(data, dtype, count, op);
    } catch (...) {
      current_ = saved;
      throw;
    }
    current_ = saved;
  }

  template <typename F>
  void guard(const char* what, F&& f) {
    if (!ctx_) fail("{}: the communicator is not connected", label_);
    const char* name = current_.empty() ? what : current_.c_str();
    auto t0 = Clock::now();
    try {
      f();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      double s = std::chrono::duration<double>(Clock::now() - t0).count();
      bool timed_out = s + 0.05 >= env_.timeout_s;
      fail("{}: collective {} {} after {:.1f}s (timeout {:g}s; a peer may have died): {}", label_, name,
           timed_out ? "timed out" : "failed", s, env_.timeout_s, e.what());
    }
  }

  DistributedEnv env_;
  std::shared_ptr<RendezvousStore> store_;
  std::chrono::milliseconds timeout_;
  std::string label_;
  std::shared_ptr<gloo::transport::Device> dev_;
  std::shared_ptr<gloo::Context> ctx_;
  uint32_t tag_ = 1;
  std::string current_;
  std::vector<std::unique_ptr<PendingSend>> pending_;
};

}  // namespace

std::shared_ptr<Communicator> make_gloo_communicator(const DistributedEnv& env,
                                                     std::shared_ptr<RendezvousStore> store) {
  return std::make_shared<GlooCommunicator>(env, std::move(store));
}

}  // namespace bmsys::rt
