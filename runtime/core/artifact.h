// Loading and validating a .bmsys artifact (runtime/schemas/artifact.fbs).
//
// load_artifact() reads the file, checks the "BMSY" identifier, runs the
// FlatBuffers Verifier, checks format_version == kArtifactFormatVersion and then
// validates semantically (buffer indices, kernel names, operand counts,
// attribute types, dims, pool offsets and sizes). The result is a plain C++
// description; nothing else in the runtime touches FlatBuffers.
// Errors read like: model.bmsys: function 'forward': instruction 12 (kernel 'rope',
// at "loc"): input 3 out of range (buffer index 99, the artifact has 40 buffers)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/core/dtype.h"
#include "runtime/core/kernels.h"
#include "runtime/core/tensor.h"

namespace bmsys::rt {

enum class DimKind : uint8_t { Static = 0, Batch = 1, Seq = 2 };
struct DimDesc {
  DimKind kind = DimKind::Static;
  int64_t value = 0;  // Static only
};

// OptimizerState: like State (at `offset` in the state pool, zeroed at load), but kept
// by reset_state() and saved in / restored from training checkpoints under its name.
enum class BufferKind : uint8_t { Input = 0, Weight = 1, Activation = 2, State = 3, OptimizerState = 4 };
const char* buffer_kind_name(BufferKind k);
// bmsys-offload: where a buffer lives. Host buffers are host memory (pinned on CUDA),
// allocated per buffer (a host State/OptimizerState is not in the state pool); only
// to_host, upload_master and adamw with offload = 1 touch them (checked at load).
enum class Placement : uint8_t { Device = 0, Host = 1 };

struct BufferDesc {
  std::string name;
  DType dtype = DType::F32;
  std::vector<DimDesc> dims;
  BufferKind kind = BufferKind::Activation;
  uint64_t offset = 0;
  uint64_t bytes = 0;
  std::string weight_file;
  std::string weight_key;
  // ZeRO (Weight, OptimizerState): this rank's flat shard of a tensor of
  // `full_shape` over `shard_ranks` ranks; the buffer's shape is [ceil(n/R)].
  uint32_t shard_ranks = 0;
  Shape full_shape;

  // Tensor parallelism (Weight, OptimizerState): slice tp_rank of `tp_ranks`
  // equal slices along dimension `tp_dim` of the stored tensor.
  uint32_t tp_ranks = 0;
  uint32_t tp_dim = 0;
  // bmsys-memory-schedule (Weight): the swapped layer this weight belongs to, an
  // index into Artifact::schedule.groups; -1: resident.
  int32_t swap_group = -1;
  // bmsys-offload (Weight, State, OptimizerState): Host for the fp32 master weights,
  // the optimizer states and the gradient copies of the CPU optimizer step.
  Placement placement = Placement::Device;

  bool host() const { return placement == Placement::Host; }
  // Lives in the activation pool or the state pool (not its own allocation).
  bool pooled() const {
    return !host() && (kind == BufferKind::Activation || kind == BufferKind::State ||
                       kind == BufferKind::OptimizerState);
  }
  bool sharded() const { return shard_ranks > 1; }
  bool tp_sliced() const { return tp_ranks > 1; }
  // The tensor this rank's buffer stands for: full_shape when ZeRO-sharded,
  // otherwise the static shape (a tensor-parallel slice of the stored tensor).
  Shape local_shape() const { return sharded() ? full_shape : resolve(0, 0); }
  // The tensor as checkpoints and weight files hold it: local_shape() with the
  // tensor-parallel dimension whole.
  Shape logical_shape() const {
    Shape s = local_shape();
    if (tp_sliced()) s[tp_dim] *= tp_ranks;
    return s;
  }
  Shape resolve(int64_t batch, int64_t seq) const;
  std::string dims_str() const;  // "[B,S,64]"
};

struct InstructionDesc {
  KernelId kernel = KernelId::kCount;
  std::vector<uint32_t> inputs;
  std::vector<uint32_t> outputs;
  Attrs attrs;
  std::string location;
};

struct FunctionDesc {
  std::string name;
  std::vector<uint32_t> inputs;
  std::vector<uint32_t> outputs;
  std::vector<std::string> output_names;  // one per output (buffer name when absent)
  std::vector<InstructionDesc> instructions;
  // Pipeline parallelism: the stage whose ranks run it (bmsys-pipeline-schedule's
  // `train_step.stage<s>`, inputs `input_ids.mb<m>`); -1: any rank.
  int32_t pipeline_stage = -1;
};

// bmsys-memory-schedule's plan (runtime/core/swap_schedule.h). Empty groups: none.
struct MemoryScheduleDesc {
  std::vector<int64_t> groups;    // layer number of each swapped group, in execution order
  std::vector<int64_t> resident;  // layer numbers kept in device memory
  uint64_t budget = 0, slot_bytes = 0, bytes_per_token = 0;
  double link_gbps = 0;
  bool present() const { return !groups.empty(); }
};

struct Artifact {
  std::string path;       // as given, used in messages
  std::string directory;  // weight files are relative to it
  uint32_t format_version = 0;
  std::string producer;
  std::string model_config;
  int64_t max_batch = 0;
  int64_t max_seq = 0;
  uint64_t activation_pool_bytes = 0;
  uint64_t state_pool_bytes = 0;
  std::vector<BufferDesc> buffers;
  std::vector<FunctionDesc> functions;
  // Data-parallel ranks the artifact was compiled for (bmsys-zero); 0 or 1: one
  // process. A run must have exactly this world size.
  uint32_t data_parallel_ranks = 0;
  // Tensor-parallel ranks (bmsys-tensor-parallel); 0 or 1: none. The world is
  // data_parallel_ranks x tensor_parallel_ranks (docs/distributed.md).
  uint32_t tensor_parallel_ranks = 0;
  MemoryScheduleDesc schedule;
  // Pipeline stages (bmsys-pipeline-parallel); 0 or 1: none. The world is
  // pipeline_stages x data_parallel_ranks x tensor_parallel_ranks, stage outermost.
  uint32_t pipeline_stages = 0;
  uint32_t pipeline_micro_batches = 0;
  // Pipeline parallelism (bmsys-plan-memory): the pools of stage s's ranks, indexed by
  // stage; empty in artifacts planned before per-stage pools (every rank then allocates
  // activation_pool_bytes and state_pool_bytes).
  std::vector<uint64_t> stage_activation_pool_bytes;
  std::vector<uint64_t> stage_state_pool_bytes;
  // Pipelined artifacts: the stage of the function that uses each buffer (an operand
  // of its instructions, an input or an output); -1: no stage's function uses it.
  // Empty without pipeline parallelism.
  std::vector<int32_t> buffer_stage;

  const FunctionDesc* find_function(const std::string& name) const;
  bool stage_pools() const { return !stage_state_pool_bytes.empty(); }
  // The pools a rank of pipeline stage `stage` allocates (0 without pipelining).
  uint64_t activation_pool_for(int stage) const {
    return stage_pools() ? stage_activation_pool_bytes.at(static_cast<size_t>(stage)) : activation_pool_bytes;
  }
  uint64_t state_pool_for(int stage) const {
    return stage_pools() ? stage_state_pool_bytes.at(static_cast<size_t>(stage)) : state_pool_bytes;
  }
  // Whether a rank of pipeline stage `stage` holds buffer `index` (allocates, loads or
  // addresses it): every buffer without pipelining; otherwise those of its stage's
  // functions and those of no stage's function, except, with per-stage pools, the
  // pool buffers of no stage's function (a pipelined artifact runs only the stages).
  bool held_by(uint32_t index, int stage) const {
    if (buffer_stage.empty()) return true;
    const int32_t s = buffer_stage.at(index);
    if (s >= 0) return s == stage;
    return !(stage_pools() && buffers.at(index).pooled());
  }
  // Index of the buffer named `name`, or -1.
  int64_t find_buffer(const std::string& name) const;
  // "instruction 12 (kernel 'rope', at "loc")" for messages.
  static std::string describe(size_t index, const InstructionDesc& inst);
};

inline constexpr uint64_t kMaxArtifactBytes = 2ull << 30;  // FlatBuffers' own limit
// Pool sizes the loader accepts (docs/hardening.md, "Limits"): a pool may extend
// at most kMaxPoolAlignment bytes past the end of its last buffer (the largest
// alignment bmsys-plan-memory accepts) and is at most kMaxPoolBytes (1 PiB).
inline constexpr uint64_t kMaxPoolAlignment = 1ull << 20;
inline constexpr uint64_t kMaxPoolBytes = 1ull << 50;

// Reads and validates a .bmsys file. Throws bmsys::rt::Error naming `path`.
std::shared_ptr<const Artifact> load_artifact(const std::string& path);
// Same, from bytes in memory; `name` is used in messages and `directory` for weights.
std::shared_ptr<const Artifact> load_artifact_from_memory(const uint8_t* data, size_t size,
                                                          const std::string& name,
                                                          const std::string& directory);

}  // namespace bmsys::rt
