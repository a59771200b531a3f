#include "runtime/collectives/gloo_communicator.h"

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>

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
  GlooStoreAdapter(RendezvousStore& s, std::chrono::milliseconds timeout) : s_(s), timeout_(timeout) {}
  void set(const std::string& key, const std::vector<char>& data) override { s_.set(key, data); }
  std::vector<char> get(const std::string& key) override { return s_.get(key, timeout_); }
  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override {
    for (const std::string& k : keys) s_.get(k, timeout);
  }

 private:
  RendezvousStore& s_;
  std::chrono::milliseconds timeout_;
};

template <typename T>
void sum_fn(void* c, const void* a, const void* b, size_t n) {
  T* o = static_cast<T*>(c);
  const T* x = static_cast<const T*>(a);
  const T* y = static_cast<const T*>(b);
  for (size_t i = 0; i < n; ++i) o[i] = x[i] + y[i];
}

class GlooCommunicator final : public Communicator {
 public:
  GlooCommunicator(const DistributedEnv& env, std::shared_ptr<RendezvousStore> store)
      : env_(env), store_(std::move(store)),
        timeout_(std::chrono::milliseconds(static_cast<int64_t>(env.timeout_s * 1000))) {
    gloo::transport::tcp::attr attr;
    const char* host = std::getenv("BMSYS_GLOO_HOSTNAME");
    attr.hostname = host && *host ? host : "127.0.0.1";
    try {
      auto dev = gloo::transport::tcp::CreateDevice(attr);
      auto ctx = std::make_shared<gloo::rendezvous::Context>(env.rank, env.world_size);
      ctx->setTimeout(timeout_);
      GlooStoreAdapter adapter(*store_, timeout_);
      ctx->connectFullMesh(adapter, dev);
      ctx_ = ctx;
    } catch (const Error& e) {
      fail("rank {}: connecting {} ranks (gloo): {}", env.rank, env.world_size, e.what());
    } catch (const std::exception& e) {
      fail("rank {}: connecting {} ranks (gloo) failed within {:.0f}s: {}", env.rank, env.world_size,
           env.timeout_s, e.what());
    }
  }

  int rank() const override { return env_.rank; }
  int world_size() const override { return env_.world_size; }
  std::string name() const override { return "gloo"; }

  void all_reduce(void* data, DType dtype, int64_t count, ReduceOp op) override {
    if (count <= 0) return;
    guard("all_reduce", [&] {
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

  template <typename T>
  void reduce_typed(T* data, int64_t count) {
    gloo::AllreduceOptions o(ctx_);
    o.setOutput(data, static_cast<size_t>(count));
    o.setReduceFunction(gloo::AllreduceOptions::Func(&sum_fn<T>));
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
    if (!ctx_) fail("rank {}: the communicator is not connected", env_.rank);
    const char* name = current_.empty() ? what : current_.c_str();
    auto t0 = Clock::now();
    try {
      f();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      double s = std::chrono::duration<double>(Clock::now() - t0).count();
      bool timed_out = s + 0.05 >= env_.timeout_s;
      fail("rank {}: collective {} {} after {:.1f}s (timeout {:g}s; a peer may have died): {}", env_.rank, name,
           timed_out ? "timed out" : "failed", s, env_.timeout_s, e.what());
    }
  }

  DistributedEnv env_;
  std::shared_ptr<RendezvousStore> store_;
  std::chrono::milliseconds timeout_;
  std::shared_ptr<gloo::Context> ctx_;
  uint32_t tag_ = 1;
  std::string current_;
};

}  // namespace

std::shared_ptr<Communicator> make_gloo_communicator(const DistributedEnv& env,
                                                     std::shared_ptr<RendezvousStore> store) {
  return std::make_shared<GlooCommunicator>(env, std::move(store));
}

}  // namespace bmsys::rt
