#include "runtime/backends/cuda/offload.h"

#include <fmt/format.h>

#include <algorithm>

#include "runtime/backends/cuda/cuda_common.h"
#include "runtime/backends/cuda/trace.h"
#include "runtime/core/error.h"

namespace bmsys::rt::cuda {

OffloadCopies::~OffloadCopies() {
  if (stream_) cudaStreamSynchronize(stream_);
  for (Pending& p : device_pending_) pool_.push_back(p.done);
  for (Pending& p : host_pending_) pool_.push_back(p.done);
  for (cudaEvent_t e : pool_) cudaEventDestroy(e);
  if (ready_) cudaEventDestroy(ready_);
  if (stream_) cudaStreamDestroy(stream_);
  cudaGetLastError();
}

void OffloadCopies::bind(cudaStream_t compute) {
  compute_ = compute;
  if (stream_) return;
  BMSYS_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "creating the offload copy stream");
  BMSYS_CUDA(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming), "offload events");
}

cudaEvent_t OffloadCopies::take() {
  if (!pool_.empty()) {
    cudaEvent_t e = pool_.back();
    pool_.pop_back();
    return e;
  }
  cudaEvent_t e = nullptr;
  BMSYS_CUDA(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "offload events");
  return e;
}

void OffloadCopies::issue(void* dst, const void* src, size_t bytes, bool d2h, Tracer* tracer) {
  if (!stream_) fail("cuda backend: offload copy before the copy stream exists");
  // Forget host-side copies that are done (nobody needs to wait for them any more).
  while (!host_pending_.empty() && cudaEventQuery(host_pending_.front().done) == cudaSuccess) {
    pool_.push_back(host_pending_.front().done);
    host_pending_.erase(host_pending_.begin());
  }
  cudaGetLastError();
  BMSYS_CUDA(cudaEventRecord(ready_, compute_), "offload copy ordering");
  BMSYS_CUDA(cudaStreamWaitEvent(stream_, ready_, 0), "offload copy ordering");
  if (tracer) tracer->begin(stream_);
  if (bytes)
    BMSYS_CUDA(cudaMemcpyAsync(dst, src, bytes, d2h ? cudaMemcpyDeviceToHost : cudaMemcpyHostToDevice, stream_),
               d2h ? "to_host" : "upload_master");
  if (tracer)
    tracer->end(stream_, fmt::format("{} {} B", d2h ? "D2H gradient" : "H2D master", bytes), "copy", 4,
                fmt::format("{{\"bytes\":{}}}", bytes));
  Pending p;
  p.d2h = d2h;
  p.device = {d2h ? src : dst, bytes};
  p.host = {d2h ? dst : src, bytes};
  for (std::vector<Pending>* list : {&device_pending_, &host_pending_}) {
    p.done = take();
    BMSYS_CUDA(cudaEventRecord(p.done, stream_), "offload copy ordering");
    list->push_back(p);
  }
  copies_++;
  bytes_ += bytes;
}

void OffloadCopies::to_host(void* host, const void* device, size_t bytes, Tracer* tracer) {
  issue(host, device, bytes, true, tracer);
}

void OffloadCopies::to_device(void* device, const void* host, size_t bytes, Tracer* tracer) {
  issue(device, host, bytes, false, tracer);
}

void OffloadCopies::before_compute(const std::vector<Range>& reads, const std::vector<Range>& writes) {
  for (size_t i = 0; i < device_pending_.size();) {
    const Pending& p = device_pending_[i];
    bool hazard = false;
    for (const Range& w : writes) hazard = hazard || overlaps(w, p.device);  // WAR (to_host), WAW (upload)
    if (!p.d2h)
      for (const Range& r : reads) hazard = hazard || overlaps(r, p.device);  // RAW (upload)
    if (!hazard) {
      ++i;
      continue;
    }
    BMSYS_CUDA(cudaStreamWaitEvent(compute_, p.done, 0), "offload copy ordering");
    compute_waits_++;
    pool_.push_back(p.done);
    device_pending_.erase(device_pending_.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

void OffloadCopies::join() {
  if (device_pending_.empty()) return;
  // The last copy's event covers every earlier one (one stream, in order).
  BMSYS_CUDA(cudaStreamWaitEvent(compute_, device_pending_.back().done, 0), "offload copy ordering");
  for (Pending& p : device_pending_) pool_.push_back(p.done);
  device_pending_.clear();
}

void OffloadCopies::wait_host(const Range& r, const std::function<void(cudaEvent_t)>& wait) {
  // The copy stream is in order: waiting for the last touching copy covers the others.
  int last = -1;
  for (size_t i = 0; i < host_pending_.size(); ++i)
    if (overlaps(r, host_pending_[i].host)) last = static_cast<int>(i);
  if (last < 0) return;
  wait(host_pending_[last].done);
  for (int i = 0; i <= last; ++i) pool_.push_back(host_pending_[i].done);
  host_pending_.erase(host_pending_.begin(), host_pending_.begin() + last + 1);
}

}  // namespace bmsys::rt::cuda
