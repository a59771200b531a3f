// The interface every execution backend implements (CPU now, CUDA later).
//
// The executor owns the plan: it asks the backend for memory (the weight
// buffers, the activation pool, the persistent state pool, one buffer per
// function input), uploads weights and inputs through it, and launches each
// instruction in order with TensorViews pointing into that memory. A backend
// never sees FlatBuffers, files or buffer indices; launches arrive already checked
// by check_launch() (runtime/core/kernels.h), so a backend only computes.
//
// Addresses (TensorView::data, DeviceMemory::data) are in the backend's memory
// space: host pointers for the CPU, device pointers for CUDA. Launches may be
// asynchronous; copy_to_host() and synchronize() must observe all earlier work.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/core/dtype.h"
#include "runtime/core/kernels.h"
#include "runtime/core/pick.h"

namespace bmsys::rt {

class Communicator;
class RendezvousStore;
struct DistributedEnv;

// One allocation in a backend's memory; freed by its deleter on destruction.
class DeviceMemory {
 public:
  DeviceMemory(void* data, size_t bytes, std::function<void(void*)> deleter)
      : data_(data), bytes_(bytes), deleter_(std::move(deleter)) {}
  ~DeviceMemory() {
    if (data_ && deleter_) deleter_(data_);
  }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void* data_;
  size_t bytes_;
  std::function<void(void*)> deleter_;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // "cpu", "cuda".
  virtual std::string name() const = 0;
  // One line for `bmsys-run --verbose`/inspect, e.g. "cpu: OpenBLAS, 2 OpenMP threads".
  virtual std::string description() const = 0;
  // Whether launch() implements `kernel` (checked for every instruction at bind time).
  virtual bool supports(KernelId kernel) const = 0;
  // Whether tensors of this dtype can be kernel operands (CPU: f32 and i64).
  virtual bool supports_dtype(DType dtype) const = 0;
  // Whether attention honours LaunchContext::batch_offset (a call's rows at an offset
  // in the KV cache). The executor refuses a nonzero offset otherwise.
  virtual bool supports_batch_offset() const { return false; }

  // Memory. `what` names the allocation in errors ("activation pool", "weight 'wte'").
  // At least 64-byte aligned; contents undefined. bytes == 0 is allowed.
  virtual std::unique_ptr<DeviceMemory> allocate(size_t bytes, const std::string& what) = 0;
  virtual void fill_zero(void* dst, size_t bytes) = 0;

  // Host -> backend copy of `count` elements, converting src_dtype to dst_dtype
  // (float <-> float, int <-> int; see io/convert.h). Used for weights and inputs.
  // `src` may be unaligned (it can point into a memory-mapped safetensors file).
  virtual void upload(void* dst, DType dst_dtype, const void* src, DType src_dtype,
                      int64_t count) = 0;
  // Backend -> host copy of raw bytes (waits for earlier launches).
  virtual void copy_to_host(void* dst, const void* src, size_t bytes) = 0;

  // Runs one instruction. Throws bmsys::rt::Error on failure (for example an
  // embedding id out of range); the executor adds the instruction's context.
  virtual void launch(const KernelLaunch& launch) = 0;

  // Waits for all launched work.
  virtual void synchronize() = 0;

  // Checks, before anything is allocated, that a memory plan of `bytes` in all (the
  // breakdown in `plan`, for the message) fits; throws naming both otherwise. The CPU
  // backend accepts any plan.
  virtual void check_memory_plan(uint64_t bytes, const std::string& plan) {}
  // What the backend holds, for --verbose and benchmarks ("" when it keeps no account).
  virtual std::string memory_report() const { return ""; }
  // The device's memory in bytes (bmsys-run calibrate); 0 when it is the host's.
  virtual uint64_t device_memory_bytes() const { return 0; }
  // Device time of the launches the last synchronize() waited for, in seconds, or -1
  // where the backend does not time them (bmsys-run calibrate; the CPU backend).
  virtual double last_flush_seconds() const { return -1; }

  // Distributed runs (runtime/collectives/communicator.h): a backend whose memory is
  // not host memory returns its own communicator here (NCCL for CUDA), connected
  // through `store` (every rank calls this with the same env shape). nullptr (the
  // default): the runtime uses Gloo, which needs host pointers.
  // The communicator may keep `store` (NCCL names a dead rank through it).
  virtual std::shared_ptr<Communicator> create_communicator(const DistributedEnv& env,
                                                            std::shared_ptr<RendezvousStore> store) {
    return nullptr;
  }

  // Swap slots (bmsys-memory-schedule; runtime/core/swap_schedule.h). Layers that do
  // not fit the device live in host memory from allocate_host() (pinned on CUDA) and
  // are copied into one of two slots of device memory before they run.
  virtual std::unique_ptr<DeviceMemory> allocate_host(size_t bytes, const std::string& what) {
    auto* p = new uint8_t[bytes ? bytes : 1];
    return std::make_unique<DeviceMemory>(p, bytes, [](void* q) { delete[] static_cast<uint8_t*>(q); });
  }
  // Copies `bytes` from host memory (allocate_host) to `dst` in slot `slot` (0 or 1):
  // after every launch issued before the slot's last release_slot(), and before every
  // launch issued after the next acquire_slot(slot). The default copies at once (after
  // synchronizing); CUDA copies on its own stream while the compute stream runs.
  virtual void swap_in(int slot, void* dst, const void* src, size_t bytes) {
    synchronize();
    upload(dst, DType::U8, src, DType::U8, static_cast<int64_t>(bytes));
  }
  // Launches issued after this wait for the slot's last swap_in().
  virtual void acquire_slot(int slot) {}
  // The launches issued so far are the last to read the slot before its next swap_in().
  virtual void release_slot(int slot) {}

  // Decoding fed on the device (Executor::queue_pick, docs/inference.md): after every
  // launch so far, the token picked (pick_token, core/pick.h: greedy, or temperature,
  // top-k and top-p with row r's draw `uniforms[r]`) from each of `rows` rows of `V`
  // values of x (row r starts at element r * stride, all of dtype `dtype`; NaN counts as
  // -inf) is written as int64 to `dst` in backend memory, without waiting for it. The
  // returned ticket gives the ids to picked_ids(), which waits; a ticket stays readable
  // until kPickTickets later ones were queued. The default computes at once on the host
  // (copy_to_host, pick_token, upload); CUDA runs kernels and copies the ids back
  // asynchronously.
  static constexpr uint64_t kPickTickets = 8;
  virtual uint64_t queue_pick(const void* x, DType dtype, int64_t rows, int64_t V, int64_t stride,
                              void* dst, const PickOptions& pick = {}, const std::vector<double>& uniforms = {});
  virtual std::vector<int64_t> picked_ids(uint64_t ticket);

 protected:
  // Throws unless `ticket` was issued and is among the last kPickTickets.
  void check_pick_ticket(uint64_t ticket) const;
  // Throws unless the logits are a float dtype and a draw has one uniform in [0, 1) a row.
  void check_pick(DType dtype, int64_t rows, const PickOptions& pick, const std::vector<double>& uniforms) const;
  uint64_t pick_issued_ = 0;  // tickets 1..pick_issued_

 private:
  std::vector<std::vector<int64_t>> pick_done_ = std::vector<std::vector<int64_t>>(kPickTickets);
  std::vector<double> pick_row_;  // the host default's scratch
  PickScratch pick_scratch_;
};

// Backend options from the command line.
struct BackendOptions {
  int threads = 0;  // CPU: OpenMP/OpenBLAS threads; 0 = library default
  int device = 0;   // CUDA: device ordinal
  std::string trace_path;       // CUDA: write a Chrome trace-event file here
  bool random_weights = false;  // CUDA: fill weights on the device instead of reading them
  uint64_t random_seed = 0;
};

// Creates a backend by name ("cpu", "cuda"); throws naming the available ones.
std::unique_ptr<Backend> create_backend(const std::string& name, const BackendOptions& opts = {});
// Names of the backends compiled into this build.
std::vector<std::string> available_backends();
// "cuda" when this build has the CUDA backend and a GPU is visible, else "cpu".
std::string default_backend();

}  // namespace bmsys::rt
