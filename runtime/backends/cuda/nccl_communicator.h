// The NCCL implementation of Communicator (docs/distributed.md), made by
// CudaBackend::create_communicator: one rank per GPU, device pointers.
//
// Connecting: rank 0 creates the NCCL unique id and publishes it in the rendezvous
// store; every rank creates a *nonblocking* communicator (ncclCommInitRankConfig with
// blocking = 0) and polls ncclCommGetAsyncError, so that initialization and every
// later wait are bounded by the timeout (--comm-timeout) instead of blocking inside
// NCCL.
//
// Streams: every collective runs on the communicator's own stream (stream(), created
// with the highest priority so that collectives start as soon as they may while
// compute kernels run). The Communicator methods are synchronous: they enqueue on
// stream() and wait for it. The CUDA backend uses the enqueue_* methods instead and
// orders the collective stream against its compute stream with events
// (backends/cuda/collectives.h).
//
// Failures: a wait (wait_stream) that sees no collective complete within the timeout,
// or an asynchronous NCCL error, aborts the communicator (ncclCommAbort) and throws,
// naming this rank, the collective (kind and sequence number) and what the other ranks
// said through the store: which rank did not reach it (died or hangs), or where the
// others wait. After an abort the process must exit: a watchdog ends it 15 s later if
// it has not (a GPU that did not stop must not turn into a silent hang;
// BMSYS_NCCL_EXIT_AFTER_ABORT_S sets the delay, 0 turns it off for tests).
//
// Groups (group(): the tensor- and data-parallel groups of a mesh): a communicator
// of its own over the members (an NCCL unique id from the group's first member,
// published under bmsys-nccl/group/<name>/), sharing the world communicator's stream.
// One stream for every communicator of a process keeps their collectives in program
// order on the GPU (the same on every rank), so collectives of different groups
// cannot wait on each other across ranks; a wait polls every communicator of the
// process (a hang in any of them is bounded), and an abort aborts them all at once
// (each ncclCommAbort on a thread of its own: one waits for the GPU, so for the
// kernels of the others, which stop only when they are aborted too).
#pragma once

#include <cuda_runtime.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "runtime/collectives/communicator.h"

namespace bmsys::rt {

class NcclCommunicator final : public Communicator {
 public:
  // Connects all ranks (rendezvous through `store`, which is kept for diagnosis);
  // `device` is this rank's GPU. Throws naming the rank on failure or timeout.
  NcclCommunicator(const DistributedEnv& env, std::shared_ptr<RendezvousStore> store, int device);
  ~NcclCommunicator() override;

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  std::string name() const override { return "nccl"; }

  // Synchronous (enqueue on stream(), then wait_stream(stream())).
  void all_reduce(void* data, DType dtype, int64_t count, ReduceOp op) override;
  void all_reduce_host_f64(double* data, int64_t count) override;
  void reduce_scatter(const void* in, DType dtype, int64_t count, void* shard, ReduceOp op) override;
  void all_gather(const void* shard, DType dtype, void* out, int64_t count) override;
  void broadcast(void* data, DType dtype, int64_t count, int root) override;
  void barrier() override;
  // A communicator over `members` (world ranks; see the file comment). One member:
  // a SingleRankCommunicator.
  std::shared_ptr<Communicator> group(const std::string& name, const std::vector<int>& members) override;
  // Whether `other` is this communicator or one of the groups made from the same
  // world communicator (the CUDA backend accepts only its own).
  bool same_process_family(const NcclCommunicator* other) const { return other && other->family_ == family_; }

  // --- Asynchronous use (the CUDA backend) ---------------------------------------
  // The stream every collective runs on.
  cudaStream_t stream() const { return stream_; }
  // Enqueue on stream() and return; the semantics of the synchronous methods.
  void enqueue_all_reduce(const void* in, void* out, DType dtype, int64_t count, ReduceOp op);
  void enqueue_reduce_scatter(const void* in, DType dtype, int64_t count, void* shard, ReduceOp op);
  void enqueue_all_gather(const void* shard, DType dtype, void* out, int64_t count);
  // ZeRO-1/2 sync_param: this rank changed elements [r*S, min((r+1)*S, n)) of the
  // replicated `param` (n elements); afterwards every rank's copy holds every slice.
  void enqueue_sync_param(void* param, DType dtype, int64_t n);
  // Waits until `s` has no work left, polling: fails (abort + throw) when collectives
  // are in flight and none completes within the timeout, or on an NCCL error.
  // `what` names the wait in messages ("synchronize").
  void wait_stream(cudaStream_t s, const char* what);
  // The same for one event (bmsys-offload: the CPU optimizer step waits for its
  // gradient's copy, which may come after collectives).
  void wait_event(cudaEvent_t e, const char* what);
  // Throws the error of an earlier abort (every later use fails the same way).
  void check_alive() const;

  // --- Point-to-point (pipeline parallelism; nccl_p2p.cpp) ----------------------
  // An NCCL send blocks its stream until the peer posts the matching receive, and
  // NCCL orders all work of one communicator, whatever the stream. So that a send
  // never waits behind a receive (or the other way round), as Gloo's posted sends
  // never do, each peer and direction has a channel: a two-rank communicator of the
  // family with a stream of its own, carrying only the sends from the lower rank to
  // the higher ("up") or only those the other way ("down"). NCCL matches a channel's
  // sends to its receives by order (tags are not sent): both sides must issue them in
  // the same order, as bmsys-pipeline-schedule does (micro-batch, then channel).
  // Channels are connected by connect_peers() (each pair in ascending order, up then
  // down, with a one-byte transfer so that NCCL connects now), or at their first use.
  void connect_peers(const std::vector<int>& peers) override;
  // Synchronous API (device memory): `send` enqueues and returns (wait_sends() waits
  // for every send), `recv` waits for the data; `tag` is not used (order matches).
  void send(const void* data, size_t bytes, int peer, uint64_t tag) override;
  void recv(void* data, size_t bytes, int peer, uint64_t tag) override;
  void wait_sends() override;
  // Enqueue on the channel's stream (p2p_stream) and return; `what` names the
  // transfer in messages ("pp_recv of micro-batch 3 (channel 0) from stage 1").
  void enqueue_send(const void* data, size_t bytes, int peer, const std::string& what);
  void enqueue_recv(void* data, size_t bytes, int peer, const std::string& what);
  cudaStream_t p2p_stream(int peer, bool send);
  // `count` elements from `root`'s `in` into every rank's `out` (in: root only), on
  // stream().
  void enqueue_broadcast(const void* in, void* out, DType dtype, int64_t count, int root);

 private:
  struct Family;
  // A group of `parent`'s world: group rank `rank` of `members` (world ranks).
  NcclCommunicator(const NcclCommunicator& parent, const std::string& name, const std::vector<int>& members,
                   int rank);
  // Rendezvous (unique id under `prefix_`) and the nonblocking init, bounded.
  void connect();
  // "rank 3" (world) or "rank 3 (group 'tp1', rank 1 of 2)", for messages.
  std::string me() const;
  int world_rank_of(int group_rank) const {
    return members_.empty() ? group_rank : members_[static_cast<size_t>(group_rank)];
  }
  void wait_until(cudaStream_t s, cudaEvent_t e, const char* what);
  struct InFlight {
    uint64_t seq;
    std::string what;
    cudaEvent_t done;
    uint64_t ticket = 0;  // the order on the shared stream (Family::tickets)
  };
  void check(int result, const char* call, const std::string& what);
  void* scratch(size_t bytes);
  void record(const std::string& what);
  // Pops completed collectives; returns how many completed.
  int progress();
  [[noreturn]] void fail_timeout(const char* what, double waited_s);
  [[noreturn]] void abort_and_fail(const std::string& msg);
  std::string diagnose(uint64_t seq, const std::string& what);
  int nccl_type(DType t, const char* what) const;

  int rank_ = 0, world_ = 1, device_ = 0;
  double timeout_s_ = 60;
  std::shared_ptr<RendezvousStore> store_;
  void* comm_ = nullptr;  // ncclComm_t
  cudaStream_t stream_ = nullptr;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  uint64_t seq_ = 0;
  std::deque<InFlight> inflight_;
  std::vector<cudaEvent_t> event_pool_;
  std::string aborted_;  // the error of an abort ("" while healthy)
  // Groups: the key prefix of this communicator's rendezvous and diagnosis
  // ("bmsys-nccl/" for the world), its name and members (world ranks; empty: world).
  std::string prefix_ = "bmsys-nccl/";
  std::string group_name_;
  std::vector<int> members_;
  std::shared_ptr<Family> family_;  // the process's communicators and their stream
  // Point-to-point channels (nccl_p2p.cpp), destroyed before the family.
  struct Channel {
    int peer = -1;
    bool send = false;
    std::unique_ptr<NcclCommunicator> comm;
    cudaStream_t stream = nullptr;  // the channel's own (comm's stream_)
    ~Channel();                     // the communicator, then its stream
  };
  NcclCommunicator& channel(int peer, bool send);
  void p2p(bool send, void* data, size_t bytes, const std::string& what);
  std::vector<std::unique_ptr<Channel>> channels_;
};

}  // namespace bmsys::rt
