#include "runtime/core/artifact.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>

#include "runtime/core/error.h"
#include "runtime/core/version.h"
#include "runtime/schemas/artifact_generated.h"

namespace fb = bmsys::artifact;

namespace bmsys::rt {

const char* buffer_kind_name(BufferKind k) {
  switch (k) {
    case BufferKind::Input: return "input";
    case BufferKind::Weight: return "weight";
    case BufferKind::Activation: return "activation";
    case BufferKind::State: return "state";
    case BufferKind::OptimizerState: return "optimizer_state";
  }
  return "?";
}

Shape BufferDesc::resolve(int64_t batch, int64_t seq) const {
  Shape s;
  s.reserve(dims.size());
  for (const DimDesc& d : dims)
    s.push_back(d.kind == DimKind::Batch ? batch : d.kind == DimKind::Seq ? seq : d.value);
  return s;
}

std::string BufferDesc::dims_str() const {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ",";
    s += dims[i].kind == DimKind::Batch ? "B"
         : dims[i].kind == DimKind::Seq ? "S"
                                        : std::to_string(dims[i].value);
  }
  return s + "]";
}

const FunctionDesc* Artifact::find_function(const std::string& name) const {
  for (const FunctionDesc& f : functions)
    if (f.name == name) return &f;
  return nullptr;
}

int64_t Artifact::find_buffer(const std::string& name) const {
  for (size_t i = 0; i < buffers.size(); ++i)
    if (buffers[i].name == name) return static_cast<int64_t>(i);
  return -1;
}

std::string Artifact::describe(size_t index, const InstructionDesc& inst) {
  std::string s = fmt::format("instruction {} (kernel '{}'", index,
                              inst.kernel == KernelId::kCount ? "?" : kernel_name(inst.kernel));
  if (!inst.location.empty()) s += fmt::format(", at \"{}\"", inst.location);
  return s + ")";
}

namespace {
void check_placement(const std::vector<BufferDesc>& buffers, const InstructionDesc& id, const std::string& where);
void check_stage_pools(const fb::Artifact* root, Artifact& a);

std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

template <typename T>
std::vector<T> vec(const flatbuffers::Vector<T>* v) {
  return v ? std::vector<T>(v->begin(), v->end()) : std::vector<T>();
}

// FlatBuffers 2.0.8's Verifier checks a vector's length for 4-byte alignment but
// not that the elements of a vector of 8-byte scalars or structs are 8-byte
// aligned: the builder always aligns them, a crafted or corrupted file need not,
// and reading them would be a misaligned load (UB; a fault on strict-alignment
// targets). The buffer itself is 8-byte aligned (load_artifact_from_memory), so
// checking each such vector's data address is enough. An empty vector has no
// element to read (and the builder does not always align one).
template <typename V>
void check_aligned(const V* v, const std::string& where, const char* field) {
  if (v && v->size() > 0 && reinterpret_cast<uintptr_t>(v->Data()) % 8 != 0)
    fail("{}: '{}' data is not 8-byte aligned (corrupted artifact)", where, field);
}

std::shared_ptr<Artifact> decode_and_validate(const fb::Artifact* root, const std::string& path) {
  auto a = std::make_shared<Artifact>();
  a->path = path;
  a->format_version = root->format_version();
  a->producer = str(root->producer());
  a->model_config = str(root->model_config());
  a->max_batch = root->max_batch();
  a->max_seq = root->max_seq();
  a->activation_pool_bytes = root->activation_pool_bytes();
  a->state_pool_bytes = root->state_pool_bytes();
  a->data_parallel_ranks = root->data_parallel_ranks();
  a->tensor_parallel_ranks = root->tensor_parallel_ranks();
  if (a->tensor_parallel_ranks > 65536)
    fail("{}: tensor_parallel_ranks {} is implausible", path, a->tensor_parallel_ranks);
  a->pipeline_stages = root->pipeline_stages();
  a->pipeline_micro_batches = root->pipeline_micro_batches();
  if (a->pipeline_stages > 65536 || a->pipeline_micro_batches > 65536)
    fail("{}: pipeline_stages {} / pipeline_micro_batches {} is implausible", path, a->pipeline_stages,
         a->pipeline_micro_batches);
  if (a->pipeline_stages > 1 && a->pipeline_micro_batches < 1)
    fail("{}: pipeline_stages is {} but pipeline_micro_batches is 0", path, a->pipeline_stages);
  if (a->data_parallel_ranks > 65536)
    fail("{}: data_parallel_ranks {} is implausible", path, a->data_parallel_ranks);
  if (a->max_batch < 1) fail("{}: max_batch must be >= 1, not {}", path, a->max_batch);
  if (a->max_seq < 1) fail("{}: max_seq must be >= 1, not {}", path, a->max_seq);

  // Buffers.
  if (root->buffers()) {
    uint32_t index = 0;
    std::set<std::string> names;
    for (const fb::Buffer* b : *root->buffers()) {
      BufferDesc d;
      d.name = str(b->name());
      std::string where = fmt::format("{}: buffer {} ('{}')", path, index, d.name);
      if (d.name.empty()) fail("{}: buffer {} has no name", path, index);
      int dt = static_cast<int>(b->dtype());
      if (dt < 0 || dt > static_cast<int>(fb::DType_MAX)) fail("{}: unknown dtype {}", where, dt);
      d.dtype = static_cast<DType>(dt);
      int kind = static_cast<int>(b->kind());
      if (kind < 0 || kind > static_cast<int>(fb::BufferKind_MAX))
        fail("{}: unknown buffer kind {}", where, kind);
      d.kind = static_cast<BufferKind>(kind);
      // Inputs are named per function (two functions may both take
      // "input_ids"); every other buffer has an artifact-wide name.
      if (d.kind != BufferKind::Input && !names.insert(d.name).second)
        fail("{}: duplicate buffer name", where);
      d.offset = b->offset();
      d.bytes = b->bytes();
      d.weight_file = str(b->weight_file());
      d.weight_key = str(b->weight_key());
      check_aligned(b->shape(), where, "shape");
      check_aligned(b->full_shape(), where, "full_shape");
      if (b->shape()) {
        for (const fb::Dim* dim : *b->shape()) {
          int k = static_cast<int>(dim->kind());
          if (k < 0 || k > static_cast<int>(fb::DimKind_MAX)) fail("{}: unknown dim kind {}", where, k);
          DimDesc dd{static_cast<DimKind>(k), dim->value()};
          if (dd.kind == DimKind::Static && dd.value < 0)
            fail("{}: negative dimension {}", where, dd.value);
          if (dd.kind != DimKind::Static) dd.value = 0;
          d.dims.push_back(dd);
        }
      }
      // Size at the largest shape, overflow-checked.
      int64_t numel = 1;
      for (int64_t v : d.resolve(a->max_batch, a->max_seq))
        if (!checked_mul(numel, v, &numel)) fail("{}: shape {} is too large", where, d.dims_str());
      int64_t need = 0;
      if (!checked_mul(numel, static_cast<int64_t>(dtype_size(d.dtype)), &need))
        fail("{}: shape {} is too large", where, d.dims_str());
      d.shard_ranks = b->shard_ranks();
      if (d.shard_ranks > 1) {
        if (d.kind != BufferKind::Weight && d.kind != BufferKind::OptimizerState)
          fail("{}: only weights and optimizer states can be sharded (shard_ranks {})", where, d.shard_ranks);
        if (d.shard_ranks != std::max<uint32_t>(a->data_parallel_ranks, 1))
          fail("{}: sharded over {} ranks, but the artifact's data_parallel_ranks is {}", where, d.shard_ranks,
               a->data_parallel_ranks);
        if (!b->full_shape()) fail("{}: a sharded buffer needs full_shape", where);
        int64_t full = 1;
        for (int64_t v : *b->full_shape()) {
          if (v < 0 || !checked_mul(full, v, &full)) fail("{}: full_shape is invalid or too large", where);
          d.full_shape.push_back(v);
        }
        Shape want = {(full + d.shard_ranks - 1) / d.shard_ranks};
        if (d.resolve(0, 0) != want)
          fail("{}: a shard of full_shape {} over {} ranks has shape {}, not {}", where, shape_str(d.full_shape),
               d.shard_ranks, shape_str(want), d.dims_str());
      }
      d.tp_ranks = b->tp_ranks();
      d.tp_dim = b->tp_dim();
      if (d.tp_ranks > 1) {
        if (d.kind != BufferKind::Weight && d.kind != BufferKind::OptimizerState)
          fail("{}: only weights and optimizer states can be tensor-parallel slices (tp_ranks {})", where,
               d.tp_ranks);
        if (d.tp_ranks != std::max<uint32_t>(a->tensor_parallel_ranks, 1))
          fail("{}: sliced over {} tensor-parallel ranks, but the artifact's tensor_parallel_ranks is {}", where,
               d.tp_ranks, a->tensor_parallel_ranks);
        Shape local = d.local_shape();
        if (d.tp_dim >= local.size()) fail("{}: tp_dim {} is not a dimension of {}", where, d.tp_dim, shape_str(local));
        int64_t whole = 0;
        if (!checked_mul(local[d.tp_dim], static_cast<int64_t>(d.tp_ranks), &whole))
          fail("{}: tp_ranks {} is too large", where, d.tp_ranks);
      }
      d.swap_group = b->swap_group();
      if (d.swap_group != -1 && (d.kind != BufferKind::Weight || d.swap_group < 0))
        fail("{}: swap_group {} (only weights can be swapped, groups count from 0)", where, d.swap_group);
      {
        int pl = static_cast<int>(b->placement());
        if (pl < 0 || pl > static_cast<int>(fb::Placement_MAX)) fail("{}: unknown placement {}", where, pl);
        d.placement = static_cast<Placement>(pl);
        if (d.host() && (d.kind == BufferKind::Input || d.kind == BufferKind::Activation || d.swap_group >= 0))
          fail("{}: only weights, states and optimizer states can live in host memory (placement Host)", where);
      }
      switch (d.kind) {
        case BufferKind::Weight:
          for (const DimDesc& dd : d.dims)
            if (dd.kind != DimKind::Static) fail("{}: a weight must have a static shape, not {}", where, d.dims_str());
          if (d.weight_file.empty() || d.weight_key.empty())
            fail("{}: a weight needs weight_file and weight_key", where);
          break;
        case BufferKind::OptimizerState:
          for (const DimDesc& dd : d.dims)
            if (dd.kind != DimKind::Static)
              fail("{}: an optimizer state must have a static shape, not {}", where, d.dims_str());
          [[fallthrough]];
        case BufferKind::Activation:
        case BufferKind::State: {
          bool in_state_pool = d.kind != BufferKind::Activation;
          uint64_t pool = in_state_pool ? a->state_pool_bytes : a->activation_pool_bytes;
          const char* pool_name = in_state_pool ? "state" : "activation";
          if (d.bytes < static_cast<uint64_t>(need))
            fail("{}: bytes {} is less than the {} its shape {} of {} needs at B={}, S={}", where,
                 d.bytes, need, d.dims_str(), dtype_name(d.dtype), a->max_batch, a->max_seq);
          if (d.host()) break;  // bmsys-offload: its own host allocation, not in a pool
          if (d.offset > pool || d.bytes > pool - d.offset)
            fail("{}: [offset {}, +{} bytes) is outside the {} pool ({} bytes)", where, d.offset,
                 d.bytes, pool_name, pool);
          if (d.offset % dtype_size(d.dtype) != 0)
            fail("{}: offset {} is not aligned to its {}-byte elements", where, d.offset,
                 dtype_size(d.dtype));
          break;
        }
        case BufferKind::Input:
          break;
      }
      a->buffers.push_back(std::move(d));
      ++index;
    }
  }
  const size_t nbuf = a->buffers.size();

  // The memory schedule: every swap group is a swapped layer of the plan.
  if (const fb::MemorySchedule* ms = root->memory_schedule()) {
    const std::string where = path + ": memory_schedule";
    check_aligned(ms->groups(), where, "groups");
    check_aligned(ms->resident(), where, "resident");  // empty when every layer is swapped
    MemoryScheduleDesc& s = a->schedule;
    s.groups = vec(ms->groups());
    s.resident = vec(ms->resident());
    s.budget = ms->budget();
    s.slot_bytes = ms->slot_bytes();
    s.bytes_per_token = ms->bytes_per_token();
    s.link_gbps = ms->link_gbps();
    if (s.groups.size() > nbuf) fail("{}: {} swap groups for {} buffers", where, s.groups.size(), nbuf);
  }
  for (const BufferDesc& d : a->buffers)
    if (d.swap_group >= 0 && static_cast<size_t>(d.swap_group) >= a->schedule.groups.size())
      fail("{}: buffer '{}': swap_group {} but the memory schedule has {} groups", path, d.name, d.swap_group,
           a->schedule.groups.size());

  // The pools: each at most the end of its last buffer plus the planner's
  // alignment padding (bmsys-plan-memory rounds every buffer up to at most
  // kMaxPoolAlignment; bmsys-lower-to-rt rounds the state pool to 256), and at
  // most kMaxPoolBytes. The executor allocates both and zeroes the state pool,
  // so a size nothing in the artifact uses is refused, not attempted.
  uint64_t activation_end = 0, state_end = 0;
  for (const BufferDesc& d : a->buffers) {
    if (d.kind == BufferKind::Activation) activation_end = std::max(activation_end, d.offset + d.bytes);
    if ((d.kind == BufferKind::State || d.kind == BufferKind::OptimizerState) && !d.host())
      state_end = std::max(state_end, d.offset + d.bytes);  // inside the pool: checked above, no wrap
  }
  auto check_pool = [&](const char* pool_name, uint64_t bytes, uint64_t end) {
    if (bytes > kMaxPoolBytes)
      fail("{}: the {} pool of {} bytes is larger than the {} bytes a pool may have", path, pool_name, bytes,
           kMaxPoolBytes);
    if (bytes - end > kMaxPoolAlignment)
      fail("{}: the {} pool is {} bytes, but its buffers end at byte {} (at most {} bytes of padding are "
           "allowed): corrupted artifact",
           path, pool_name, bytes, end, kMaxPoolAlignment);
  };
  check_pool("activation", a->activation_pool_bytes, activation_end);
  check_pool("state", a->state_pool_bytes, state_end);

  // Functions.
  if (root->functions()) {
    std::set<std::string> fnames;
    for (const fb::Function* f : *root->functions()) {
      FunctionDesc fd;
      fd.name = str(f->name());
      if (fd.name.empty()) fail("{}: a function has no name", path);
      if (!fnames.insert(fd.name).second) fail("{}: duplicate function '{}'", path, fd.name);
      std::string fwhere = fmt::format("{}: function '{}'", path, fd.name);
      fd.pipeline_stage = f->pipeline_stage();
      if (fd.pipeline_stage >= 0 && static_cast<uint32_t>(fd.pipeline_stage) >= std::max<uint32_t>(a->pipeline_stages, 1))
        fail("{}: pipeline stage {} outside the artifact's {} stages", fwhere, fd.pipeline_stage, a->pipeline_stages);
      fd.inputs = vec(f->inputs());
      fd.outputs = vec(f->outputs());
      std::set<std::string> input_names;
      for (size_t i = 0; i < fd.inputs.size(); ++i) {
        if (fd.inputs[i] >= nbuf)
          fail("{}: input {} out of range (buffer index {}, the artifact has {} buffers)", fwhere, i, fd.inputs[i], nbuf);
        if (a->buffers[fd.inputs[i]].kind != BufferKind::Input)
          fail("{}: input {} is buffer '{}' of kind {}, not input", fwhere, i,
               a->buffers[fd.inputs[i]].name, buffer_kind_name(a->buffers[fd.inputs[i]].kind));
        if (!input_names.insert(a->buffers[fd.inputs[i]].name).second)
          fail("{}: two inputs named '{}'", fwhere, a->buffers[fd.inputs[i]].name);
      }
      for (size_t i = 0; i < fd.outputs.size(); ++i)
        if (fd.outputs[i] >= nbuf)
          fail("{}: output {} out of range (buffer index {}, the artifact has {} buffers)", fwhere, i, fd.outputs[i], nbuf);
      if (f->output_names()) {
        if (f->output_names()->size() != fd.outputs.size())
          fail("{}: {} output_names for {} outputs", fwhere, f->output_names()->size(), fd.outputs.size());
        for (const flatbuffers::String* s : *f->output_names()) fd.output_names.push_back(s->str());
      } else {
        for (uint32_t o : fd.outputs) fd.output_names.push_back(a->buffers[o].name);
      }
      std::set<std::string> onames;
      for (const std::string& n : fd.output_names)
        if (n.empty() || !onames.insert(n).second) fail("{}: empty or duplicate output name '{}'", fwhere, n);

      if (f->instructions()) {
        size_t idx = 0;
        for (const fb::Instruction* in : *f->instructions()) {
          InstructionDesc id;
          id.location = str(in->location());
          std::string kname = str(in->kernel());
          auto k = kernel_from_name(kname);
          if (!k) {
            std::string loc = id.location.empty() ? "" : fmt::format(", at \"{}\"", id.location);
            fail("{}: instruction {} (kernel '{}'{}): unknown kernel", fwhere, idx, kname, loc);
          }
          id.kernel = *k;
          std::string where = fmt::format("{}: {}", fwhere, Artifact::describe(idx, id));
          const KernelSpec& spec = kernel_spec(id.kernel);
          id.inputs = vec(in->inputs());
          id.outputs = vec(in->outputs());
          int nin = static_cast<int>(id.inputs.size()), nout = static_cast<int>(id.outputs.size());
          if (nin < spec.min_inputs || nin > spec.max_inputs) {
            if (spec.min_inputs == spec.max_inputs)
              fail("{}: takes {} inputs, has {}", where, spec.min_inputs, nin);
            fail("{}: takes {} to {} inputs, has {}", where, spec.min_inputs, spec.max_inputs, nin);
          }
          if (nout != spec.outputs) fail("{}: takes {} outputs, has {}", where, spec.outputs, nout);
          for (int i = 0; i < nin; ++i)
            if (id.inputs[i] >= nbuf)
              fail("{}: input {} out of range (buffer index {}, the artifact has {} buffers)", where, i, id.inputs[i], nbuf);
          // Only optimizer kernels (adamw, sgd) and sync_param write Weight and
          // OptimizerState buffers, and only in place; nothing writes an Input.
          const bool optimizer = writes_persistent(id.kernel);
          auto writable = [&](BufferKind bk) {
            return bk == BufferKind::Activation || bk == BufferKind::State ||
                   (optimizer && (bk == BufferKind::Weight || bk == BufferKind::OptimizerState));
          };
          for (int i = 0; i < nout; ++i) {
            if (id.outputs[i] >= nbuf)
              fail("{}: output {} out of range (buffer index {}, the artifact has {} buffers)", where, i, id.outputs[i], nbuf);
            BufferKind bk = a->buffers[id.outputs[i]].kind;
            if (!writable(bk))
              fail("{}: output {} writes buffer '{}' of kind {}", where, i, a->buffers[id.outputs[i]].name, buffer_kind_name(bk));
            if (i < static_cast<int>(spec.in_place.size()) && id.outputs[i] != id.inputs[spec.in_place[i]])
              fail("{}: output {} (buffer '{}') must be input {} (buffer '{}'): the update is in place", where, i,
                   a->buffers[id.outputs[i]].name, spec.in_place[i], a->buffers[id.inputs[spec.in_place[i]]].name);
          }
          for (int i : spec.mutated_inputs) {
            if (i < nin) {
              BufferKind bk = a->buffers[id.inputs[i]].kind;
              if (!writable(bk))
                fail("{}: input {} is written but is buffer '{}' of kind {}", where, i, a->buffers[id.inputs[i]].name, buffer_kind_name(bk));
            }
          }
          if (in->attrs()) {
            for (const fb::Attr* at : *in->attrs()) {
              std::string an = str(at->name());
              if (an.empty()) fail("{}: an attribute has no name", where);
              AttrValue v;
              int ak = static_cast<int>(at->kind());
              switch (ak) {
                case fb::AttrKind_Int: v.type = AttrType::Int; break;
                case fb::AttrKind_Float: v.type = AttrType::Float; break;
                case fb::AttrKind_String: v.type = AttrType::String; break;
                case fb::AttrKind_Ints: v.type = AttrType::Ints; break;
                case fb::AttrKind_Floats: v.type = AttrType::Floats; break;
                default: fail("{}: attribute '{}' has unknown kind {}", where, an, ak);
              }
              check_aligned(at->ints(), fmt::format("{}: attribute '{}'", where, an), "ints");
              check_aligned(at->floats(), fmt::format("{}: attribute '{}'", where, an), "floats");
              v.ints = vec(at->ints());
              v.floats = vec(at->floats());
              v.str = str(at->str());
              if ((v.type == AttrType::Int && v.ints.size() != 1) ||
                  (v.type == AttrType::Float && v.floats.size() != 1))
                fail("{}: attribute '{}' must hold exactly one value", where, an);
              id.attrs.set(an, std::move(v));
            }
          }
          for (const AttrSpec& as : spec.attrs) {
            try {
              if (!id.attrs.has(as.name)) {
                if (as.required) fail("attribute '{}' is missing", as.name);
                continue;
              }
              switch (as.type) {
                case AttrType::Int: id.attrs.get_int(as.name); break;
                case AttrType::Float: id.attrs.get_float(as.name); break;
                case AttrType::String: id.attrs.get_string(as.name); break;
                default: break;
              }
            } catch (const Error& e) {
              fail("{}: {}", where, e.what());
            }
          }
          check_placement(a->buffers, id, where);
          fd.instructions.push_back(std::move(id));
          ++idx;
        }
      }
      a->functions.push_back(std::move(fd));
    }
  }
  check_stage_pools(root, *a);
  return a;
}

// Pipeline parallelism: which stage uses each buffer, and the per-stage pools
// (bmsys-plan-memory). A rank of stage s allocates only stage s's pools, so each
// pool buffer of stage s must lie within them, and belong to one stage only.
void check_stage_pools(const fb::Artifact* root, Artifact& a) {
  if (a.pipeline_stages <= 1) {
    if (root->stage_activation_pool_bytes() || root->stage_state_pool_bytes())
      fail("{}: per-stage pool sizes, but the artifact has no pipeline stages", a.path);
    return;
  }
  check_aligned(root->stage_activation_pool_bytes(), a.path, "stage_activation_pool_bytes");
  check_aligned(root->stage_state_pool_bytes(), a.path, "stage_state_pool_bytes");
  a.stage_activation_pool_bytes = vec(root->stage_activation_pool_bytes());
  a.stage_state_pool_bytes = vec(root->stage_state_pool_bytes());
  const bool per_stage = !a.stage_activation_pool_bytes.empty() || !a.stage_state_pool_bytes.empty();
  if (per_stage && (a.stage_activation_pool_bytes.size() != a.pipeline_stages ||
                    a.stage_state_pool_bytes.size() != a.pipeline_stages))
    fail("{}: {} stage activation pool sizes and {} stage state pool sizes for {} pipeline stages", a.path,
         a.stage_activation_pool_bytes.size(), a.stage_state_pool_bytes.size(), a.pipeline_stages);
  for (uint32_t s = 0; per_stage && s < a.pipeline_stages; ++s)
    if (a.stage_activation_pool_bytes[s] > a.activation_pool_bytes ||
        a.stage_state_pool_bytes[s] > a.state_pool_bytes)
      fail("{}: pipeline stage {}'s pools ({} / {} bytes) are larger than the artifact's activation / state "
           "pools ({} / {} bytes)",
           a.path, s, a.stage_activation_pool_bytes[s], a.stage_state_pool_bytes[s], a.activation_pool_bytes,
           a.state_pool_bytes);
  a.buffer_stage.assign(a.buffers.size(), -1);
  for (const FunctionDesc& f : a.functions) {
    if (f.pipeline_stage < 0) continue;
    auto mark = [&](uint32_t i) {
      int32_t& st = a.buffer_stage[i];
      const BufferDesc& b = a.buffers[i];
      if (per_stage && b.pooled() && st >= 0 && st != f.pipeline_stage)
        fail("{}: buffer '{}' is used by pipeline stages {} and {} (function '{}'), but each stage has pools "
             "of its own",
             a.path, b.name, st, f.pipeline_stage, f.name);
      st = f.pipeline_stage;
    };
    for (uint32_t i : f.inputs) mark(i);
    for (uint32_t i : f.outputs) mark(i);
    for (const InstructionDesc& inst : f.instructions) {
      for (uint32_t i : inst.inputs) mark(i);
      for (uint32_t i : inst.outputs) mark(i);
    }
  }
  for (size_t i = 0; per_stage && i < a.buffers.size(); ++i) {
    const BufferDesc& b = a.buffers[i];
    const int32_t s = a.buffer_stage[i];
    if (!b.pooled() || s < 0) continue;
    const bool act = b.kind == BufferKind::Activation;
    const uint64_t pool = act ? a.stage_activation_pool_bytes[s] : a.stage_state_pool_bytes[s];
    if (b.offset > pool || b.bytes > pool - b.offset)
      fail("{}: buffer {} ('{}'): [offset {}, +{} bytes) is outside pipeline stage {}'s {} pool ({} bytes)", a.path,
           i, b.name, b.offset, b.bytes, s, act ? "activation" : "state", pool);
  }
}


// bmsys-offload: host buffers are operands only of the kernels that move data between
// host and device (to_host writes one, upload_master reads one) and of the CPU optimizer
// step (adamw with offload = 1, every operand on the host); every other operand is in
// the backend's memory. A backend could not compute on the wrong kind of pointer.
void check_placement(const std::vector<BufferDesc>& buffers, const InstructionDesc& id, const std::string& where) {
  const bool host_step = id.kernel == KernelId::AdamW && id.attrs.get_int("offload", 0) != 0;
  auto want = [&](bool is_input) {
    if (id.kernel == KernelId::ToHost) return !is_input;
    if (id.kernel == KernelId::UploadMaster) return is_input;
    return host_step;
  };
  auto check = [&](const std::vector<uint32_t>& operands, bool is_input) {
    for (size_t i = 0; i < operands.size(); ++i) {
      const BufferDesc& b = buffers[operands[i]];
      if (b.host() != want(is_input))
        fail("{}: {} {} (buffer '{}') is in {} memory, the kernel needs it in {} memory", where,
             is_input ? "input" : "output", i, b.name, b.host() ? "host" : "device",
             want(is_input) ? "host" : "device");
    }
  };
  check(id.inputs, true);
  check(id.outputs, false);
}
}  // namespace

std::shared_ptr<const Artifact> load_artifact_from_memory(const uint8_t* data, size_t size,
                                                          const std::string& name,
                                                          const std::string& directory) {
  if (size < 8 || !flatbuffers::BufferHasIdentifier(data, fb::ArtifactIdentifier()))
    fail("{}: not a bmsys artifact (file identifier \"{}\" missing)", name, fb::ArtifactIdentifier());
  if (size > kMaxArtifactBytes) fail("{}: artifact is larger than 2 GiB", name);
  // The Verifier checks alignment relative to the buffer's start; the loader
  // reads 8-byte scalars, so the start itself must be 8-byte aligned. A caller's
  // buffer that is not (a slice of a larger file, an odd offset) is copied.
  if (reinterpret_cast<uintptr_t>(data) % 8 != 0) {
    std::vector<uint64_t> aligned((size + 7) / 8);
    std::memcpy(aligned.data(), data, size);
    return load_artifact_from_memory(reinterpret_cast<const uint8_t*>(aligned.data()), size, name, directory);
  }
  flatbuffers::Verifier::Options vo;
  vo.max_depth = 64;
  vo.max_tables = 10'000'000;
  flatbuffers::Verifier verifier(data, size, vo);
  if (!fb::VerifyArtifactBuffer(verifier))
    fail("{}: corrupted or truncated artifact (FlatBuffers verification failed)", name);
  const fb::Artifact* root = fb::GetArtifact(data);
  if (root->format_version() != kArtifactFormatVersion)
    fail("{}: artifact format version {} is not supported (this runtime reads version {})", name,
         root->format_version(), kArtifactFormatVersion);
  auto a = decode_and_validate(root, name);
  a->directory = directory;
  return a;
}

std::shared_ptr<const Artifact> load_artifact(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) fail("{}: cannot open artifact", path);
  std::streamoff size = in.tellg();
  if (size < 0) fail("{}: cannot read artifact", path);
  if (static_cast<uint64_t>(size) > kMaxArtifactBytes) fail("{}: artifact is larger than 2 GiB", path);
  // uint64_t storage: 8-byte aligned, as FlatBuffers' 8-byte fields need.
  std::vector<uint64_t> bytes((static_cast<size_t>(size) + 7) / 8);
  in.seekg(0);
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size))
    fail("{}: cannot read artifact", path);
  std::string dir = ".";
  auto slash = path.find_last_of('/');
  if (slash != std::string::npos) dir = slash == 0 ? "/" : path.substr(0, slash);
  return load_artifact_from_memory(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<size_t>(size), path,
                                   dir);
}

}  // namespace bmsys::rt
