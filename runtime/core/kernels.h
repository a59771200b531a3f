// The kernel set of docs/kernels.md as the runtime knows it: ids, names, operand
// counts, attributes (checked when an artifact is loaded) and the shape/dtype rules
// of a launch (checked by the executor before every launch, for every backend).
//
// Adding a kernel: add an id to KernelId, a row to the table in kernels.cpp
// (name, operand counts, attributes), its shape rules in check_launch(), then
// implement it in every backend's launch() (backends/cpu/cpu_backend.cpp).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/core/dtype.h"
#include "runtime/core/tensor.h"

namespace bmsys::rt {

class Communicator;

enum class KernelId : uint16_t {
  Positions,
  Embedding,
  Linear,
  Slice,
  LayerNorm,
  RmsNorm,
  Rope,
  Attention,
  Gelu,
  Silu,
  Add,
  Mul,
  CrossEntropy,
  // Training kernels (docs/kernels.md "Training kernels").
  EmbeddingGrad,
  LinearGradInput,
  LinearGradWeight,
  SumRows,
  SliceGrad,
  LayerNormGrad,
  RmsNormGrad,
  RopeGrad,
  AttentionGrad,
  GeluGrad,
  SiluGrad,
  CrossEntropyGrad,
  GlobalNorm,
  AdamW,
  Sgd,
  // Collectives (docs/kernels.md "Collectives"), through LaunchContext::comm.
  AllReduce,
  ReduceScatter,
  AllGather,
  SyncParam,
  // Quantized inference (docs/kernels.md "Quantization").
  LinearInt8,
  FakeQuant,
  // Tensor parallelism (docs/kernels.md "Collectives"), through LaunchContext::tp_comm.
  TpAllReduce,
  // Element type conversion (bmsys-mixed-precision's casts between f32 master weights
  // and bf16/f16 compute).
  Cast,
  // Knowledge distillation (docs/kernels.md "Distillation").
  DistillSoftCe,
  DistillSoftCeGrad,
  DistillHiddenMse,
  DistillHiddenMseGrad,
  // Mixture of experts (docs/kernels.md "MoE").
  MoeFfn,
  // Optimizer offload (bmsys-offload; docs/kernels.md "Optimizer offload"): a device ->
  // host copy, and the host master's copy into the device parameter.
  ToHost,
  UploadMaster,
  // Pipeline parallelism (docs/kernels.md "Pipeline parallelism"), through
  // LaunchContext::pp_comm.
  PpSend,
  PpRecv,
  PpBroadcast,
  PpMean,
  // Fused elementwise kernels (bmsys-fuse-elementwise; docs/kernels.md "Fused kernels"):
  // one pass over memory where the unfused ops make several.
  SwiGlu,
  SwiGluGrad,
  AddRmsNorm,
  RmsNormGradAdd,
  // rope of q and k inside attention (bmsys.rope_attention): inputs q, k, v, pos and,
  // with a KV cache, k_cache, v_cache (4 and 5).
  RopeAttention,
  kCount
};

enum class AttrType : uint8_t { Int, Float, String, Ints, Floats };

// One attribute value, decoded from the artifact.
struct AttrValue {
  AttrType type = AttrType::Int;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::string str;
};
// A value of each scalar type (for launches built in code: tests, bmsys-run calibrate).
inline AttrValue int_attr(int64_t v) {
  AttrValue a;
  a.type = AttrType::Int;
  a.ints = {v};
  return a;
}
inline AttrValue float_attr(double v) {
  AttrValue a;
  a.type = AttrType::Float;
  a.floats = {v};
  return a;
}
inline AttrValue str_attr(std::string v) {
  AttrValue a;
  a.type = AttrType::String;
  a.str = std::move(v);
  return a;
}

// The attributes of one instruction. Getters throw bmsys::rt::Error naming the
// attribute when it is missing or of another type (Float getters accept Int).
class Attrs {
 public:
  void set(const std::string& name, AttrValue v) { values_[name] = std::move(v); }
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  int64_t get_int(const std::string& name) const;
  int64_t get_int(const std::string& name, int64_t dflt) const;
  double get_float(const std::string& name) const;
  std::string get_string(const std::string& name) const;
  const std::map<std::string, AttrValue>& all() const { return values_; }

 private:
  const AttrValue& get(const std::string& name) const;
  std::map<std::string, AttrValue> values_;
};

struct AttrSpec {
  const char* name;
  AttrType type;
  bool required;
};

struct KernelSpec {
  KernelId id;
  const char* name;
  int min_inputs;
  int max_inputs;
  int outputs;
  std::vector<AttrSpec> attrs;
  // Input indices the kernel writes (attention writes its KV cache inputs 3 and 4,
  // rope_attention 4 and 5).
  std::vector<int> mutated_inputs;
  // Optimizer kernels update in place: output i is the same buffer as input
  // in_place[i] (adamw: param, m, v = inputs 0, 2, 3). Empty for every other kernel,
  // whose outputs must not overlap any operand.
  std::vector<int> in_place = {};
};

// Whether the kernel is an optimizer update (adamw, sgd): it may write Weight and
// OptimizerState buffers, in place.
bool is_optimizer_kernel(KernelId id);
// Whether the kernel may write Weight / OptimizerState buffers (in place): the
// optimizer kernels and sync_param.
bool writes_persistent(KernelId id);
// Whether the kernel communicates with the other ranks.
bool is_collective_kernel(KernelId id);

const KernelSpec& kernel_spec(KernelId id);
std::optional<KernelId> kernel_from_name(const std::string& name);
const char* kernel_name(KernelId id);

// A buffer as a backend sees it: `data` is an address in the backend's memory
// (host pointer for the CPU, device pointer for CUDA); row-major, contiguous.
struct TensorView {
  void* data = nullptr;
  DType dtype = DType::F32;
  Shape shape;
  int64_t numel() const { return shape_numel(shape); }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  template <typename T> T* as() const { return static_cast<T*>(data); }
};

// Run-time sizes of the current call.
struct LaunchContext {
  int64_t batch = 1;      // B
  int64_t seq = 1;        // S
  int64_t start_pos = 0;  // P
  int64_t max_batch = 1;
  int64_t max_seq = 1;
  int64_t step = 0;       // T: the 1-based training step (0 outside training)
  // L: the dynamic loss scale (docs/kernels.md "Dynamic loss scaling"): kernels with
  // the attribute loss_scaling = 1 multiply (cross_entropy_grad) or divide (adamw,
  // sgd) by it. 1 outside loss-scaled training.
  double loss_scale = 1.0;
  // The first KV-cache row of this call's batch: attention with a cache uses cache rows
  // batch_offset .. batch_offset+B-1 for the call's rows 0..B-1 (per-sequence prefill of
  // batched generation). 0 unless Backend::supports_batch_offset().
  int64_t batch_offset = 0;
  // The data-parallel ranks (never null in an executor's launches; world size 1
  // outside distributed runs). Collective kernels go through it.
  Communicator* comm = nullptr;
  int rank = 0;
  int world_size = 1;
  // The tensor-parallel group (bmsys-tensor-parallel; never null in an executor's
  // launches, size 1 without tensor parallelism): tp_all_reduce, and embedding,
  // cross_entropy(_grad), global_norm with their tensor-parallel attributes.
  Communicator* tp_comm = nullptr;
  int tp_rank = 0;
  int tp_size = 1;
  // The pipeline group (bmsys-pipeline-parallel: the ranks of every stage that hold
  // this rank's rows; never null in an executor's launches, size 1 without
  // pipeline parallelism): pp_send, pp_recv, pp_broadcast, global_norm's pp_stages.
  // pp_rank is this rank's stage.
  Communicator* pp_comm = nullptr;
  int pp_rank = 0;
  int pp_size = 1;
};

struct KernelLaunch {
  KernelId kernel = KernelId::kCount;
  const Attrs* attrs = nullptr;
  std::vector<TensorView> inputs;
  std::vector<TensorView> outputs;
  LaunchContext ctx;
};

// Checks operand counts, ranks, shapes, dtypes and attribute values of a launch
// against docs/kernels.md. Throws bmsys::rt::Error (without instruction context;
// the executor adds it). Backends may assume a launch passed this check.
void check_launch(const KernelLaunch& launch);

// The learning-rate schedule of the optimizer kernels (adamw, sgd), shared by the
// backends and by `bmsys-run train` for its metrics (docs/kernels.md):
// lr_T = lr*T/warmup_steps while T <= warmup_steps; after it, with
// p = clamp((T - warmup_steps) / max(1, total_steps - warmup_steps), 0, 1):
// constant lr; cosine min_lr + (lr - min_lr)(1 + cos(pi p))/2; linear lr + (min_lr - lr) p.
struct LrSchedule {
  enum class Kind : uint8_t { Constant, Cosine, Linear };
  double lr = 0;
  Kind kind = Kind::Constant;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;
  double min_lr = 0;

  // From an adamw/sgd instruction's attributes (schedule attributes are optional:
  // "constant", 0, 0, 0.0). Throws on an unknown schedule name.
  static LrSchedule from_attrs(const Attrs& attrs);
  double at(int64_t step) const;
};

}  // namespace bmsys::rt
