// Collective communication between the data-parallel ranks of a training run
// (docs/distributed.md).
//
// A Communicator is what the collective kernels (all_reduce, reduce_scatter,
// all_gather, sync_param, global_norm with `ranks`) and the sharded checkpoints
// use. It is device-agnostic: every pointer is in the memory space of the backend
// the communicator was made for (host memory for the CPU backend and Gloo; device
// memory for a backend that supplies its own, e.g. NCCL for CUDA), except where a
// method says "host".
//
// Shard layout (the one bmsys-zero compiles for): a tensor of n elements over R
// ranks is cut into R flat shards of S = ceil(n/R) elements; rank r holds elements
// [r*S, (r+1)*S) of the flattened tensor, the part past n zero-padded.
//
// Every collective is bounded by the communicator's timeout; a failure (a peer
// that died, a timeout) throws bmsys::rt::Error naming this rank and the
// collective: "rank 0: collective all_reduce failed after 3.0s (timeout 5s; a peer
// may have died): <transport message>".
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "runtime/core/dtype.h"
#include "runtime/core/error.h"

namespace bmsys::rt {

class Backend;

// Max: the elementwise maximum (vocab-parallel cross-entropy); all_reduce only.
enum class ReduceOp : uint8_t { Sum, Mean, Max };
// "sum" | "mean"; throws on anything else.
inline ReduceOp reduce_op_from_name(const std::string& name) {
  if (name == "sum") return ReduceOp::Sum;
  if (name == "mean") return ReduceOp::Mean;
  fail("attribute 'reduction' must be \"sum\" or \"mean\", not \"{}\"", name);
}

// S = ceil(n / ranks) (ranks >= 1).
inline int64_t shard_size(int64_t n, int64_t ranks) { return ranks <= 1 ? n : (n + ranks - 1) / ranks; }

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // "single", "gloo", "nccl", for messages.
  virtual std::string name() const = 0;

  // In place: every rank gets the elementwise sum (or mean) over the ranks of
  // `data` (`count` elements of a float dtype).
  virtual void all_reduce(void* data, DType dtype, int64_t count, ReduceOp op) = 0;
  // The same on doubles in host memory (partial sums such as a gradient norm's).
  virtual void all_reduce_host_f64(double* data, int64_t count) = 0;
  // Reduces `count` elements of `in` over the ranks and writes this rank's flat
  // shard (shard_size(count, R) elements, zero past `count`) to `shard`.
  virtual void reduce_scatter(const void* in, DType dtype, int64_t count, void* shard,
                              ReduceOp op) = 0;
  // Concatenates every rank's `shard` (shard_size(count, R) elements each) and
  // writes the first `count` elements to `out`. `out` must not overlap `shard`.
  virtual void all_gather(const void* shard, DType dtype, void* out, int64_t count) = 0;
  // `count` elements of `data` from `root` to every rank.
  virtual void broadcast(void* data, DType dtype, int64_t count, int root) = 0;
  virtual void barrier() = 0;

  // A communicator over a subset of the ranks (the tensor- and data-parallel
  // groups of a mesh, docs/distributed.md "Rank layout"). `members` are world
  // ranks, this one among them, in the order of the group's ranks; `name` is
  // unique among the groups of the run. Every member calls it with the same
  // arguments (it connects the members). This default handles one member and
  // throws for more; Gloo implements it.
  virtual std::shared_ptr<Communicator> group(const std::string& name, const std::vector<int>& members);

  // Point-to-point (pipeline parallelism; host memory). `send` copies `bytes` of
  // `data` and posts them to rank `peer` without waiting for the receiver; the
  // matching `recv` (same `tag`) waits for them, at most the timeout.
  // `wait_sends` completes every posted send (bounded by the timeout too); a
  // caller calls it before the ranks can next need each other's sends done.
  // These defaults throw: Gloo implements them.
  virtual void send(const void* data, size_t bytes, int peer, uint64_t tag);
  virtual void recv(void* data, size_t bytes, int peer, uint64_t tag);
  virtual void wait_sends() {}
  // Connects the point-to-point paths to `peers` now (every peer calls it with
  // this rank among its peers), so that the first send or receive does not wait
  // for the peer to connect. Gloo's full mesh needs nothing (this default); NCCL
  // connects a channel per peer and direction (nccl_communicator.h).
  virtual void connect_peers(const std::vector<int>& peers) { (void)peers; }
};

// World size 1: every collective is a copy (or nothing).
class SingleRankCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string name() const override { return "single"; }
  void all_reduce(void*, DType, int64_t, ReduceOp) override {}
  void all_reduce_host_f64(double*, int64_t) override {}
  // Host memory only (the CPU backend's); a device backend brings its own communicator.
  void reduce_scatter(const void* in, DType dtype, int64_t count, void* shard, ReduceOp) override {
    if (in != shard) std::memmove(shard, in, static_cast<size_t>(count) * dtype_size(dtype));
  }
  void all_gather(const void* shard, DType dtype, void* out, int64_t count) override {
    if (out != shard) std::memmove(out, shard, static_cast<size_t>(count) * dtype_size(dtype));
  }
  void broadcast(void*, DType, int64_t, int) override {}
  void barrier() override {}
};

// A key-value store for the rendezvous of the ranks (addresses, ids).
class RendezvousStore {
 public:
  virtual ~RendezvousStore() = default;
  virtual void set(const std::string& key, const std::vector<char>& value) = 0;
  // Waits until `key` is set (at most `timeout`; throws naming the key after it).
  virtual std::vector<char> get(const std::string& key, std::chrono::milliseconds timeout) = 0;
  virtual bool check(const std::string& key) = 0;
};

// One file per key in a shared directory (written to a temporary name, then renamed).
std::unique_ptr<RendezvousStore> make_file_store(const std::string& dir);
// A TCP key-value store: rank 0 serves it on `addr:port` (in a thread, for the
// lifetime of the returned object), every rank (rank 0 too) is a client.
// Clients retry connecting until `timeout`.
std::unique_ptr<RendezvousStore> make_tcp_store(const std::string& addr, int port, bool serve,
                                                std::chrono::milliseconds timeout);

// Where this process stands in a distributed run, from the environment
// (torchrun/Slurm-wrapper convention): RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT; BMSYS_STORE_DIR (a file-store
// directory, set by `bmsys-run --nproc`) takes precedence over MASTER_ADDR/PORT.
struct DistributedEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr;
  int master_port = 0;
  std::string store_dir;
  double timeout_s = 60;  // every collective and the rendezvous
};
// Reads the variables above; world size 1 when WORLD_SIZE is unset. Throws on
// inconsistent or malformed values (naming the variable).
DistributedEnv distributed_env_from_environment(double timeout_s);

// The communicator for `env`: SingleRankCommunicator for world size 1; otherwise
// the backend's own (Backend::create_communicator) or, when it has none, Gloo over
// TCP on 127.0.0.1 (host memory). Connects all ranks (rendezvous through the store).
std::shared_ptr<Communicator> create_communicator(const DistributedEnv& env, Backend& backend);

}  // namespace bmsys::rt
