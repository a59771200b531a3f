// Collective kernels in the CUDA backend (all_reduce, reduce_scatter, all_gather,
// sync_param; docs/distributed.md "Overlap"): they run on the communicator's stream,
// concurrently with the compute stream, and events order the two by data dependencies.
//
// The executor's instruction order stays the contract: collectives are issued in
// program order (the same on every rank), and a collective starts only after all
// compute work issued before it (its input was produced by that work). Compute work
// issued after a collective waits for it only when it touches the collective's
// buffers: it reads the collective's output, or writes its input or output (the
// memory plan may reuse a buffer once the collective's instruction is its last use).
// So a gather the compiler placed a block early (bmsys-zero prefetch) runs under that
// block's compute, and a gradient's reduce-scatter runs under the rest of the backward.
// At the end of a flush the compute stream joins the collective stream, so whatever
// comes after a flush (copies, the next flush's graph) sees every collective done.
//
// World size 1 (no communicator): the collectives are device copies on the compute
// stream.
//
// Pipeline parallelism (bind_pp): pp_broadcast and global_norm's sum over the stages
// run on the pipeline group (the same stream as the other groups); pp_send and
// pp_recv each on their channel's stream (one per peer and direction,
// nccl_communicator.h "Point-to-point"), so that they progress independently of each
// other and of the collectives. They are ordered like collectives: a transfer starts
// after all compute issued before it, and compute waits for one only when it touches
// its buffers (reads what a receive writes; overwrites what a send reads or a receive
// writes). Work on one stream waits in the same way for work in flight on another
// whose buffers it touches (a receive into the buffer a send still reads). Every
// stream is in order, so a wait covers that stream's earlier work.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "runtime/collectives/communicator.h"
#include "runtime/core/kernels.h"

namespace bmsys::rt {
class NcclCommunicator;
}

namespace bmsys::rt::cuda {

class Tracer;

struct Range {
  const void* p = nullptr;
  size_t bytes = 0;
};

// Whether two device ranges share a byte (an empty range overlaps nothing).
inline bool overlaps(const Range& a, const Range& b) {
  auto a0 = reinterpret_cast<uintptr_t>(a.p), b0 = reinterpret_cast<uintptr_t>(b.p);
  return a.bytes && b.bytes && a0 < b0 + b.bytes && b0 < a0 + a.bytes;
}

// The union of device ranges, merged: whether a range touches any of them in O(log n).
class RangeSet {
 public:
  void add(const Range& r) {
    if (!r.bytes) return;
    uintptr_t b = reinterpret_cast<uintptr_t>(r.p), e = b + r.bytes;
    auto it = spans_.upper_bound(b);
    if (it != spans_.begin() && std::prev(it)->second >= b) --it;
    while (it != spans_.end() && it->first <= e) {
      b = std::min(b, it->first);
      e = std::max(e, it->second);
      it = spans_.erase(it);
    }
    spans_.emplace(b, e);
  }
  bool overlaps(const Range& r) const {
    if (!r.bytes) return false;
    const uintptr_t b = reinterpret_cast<uintptr_t>(r.p), e = b + r.bytes;
    auto it = spans_.lower_bound(e);  // the first span starting at or after e cannot overlap
    return it != spans_.begin() && std::prev(it)->second > b;
  }

 private:
  std::map<uintptr_t, uintptr_t> spans_;  // start -> end, disjoint and not adjacent
};

// One collective instruction, as the backend queued it.
struct CollectiveOp {
  KernelId kernel = KernelId::kCount;  // AllReduce, ReduceScatter, AllGather, SyncParam
  DType dtype = DType::F32;
  const void* in = nullptr;  // all_reduce / reduce_scatter: x; all_gather: the shard
  int64_t in_count = 0;
  void* out = nullptr;  // all_reduce: y; reduce_scatter: the shard; all_gather: y; sync_param: param
  int64_t out_count = 0;
  ReduceOp reduce = ReduceOp::Sum;
  // tp_all_reduce (and the all-reduces of the vocab-parallel kernels): on the
  // tensor-parallel group (bind_tp) instead of the data-parallel one.
  bool tp = false;
  // Pipeline parallelism: on the pipeline group (bind_pp): pp_send (in), pp_recv (out),
  // pp_broadcast (in: the root's value, else null; out) to / from `peer` or from
  // `root`, and all_reduce with pp set (global_norm over the stages). `what` names a
  // transfer in messages ("pp_recv of micro-batch 3 (channel 0) from stage 1").
  bool pp = false;
  int peer = -1;
  int root = 0;
  std::string what;
};

class CollectiveStream {
 public:
  CollectiveStream() = default;
  ~CollectiveStream();
  CollectiveStream(const CollectiveStream&) = delete;
  CollectiveStream& operator=(const CollectiveStream&) = delete;

  // `comm` may be null (world size 1). The communicator outlives this object's use.
  void bind(NcclCommunicator* comm, cudaStream_t compute);
  NcclCommunicator* comm() const { return comm_; }
  // Tensor parallelism: the tensor-parallel group (null: none), a communicator of the
  // same process as comm() sharing its stream (nccl_communicator.h "Groups"), so the
  // collectives of both stay in one order on one stream.
  void bind_tp(NcclCommunicator* tp);
  NcclCommunicator* tp_comm() const { return tp_; }
  // A communicator to wait through (any of the process's polls them all), or null.
  NcclCommunicator* any_comm() const { return comm_ ? comm_ : tp_ ? tp_ : pp_; }
  // Pipeline parallelism: the pipeline group (null: none), of the same process.
  void bind_pp(NcclCommunicator* pp);
  NcclCommunicator* pp_comm() const { return pp_; }
  bool bound() const { return compute_ != nullptr; }

  // Issues `op` (after all compute issued so far). `tracer` may be null.
  void launch(const CollectiveOp& op, Tracer* tracer, const std::string& trace_args);
  // Before a compute step that reads `reads` and writes `writes`: the compute stream
  // waits for each in-flight collective whose buffers the step touches.
  void before_compute(const std::vector<Range>& reads, const std::vector<Range>& writes);
  // End of a flush: the compute stream waits for every collective issued.
  void join();
  // How many collectives ran (tests) and how many compute steps had to wait for one.
  int64_t launched() const { return launched_; }
  int64_t waits() const { return waits_; }

 private:
  struct Pending {
    Range in, out;
    cudaEvent_t done = nullptr;
    cudaStream_t stream = nullptr;  // where it runs (the collective or a channel stream)
  };
  cudaEvent_t take();
  NcclCommunicator* comm_ = nullptr;
  NcclCommunicator* tp_ = nullptr;
  NcclCommunicator* pp_ = nullptr;
  cudaStream_t compute_ = nullptr;
  cudaEvent_t ready_ = nullptr;  // compute progress a collective starts after
  std::vector<Pending> pending_;
  std::vector<cudaEvent_t> pool_;
  int64_t launched_ = 0, waits_ = 0;
};

// y = y * y and y = sqrt(y) for one f32 on the device (global_norm over ranks:
// the squared local norms are summed over the ranks in between).
void scalar_square(cudaStream_t s, float* y);
void scalar_sqrt(cudaStream_t s, float* y);
// y = x * factor over n elements of f32, f16 or bf16 (pp_mean: the micro-batch mean).
void scale_elements(cudaStream_t s, DType t, void* y, const void* x, int64_t n, float factor);

}  // namespace bmsys::rt::cuda
