// The executor: binds an artifact to a backend and runs its functions.
//
// At construction it checks that the backend supports every kernel and dtype the
// artifact uses, allocates the activation pool (activation_pool_bytes), the state
// pool (state_pool_bytes, zeroed; it is the KV cache and survives across calls),
// one buffer per Input at its largest shape, and loads every Weight buffer once
// (shared by all functions). run() binds B and S from the input shapes, checks
// them against max_batch / max_seq, uploads the inputs, launches the function's
// instructions in order with start_pos P and training step T and copies the outputs
// back. OptimizerState buffers live in the state pool too (zeroed at load, kept by
// reset_state()); read_buffer()/write_buffer() give checkpoints access to them and
// to the weights. A rank of a pipelined artifact holds only its stage's buffers:
// its stage's weights and inputs, and its stage's pools (Artifact::held_by,
// activation_pool_for, state_pool_for; docs/distributed.md).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/backends/backend.h"
#include "runtime/core/artifact.h"
#include "runtime/core/tensor.h"

namespace bmsys::rt {

class SafetensorsFile;
class Communicator;
class SwapSchedule;

struct ExecutorOptions {
  // Empty: weight files are relative to the artifact's directory. A file: every
  // weight is read from it. A directory: weight files are resolved in it.
  std::string weights;
  // All ranks of the run (runtime/collectives/communicator.h); null: one process.
  // Its world size must equal the artifact's data_parallel_ranks x
  // tensor_parallel_ranks (or 1); the executor forms the groups (runtime/core/mesh.h).
  std::shared_ptr<Communicator> comm;
};

// Per-call settings of Executor::run.
struct RunOptions {
  int64_t start_pos = 0;    // P
  int64_t step = 0;         // T: the 1-based training step adamw/sgd see; 0 outside training
  double loss_scale = 1.0;  // L: the dynamic loss scale (LaunchContext::loss_scale)
  // The first KV-cache row of this call's batch (LaunchContext::batch_offset);
  // batch_offset + B <= max_batch. Nonzero only on backends that support it.
  int64_t batch_offset = 0;
  // Leave the call queued on the backend: run() returns at once, without outputs (read
  // them through queue_pick, or make a later call that is not queued). Not for
  // pipeline stages.
  bool queued = false;
  // Inputs whose values are already in the executor's input buffer (written there by
  // queue_pick): given with their shape as usual, but not uploaded.
  std::vector<std::string> device_inputs;
};

class Executor {
 public:
  Executor(std::shared_ptr<const Artifact> artifact, std::shared_ptr<Backend> backend,
           const ExecutorOptions& options = {});
  ~Executor();

  // Runs `function` with `inputs` keyed by the function's input buffer names.
  // Returns the outputs keyed by output name. Throws bmsys::rt::Error.
  // `step` is the training step T (1-based) that adamw/sgd see; 0 outside training.
  std::map<std::string, HostTensor> run(const std::string& function,
                                        const std::map<std::string, HostTensor>& inputs,
                                        int64_t start_pos = 0, int64_t step = 0);
  std::map<std::string, HostTensor> run(const std::string& function,
                                        const std::map<std::string, HostTensor>& inputs,
                                        const RunOptions& options);

  // Decoding fed on the device (docs/inference.md): after the last run() (of function F,
  // batch B, sequence S), queues the pick (core/pick.h: greedy by default; a draw needs
  // B uniforms, one a row) over the vocabulary of the last position of F's output
  // `output` [B,S,V] into F's int64 input `input` (its first B values: the [B,1] ids of
  // F's next run, given in RunOptions::device_inputs) and returns a ticket for
  // picked_ids(), which waits for the B ids. With queued runs the host prepares step
  // k+1 while the device still computes step k.
  uint64_t queue_pick(const std::string& output, const std::string& input, const PickOptions& pick = {},
                      const std::vector<double>& uniforms = {});
  std::vector<int64_t> picked_ids(uint64_t ticket) { return backend_->picked_ids(ticket); }

  // Zeroes every State buffer (forgets the KV cache); OptimizerState survives.
  void reset_state();

  // Reads a Weight, State or OptimizerState buffer (static shape) into host memory,
  // converted to `dtype` (default: the buffer's own dtype).
  HostTensor read_buffer(uint32_t index) const;
  HostTensor read_buffer(uint32_t index, DType dtype) const;
  // Overwrites a Weight, State or OptimizerState buffer; `t` must have its shape and a
  // convertible dtype. `what` names the source in errors (a file and tensor).
  void write_buffer(uint32_t index, const HostTensor& t, const std::string& what = "");
  void write_buffer(uint32_t index, const void* data, DType dtype, const Shape& shape,
                    const std::string& what = "");
  // The tensor a Weight/OptimizerState buffer stands for, whole (its logical_shape()):
  // a sharded buffer is all-gathered from every rank's shard, so this is a collective
  // that every rank must call in the same order. Converted to `dtype`.
  HostTensor read_logical(uint32_t index, DType dtype) const;
  // Writes the tensor a buffer stands for (shape == logical_shape()): a sharded buffer
  // takes this rank's slice, zero-padded. Local (no communication).
  void write_logical(uint32_t index, const void* data, DType dtype, const Shape& shape,
                     const std::string& what = "");
  // Buffer index by name; throws naming the artifact when absent.
  uint32_t buffer_index(const std::string& name) const;

  const Artifact& artifact() const { return *artifact_; }
  Backend& backend() { return *backend_; }
  // All ranks (checkpoints: rank 0 writes, the others wait at a barrier).
  Communicator& comm() const { return *comm_; }
  int rank() const;
  int world_size() const;
  // This rank's data-parallel group (ZeRO's collectives; the rows of the batch)
  // and tensor-parallel group (docs/distributed.md "Rank layout").
  Communicator& dp_comm() const { return *dp_comm_; }
  Communicator& tp_comm() const { return *tp_comm_; }
  int dp_rank() const;
  int dp_size() const;
  // Pipeline parallelism: this rank's stage (0 without), and the function run()
  // runs for `name` on this rank: `name.stage<s>` of a pipelined artifact (the
  // stage's training step; other functions need every stage's weights and are
  // refused), `name` otherwise. Throws naming the artifact when there is none.
  int pp_stage() const;
  const FunctionDesc& function_for(const std::string& name) const;

 private:
  void load_weights(const ExecutorOptions& options);
  void* address(uint32_t buffer) const;
  void upload_slice(uint32_t index, const void* src, DType src_dtype, int64_t numel, const std::string& what);
  HostTensor read_local(uint32_t index, DType dtype) const;
  void write_local(uint32_t index, const void* data, DType dtype, const Shape& shape, const std::string& src);

  std::shared_ptr<const Artifact> artifact_;
  std::shared_ptr<Backend> backend_;
  std::shared_ptr<Communicator> comm_;
  std::shared_ptr<Communicator> dp_comm_;
  std::shared_ptr<Communicator> tp_comm_;
  std::shared_ptr<Communicator> pp_comm_;  // the same rows and slice on every stage
  // Pipeline parallelism: the stage whose function reads or writes each buffer (-1:
  // none, or no pipeline). A rank allocates and loads only its stage's weights.
  std::vector<int> buffer_stage_;
  bool on_other_stage(uint32_t index) const;
  std::unique_ptr<DeviceMemory> activation_pool_;
  std::unique_ptr<DeviceMemory> state_pool_;
  std::vector<std::unique_ptr<DeviceMemory>> owned_;  // weights and inputs, by buffer index
  std::unique_ptr<SwapSchedule> swap_;                // bmsys-memory-schedule, or null
  // The launches of a function at (B, S) and a context (all of it but start_pos), built
  // and checked on the first such call and reused by the next ones: decode steps
  // differ only in start_pos, so they skip rebuilding views and the static checks.
  struct LaunchRecords {
    const FunctionDesc* function = nullptr;
    LaunchContext ctx;
    std::vector<KernelLaunch> launches;
  };
  std::vector<LaunchRecords> launch_cache_;  // most recently used last; a few entries
  // The last run()'s function and its bound B and S (queue_pick).
  const FunctionDesc* last_function_ = nullptr;
  int64_t last_batch_ = 0, last_seq_ = 0;
};

}  // namespace bmsys::rt
