#include "runtime/backends/cuda/collectives.h"

#include <fmt/format.h>

#include <algorithm>

#include "runtime/backends/cuda/cuda_common.h"
#include "runtime/backends/cuda/nccl_communicator.h"
#include "runtime/backends/cuda/trace.h"
#include "runtime/core/error.h"

namespace bmsys::rt::cuda {

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

void CollectiveStream::bind_pp(NcclCommunicator* pp) {
  NcclCommunicator* other = comm_ ? comm_ : tp_;
  if (pp && other && pp->stream() != other->stream())
    fail("cuda backend: the pipeline and data-parallel communicators do not share a stream (not groups of one world)");
  pp_ = pp;
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
  const bool p2p = op.kernel == KernelId::PpSend || op.kernel == KernelId::PpRecv;
  const bool on_pp = op.pp || p2p || op.kernel == KernelId::PpBroadcast;
  NcclCommunicator* via = op.tp ? tp_ : on_pp ? pp_ : comm_;
  if (!via && p2p) fail("cuda backend: {} ({}) without a pipeline group (bind_pp)", name, op.what);
  if (!via) {
    // One rank: every collective is the identity on the compute stream.
    if (op.kernel != KernelId::SyncParam && op.out != op.in && op.out_count > 0)
      BMSYS_CUDA(cudaMemcpyAsync(op.out, op.in, static_cast<size_t>(op.out_count) * es, cudaMemcpyDeviceToDevice,
                                 compute_),
                 name);
    return;
  }
  // A transfer runs on its channel's stream (connected now if it was not).
  cudaStream_t s = p2p ? via->p2p_stream(op.peer, op.kernel == KernelId::PpSend) : via->stream();
  BMSYS_CUDA(cudaEventRecord(ready_, compute_), "collective ordering");
  BMSYS_CUDA(cudaStreamWaitEvent(s, ready_, 0), "collective ordering");
  // Work in flight on another stream (a channel's, or the collectives' for a transfer)
  // that this one must not overtake: it writes what that one reads or writes, or reads
  // what that one writes (the memory plan reuses a buffer after its last use, and a
  // send's input is last used by the send).
  const Range rin{op.in, static_cast<size_t>(op.in_count) * es}, rout{op.out, static_cast<size_t>(op.out_count) * es};
  for (const Pending& p : pending_)
    if (p.stream != s && (overlaps(rout, p.in) || overlaps(rout, p.out) || overlaps(rin, p.out)))
      BMSYS_CUDA(cudaStreamWaitEvent(s, p.done, 0), "collective ordering");
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
    case KernelId::PpSend:
      via->enqueue_send(op.in, static_cast<size_t>(op.in_count) * es, op.peer, op.what);
      break;
    case KernelId::PpRecv:
      via->enqueue_recv(op.out, static_cast<size_t>(op.out_count) * es, op.peer, op.what);
      break;
    case KernelId::PpBroadcast:
      via->enqueue_broadcast(op.in, op.out, op.dtype, op.out_count, op.root);
      break;
    default:
      fail("cuda backend: '{}' is not a collective", name);
  }
  if (tracer)
    tracer->end(s, p2p ? op.what : fmt::format("{} {}", name, dtype_name(op.dtype)), "collective", p2p ? 5 : 3,
                trace_args);
  Pending p;
  p.in = {op.in, static_cast<size_t>(op.in_count) * es};
  p.out = {op.out, static_cast<size_t>(op.out_count) * es};
  p.done = take();
  p.stream = s;
  BMSYS_CUDA(cudaEventRecord(p.done, s), "collective ordering");
  pending_.push_back(p);
  ++launched_;
}

void CollectiveStream::before_compute(const std::vector<Range>& reads, const std::vector<Range>& writes) {
  // Per stream, the latest in-flight work the step conflicts with; waiting for it
  // also covers that stream's earlier work (each stream is in order).
  std::vector<std::pair<cudaStream_t, size_t>> last;  // stream, index + 1
  for (size_t i = 0; i < pending_.size(); ++i) {
    const Pending& p = pending_[i];
    bool conflict = false;
    for (const Range& r : reads) conflict = conflict || overlaps(r, p.out);
    for (const Range& w : writes) conflict = conflict || overlaps(w, p.out) || overlaps(w, p.in);
    if (!conflict) continue;
    auto it = std::find_if(last.begin(), last.end(), [&](const auto& l) { return l.first == p.stream; });
    if (it == last.end())
      last.push_back({p.stream, i + 1});
    else
      it->second = i + 1;
  }
  if (last.empty()) return;
  for (const auto& [stream, end] : last) {
    BMSYS_CUDA(cudaStreamWaitEvent(compute_, pending_[end - 1].done, 0), "collective ordering");
    ++waits_;
  }
  std::vector<Pending> keep;
  for (size_t j = 0; j < pending_.size(); ++j) {
    auto it = std::find_if(last.begin(), last.end(), [&](const auto& l) { return l.first == pending_[j].stream; });
    if (it != last.end() && j < it->second)
      pool_.push_back(pending_[j].done);  // covered by the wait on its stream
    else
      keep.push_back(pending_[j]);
  }
  pending_.swap(keep);
}

void CollectiveStream::join() {
  // The last work of every stream.
  for (size_t i = pending_.size(); i-- > 0;) {
    bool later = false;
    for (size_t j = i + 1; j < pending_.size(); ++j) later = later || pending_[j].stream == pending_[i].stream;
    if (!later) BMSYS_CUDA(cudaStreamWaitEvent(compute_, pending_[i].done, 0), "collective ordering");
  }
  for (auto& p : pending_) pool_.push_back(p.done);
  pending_.clear();
}

}  // namespace bmsys::rt::cuda
