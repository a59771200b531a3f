#include "runtime/backends/cuda/collectives.h"

#include <fmt/format.h>

#include "runtime/backends/cuda/cuda_common.h"
#include "runtime/backends/cuda/nccl_communicator.h"
#include "runtime/backends/cuda/trace.h"
#include "runtime/core/error.h"

namespace bmsys::rt::cuda {

namespace {

bool overlaps(const Range& a, const Range& b) {
  auto a0 = reinterpret_cast<uintptr_t>(a.p), b0 = reinterpret_cast<uintptr_t>(b.p);
  return a.bytes && b.bytes && a0 < b0 + b.bytes && b0 < a0 + a.bytes;
}

}  // namespace

CollectiveStream::~CollectiveStream() {
  for (auto& p : pending_) pool_.push_back(p.done);
  for (cudaEvent_t e : pool_) cudaEventDestroy(e);
  if (ready_) cudaEventDestroy(ready_);
  cudaGetLastError();
}

void CollectiveStream::bind(NcclCommunicator* comm, cudaStream_t compute) {
  comm_ = comm;
  compute_ = compute;
  if (!ready_) BMSYS_CUDA(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming), "collective events");
}

void CollectiveStream::bind_tp(NcclCommunicator* tp) {
  if (tp && comm_ && tp->stream() != comm_->stream())
    fail("cuda backend: the tensor- and data-parallel communicators do not share a stream (not groups of one world)");
  tp_ = tp;
}

cudaEvent_t CollectiveStream::take() {
  if (!pool_.empty()) {
    cudaEvent_t e = pool_.back();
    pool_.pop_back();
    return e;
  }
  cudaEvent_t e = nullptr;
  BMSYS_CUDA(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "collective events");
  return e;
}

void CollectiveStream::launch(const CollectiveOp& op, Tracer* tracer, const std::string& trace_args) {
  const size_t es = dtype_size(op.dtype);
  const char* name = kernel_name(op.kernel);
  NcclCommunicator* via = op.tp ? tp_ : comm_;
  if (!via) {
    // One rank: every collective is the identity on the compute stream.
    if (op.kernel != KernelId::SyncParam && op.out != op.in && op.out_count > 0)
      BMSYS_CUDA(cudaMemcpyAsync(op.out, op.in, static_cast<size_t>(op.out_count) * es, cudaMemcpyDeviceToDevice,
                                 compute_),
                 name);
    return;
  }
  cudaStream_t s = via->stream();
  BMSYS_CUDA(cudaEventRecord(ready_, compute_), "collective ordering");
  BMSYS_CUDA(cudaStreamWaitEvent(s, ready_, 0), "collective ordering");
  if (tracer) tracer->begin(s);
  switch (op.kernel) {
    case KernelId::AllReduce:
    case KernelId::TpAllReduce:
      via->enqueue_all_reduce(op.in, op.out, op.dtype, op.out_count, op.reduce);
      break;
    case KernelId::ReduceScatter:
      via->enqueue_reduce_scatter(op.in, op.dtype, op.in_count, op.out, op.reduce);
      break;
    case KernelId::AllGather:
      via->enqueue_all_gather(op.in, op.dtype, op.out, op.out_count);
      break;
    case KernelId::SyncParam:
      via->enqueue_sync_param(op.out, op.dtype, op.out_count);
      break;
    default:
      fail("cuda backend: '{}' is not a collective", name);
  }
  if (tracer)
    tracer->end(s, fmt::format("{} {}", name, dtype_name(op.dtype)), "collective", 3, trace_args);
  Pending p;
  p.in = {op.in, static_cast<size_t>(op.in_count) * es};
  p.out = {op.out, static_cast<size_t>(op.out_count) * es};
  p.done = take();
  BMSYS_CUDA(cudaEventRecord(p.done, s), "collective ordering");
  pending_.push_back(p);
  ++launched_;
}

void CollectiveStream::before_compute(const std::vector<Range>& reads, const std::vector<Range>& writes) {
  // The latest in-flight collective the step conflicts with; waiting for it also
  // covers every earlier one (one stream, in order).
  size_t last = 0;
  for (size_t i = 0; i < pending_.size(); ++i) {
    const Pending& p = pending_[i];
    bool conflict = false;
    for (const Range& r : reads) conflict = conflict || overlaps(r, p.out);
    for (const Range& w : writes) conflict = conflict || overlaps(w, p.out) || overlaps(w, p.in);
    if (conflict) last = i + 1;
  }
  if (!last) return;
  BMSYS_CUDA(cudaStreamWaitEvent(compute_, pending_[last - 1].done, 0), "collective ordering");
  ++waits_;
  for (size_t j = 0; j < last; ++j) pool_.push_back(pending_[j].done);
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(last));
}

void CollectiveStream::join() {
  if (pending_.empty()) return;
  BMSYS_CUDA(cudaStreamWaitEvent(compute_, pending_.back().done, 0), "collective ordering");
  for (auto& p : pending_) pool_.push_back(p.done);
  pending_.clear();
}

}  // namespace bmsys::rt::cuda
