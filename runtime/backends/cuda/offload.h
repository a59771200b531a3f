// Optimizer offload in the CUDA backend (bmsys-offload; docs/distributed.md "Optimizer
// offload"): the device <-> host copies of to_host (a gradient into pinned host memory)
// and upload_master (an updated fp32 master into its device parameter) run on a copy
// stream of their own, concurrently with the compute and collective streams.
//
// Ordering, by events, with the executor's instruction order as the contract:
// - a copy starts after all compute issued before it (an event recorded on the compute
//   stream): a gradient's producer, and every earlier reader of a parameter it overwrites;
// - a compute step (or collective) issued after a copy waits for it only when it touches
//   the copy's device memory: it writes a to_host source (the memory plan may reuse the
//   gradient's buffer once the copy was its last use), or reads or writes an
//   upload_master destination (ZeRO-1/2's sync_param, the next step's forward);
// - the CPU optimizer step waits on the host (wait_host) for the copies in flight that
//   write or read the host memory it touches: its gradient's and norm's copies, and the
//   previous upload from its master;
// - at the end of a flush the compute stream joins the copy stream.
// So the gradients of the last blocks travel during the backward of the first, and the
// upload of one parameter overlaps the CPU step of the next.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/backends/cuda/collectives.h"

namespace bmsys::rt::cuda {

class Tracer;

class OffloadCopies {
 public:
  OffloadCopies() = default;
  ~OffloadCopies();
  OffloadCopies(const OffloadCopies&) = delete;
  OffloadCopies& operator=(const OffloadCopies&) = delete;

  // Creates the copy stream (once); `compute` is the backend's compute stream.
  void bind(cudaStream_t compute);
  bool bound() const { return stream_ != nullptr; }
  cudaStream_t stream() const { return stream_; }

  // Device -> host (`to_host`) and host -> device (`upload_master`) copies of `bytes`,
  // after all compute issued so far. `host` must be pinned memory.
  void to_host(void* host, const void* device, size_t bytes, Tracer* tracer);
  void to_device(void* device, const void* host, size_t bytes, Tracer* tracer);
  // Before a compute step that reads `reads` and writes `writes` (device memory).
  void before_compute(const std::vector<Range>& reads, const std::vector<Range>& writes);
  // End of a flush: the compute stream waits for every copy issued.
  void join();
  // Before the CPU reads or writes host memory `r`: waits for the copies in flight
  // that touch it, through `wait` (which polls, so that a failed collective upstream
  // fails the run instead of hanging it).
  void wait_host(const Range& r, const std::function<void(cudaEvent_t)>& wait);

  int64_t copies() const { return copies_; }
  uint64_t bytes() const { return bytes_; }
  int64_t compute_waits() const { return compute_waits_; }

 private:
  struct Pending {
    Range device, host;
    cudaEvent_t done = nullptr;
    bool d2h = true;
  };
  cudaEvent_t take();
  void issue(void* dst, const void* src, size_t bytes, bool d2h, Tracer* tracer);
  cudaStream_t compute_ = nullptr, stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;
  std::vector<Pending> device_pending_;  // until the compute stream joins them
  std::vector<Pending> host_pending_;    // until the host waited for them
  std::vector<cudaEvent_t> pool_;
  int64_t copies_ = 0, compute_waits_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace bmsys::rt::cuda
