// The CUDA backend: a Backend (runtime/backends/backend.h) on one GPU.
//
//  - memory: a stream-ordered caching allocator (allocator.h); out of memory names
//    what bmsys holds by kind against what the GPU has;
//  - streams: a compute stream and a copy stream (uploads, downloads) joined by events;
//  - GEMMs: cuBLASLt (gemm.h) with bias / GELU epilogues and cached heuristics, and an
//    own GEMV for decode-sized inputs (M <= 8);
//  - attention: own kernels (attention.cu: decode split-K, tensor-core flash, SIMT);
//  - the rest: own kernels (elementwise.cu, norms.cu);
//  - launches are queued and run at the next synchronize/copy/upload ("a flush"). A
//    flush whose launch sequence was seen before is captured into a CUDA graph and
//    replayed from then on; start_pos lives in device memory, so decode steps at every
//    position replay one graph. Independent GEMVs sharing an input (q/k/v, gate/up),
//    rope on q and k, silu followed by mul, and linear followed by tanh-GELU run as
//    one launch each; kernels use programmatic dependent launch.
//  - --trace: a Chrome trace-event file, one track per stream (trace.h).
//
// Environment switches (default in brackets), for experiments and debugging:
//   BMSYS_CUDA_GRAPHS [1]  BMSYS_CUDA_PDL [1]  BMSYS_CUDA_FUSE [1]
//   BMSYS_CUDA_GEMV [1]: 0 cuBLASLt for every linear, 1 own GEMVs for M <= 8 (tuned per
//   shape against cuBLASLt, with the GEMV fusions), 2 the row GEMV, 3 the pipelined GEMV
//   BMSYS_CUDA_FLASH [1] (tensor-core attention)  BMSYS_CUDA_SYNC [0] (synchronize and
//   check after every op, naming the failing one).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "runtime/backends/backend.h"

namespace bmsys::rt {

// Number of visible CUDA devices (0 when there is no driver or GPU).
int cuda_device_count();
// "NVIDIA H200 (sm_90, 139 GiB)" for `device`, or an explanation when unavailable.
std::string cuda_device_description(int device);

class CudaBackend : public Backend {
 public:
  explicit CudaBackend(const BackendOptions& opts);
  ~CudaBackend() override;

  std::string name() const override { return "cuda"; }
  std::string description() const override;
  bool supports(KernelId kernel) const override;
  bool supports_dtype(DType dtype) const override;
  std::unique_ptr<DeviceMemory> allocate(size_t bytes, const std::string& what) override;
  void fill_zero(void* dst, size_t bytes) override;
  void upload(void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t count) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override;
  void launch(const KernelLaunch& launch) override;
  void synchronize() override;
  void check_memory_plan(uint64_t bytes, const std::string& plan) override;
  std::string memory_report() const override;
  uint64_t device_memory_bytes() const override;
  double last_flush_seconds() const override { return stats().last_flush_ms * 1e-3; }
  // Swap slots (bmsys-memory-schedule): pinned host memory; copies on a swap stream of
  // their own, ordered against the compute stream by one ready and one free event per
  // slot. A backend that swaps runs without CUDA graphs (per-layer flushes).
  std::unique_ptr<DeviceMemory> allocate_host(size_t bytes, const std::string& what) override;
  void swap_in(int slot, void* dst, const void* src, size_t bytes) override;
  void acquire_slot(int slot) override;
  void release_slot(int slot) override;
  std::shared_ptr<Communicator> create_communicator(const DistributedEnv& env,
                                                    std::shared_ptr<RendezvousStore> store) override;
  // Attention with a cache honours LaunchContext::batch_offset (batched generation).
  bool supports_batch_offset() const override { return true; }
  // Decoding fed on the device: the pick's kernels (pick.cu: argmax, or the sort and the
  // draw) after the queued launches, the ids copied into a ring of pinned slots on the
  // compute stream, an event per slot.
  uint64_t queue_pick(const void* x, DType dtype, int64_t rows, int64_t V, int64_t stride, void* dst,
                      const PickOptions& pick = {}, const std::vector<double>& uniforms = {}) override;
  std::vector<int64_t> picked_ids(uint64_t ticket) override;

  // --- Beyond the Backend interface (tests, benchmarks) ---
  struct Stats {
    int64_t flushes = 0, eager_flushes = 0, graph_captures = 0, graph_replays = 0;
    int64_t ops = 0, launches_saved = 0;  // ops queued; launches saved by fusion
    int64_t forked_linears = 0;           // linears run beside another (BMSYS_CUDA_FORK)
    double launch_host_us = 0;            // host time spent queueing launches
    double last_flush_ms = 0;             // device time of the last flush
    // bmsys-offload: copies on the offload copy stream, and CPU optimizer steps.
    int64_t offload_copies = 0, host_steps = 0;
    uint64_t offload_bytes = 0;
  };
  Stats stats() const;
  // Device argmax of every row of a [rows, V] float tensor in this backend's memory.
  void argmax_rows(const TensorView& x, int64_t* host_out);
  // Starts or stops writing trace slices (the file given at construction, or `path`).
  void set_trace(const std::string& path);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

std::unique_ptr<Backend> create_cuda_backend(const BackendOptions& opts);

}  // namespace bmsys::rt
