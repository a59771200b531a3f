#include "runtime/core/executor.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "runtime/collectives/communicator.h"
#include "runtime/core/error.h"
#include "runtime/core/swap_schedule.h"
#include "runtime/core/mesh.h"
#include "runtime/io/convert.h"
#include "runtime/io/safetensors.h"

namespace bmsys::rt {

namespace {

bool is_directory(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Tensor parallelism: slice r of R equal slices along `dim` of a row-major tensor
// of `shape` (elements of `es` bytes), and the inverse (the R slices one after
// the other, as an all-gather leaves them, into the whole tensor).
struct SliceGeometry {
  int64_t outer = 1, chunk = 0;  // chunk: bytes of one slice per outer index
  SliceGeometry(const Shape& whole, uint32_t dim, uint32_t R, size_t es) {
    int64_t inner = 1;
    for (size_t d = 0; d < whole.size(); ++d) {
      if (d < dim) outer *= whole[d];
      if (d > dim) inner *= whole[d];
    }
    chunk = whole[dim] / R * inner * static_cast<int64_t>(es);
  }
};

void tp_slice(const uint8_t* whole, const Shape& shape, uint32_t dim, uint32_t R, uint32_t r, size_t es,
              uint8_t* out) {
  SliceGeometry g(shape, dim, R, es);
  for (int64_t o = 0; o < g.outer; ++o)
    std::memcpy(out + o * g.chunk, whole + (o * R + r) * g.chunk, static_cast<size_t>(g.chunk));
}

void tp_assemble(const uint8_t* slices, const Shape& shape, uint32_t dim, uint32_t R, size_t es, uint8_t* whole) {
  SliceGeometry g(shape, dim, R, es);
  for (uint32_t r = 0; r < R; ++r)
    for (int64_t o = 0; o < g.outer; ++o)
      std::memcpy(whole + (o * R + r) * g.chunk, slices + (r * g.outer + o) * g.chunk, static_cast<size_t>(g.chunk));
}

std::string join(const std::string& dir, const std::string& file) {
  if (!file.empty() && file[0] == '/') return file;
  if (dir.empty()) return file;
  return dir.back() == '/' ? dir + file : dir + "/" + file;
}

}  // namespace

Executor::Executor(std::shared_ptr<const Artifact> artifact, std::shared_ptr<Backend> backend,
                   const ExecutorOptions& options)
    : artifact_(std::move(artifact)), backend_(std::move(backend)), comm_(options.comm) {
  const Artifact& a = *artifact_;
  if (!comm_) comm_ = std::make_shared<SingleRankCommunicator>();
  check_world_size(a, comm_->world_size());
  const Mesh mesh = Mesh::of(a);
  pp_comm_ = std::make_shared<SingleRankCommunicator>();
  if (mesh.pp > 1) {
    // Point-to-point sends and receives: Gloo (cpu) and NCCL (cuda).
    if (backend_->name() != "cpu" && backend_->name() != "cuda")
      fail("{}: the artifact is pipeline-parallel ({} stages, bmsys-pipeline-parallel); the {} backend does not "
           "run pipeline parallelism (use --device cpu or cuda)",
           a.path, mesh.pp, backend_->name());
    if (mesh.tp > 1) fail("{}: pipeline and tensor parallelism together are not supported", a.path);
    const int w = comm_->rank();
    // Every rank forms its data-parallel group (within its stage), then its pipeline group.
    tp_comm_ = std::make_shared<SingleRankCommunicator>();
    dp_comm_ = comm_->group(fmt::format("stage{}.dp", mesh.pp_rank(w)), mesh.dp_members(w));
    pp_comm_ = comm_->group(fmt::format("pp{}", mesh.dp_rank(w)), mesh.pp_members(w));
    // The neighbouring stages' point-to-point paths, connected now (NCCL: a channel per
    // peer and direction) rather than at the first micro-batch.
    const int s = pp_comm_->rank();
    std::vector<int> neighbours;
    if (s > 0) neighbours.push_back(s - 1);
    if (s + 1 < mesh.pp) neighbours.push_back(s + 1);
    pp_comm_->connect_peers(neighbours);
  } else if (mesh.tp == 1) {
    dp_comm_ = comm_;
    tp_comm_ = std::make_shared<SingleRankCommunicator>();
  } else {
    // The vocab-parallel kernels and the tensor-parallel all-reduce: the CPU backend
    // (through Gloo) and the CUDA backend (NCCL groups).
    if (backend_->name() != "cpu" && backend_->name() != "cuda")
      fail("{}: the artifact is tensor-parallel ({} ranks); the {} backend does not run tensor parallelism "
           "(use --device cpu or cuda)",
           a.path, mesh.tp, backend_->name());
    const int w = comm_->rank();
    // Every rank forms its tensor-parallel group first, then its data-parallel one.
    tp_comm_ = comm_->group(fmt::format("tp{}", mesh.dp_rank(w)), mesh.tp_members(w));
    dp_comm_ = comm_->group(fmt::format("dp{}", mesh.tp_rank(w)), mesh.dp_members(w));
  }
  for (const FunctionDesc& f : a.functions)
    for (size_t i = 0; i < f.instructions.size(); ++i) {
      const InstructionDesc& inst = f.instructions[i];
      if (!backend_->supports(inst.kernel))
        fail("{}: function '{}': {}: not supported by the {} backend", a.path, f.name,
             Artifact::describe(i, inst), backend_->name());
    }
  for (const BufferDesc& b : a.buffers)
    if (!backend_->supports_dtype(b.dtype))
      fail("{}: buffer '{}' has dtype {}, which the {} backend does not compute with", a.path,
           b.name, dtype_name(b.dtype), backend_->name());

  // Pipeline parallelism: which stage uses each buffer (its stage function's operands),
  // and this stage's pools only (bmsys-plan-memory plans them per stage).
  buffer_stage_.assign(a.buffers.size(), -1);
  if (mesh.pp > 1) buffer_stage_.assign(a.buffer_stage.begin(), a.buffer_stage.end());
  const uint64_t activation_bytes = a.activation_pool_for(pp_stage()), state_bytes = a.state_pool_for(pp_stage());
  activation_pool_ = backend_->allocate(activation_bytes, "the activation pool");
  state_pool_ = backend_->allocate(state_bytes, "the state pool");
  backend_->fill_zero(state_pool_->data(), state_bytes);
  owned_.resize(a.buffers.size());
  for (size_t i = 0; i < a.buffers.size(); ++i) {
    const BufferDesc& b = a.buffers[i];
    if (!a.held_by(static_cast<uint32_t>(i), pp_stage())) continue;  // another pipeline stage's
    if (b.host() && (b.kind == BufferKind::State || b.kind == BufferKind::OptimizerState)) {
      // bmsys-offload: host memory of its own (pinned on CUDA), zeroed like the pool.
      owned_[i] = backend_->allocate_host(b.bytes, fmt::format("host buffer '{}'", b.name));
      std::memset(owned_[i]->data(), 0, b.bytes);
    }
    if (b.kind == BufferKind::Input) {
      size_t bytes = static_cast<size_t>(shape_numel(b.resolve(a.max_batch, a.max_seq))) *
                     dtype_size(b.dtype);
      owned_[i] = backend_->allocate(bytes, fmt::format("input '{}'", b.name));
    }
  }
  // bmsys-memory-schedule: swapped layers' weights go to host memory (load_weights).
  if (a.schedule.present()) swap_ = std::make_unique<SwapSchedule>(a, *backend_);
  load_weights(options);
}

Executor::~Executor() = default;

namespace {
// The file name of a recorded weight path: `--weights DIR` looks for it in DIR,
// whether the artifact recorded it relative or absolute.
std::string base_name(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}
}  // namespace

void Executor::load_weights(const ExecutorOptions& options) {
  const Artifact& a = *artifact_;
  bool override_dir = !options.weights.empty() && is_directory(options.weights);
  std::map<std::string, std::shared_ptr<SafetensorsFile>> files;
  for (size_t i = 0; i < a.buffers.size(); ++i) {
    const BufferDesc& b = a.buffers[i];
    if (b.kind != BufferKind::Weight) continue;
    if (on_other_stage(static_cast<uint32_t>(i))) continue;  // another pipeline stage's
    std::string path = options.weights.empty() ? join(a.directory, b.weight_file)
                       : override_dir          ? join(options.weights, base_name(b.weight_file))
                                               : options.weights;
    auto it = files.find(path);
    if (it == files.end()) it = files.emplace(path, SafetensorsFile::open(path)).first;
    const SafetensorsFile& f = *it->second;
    if (!f.contains(b.weight_key))
      fail("{}: weight tensor '{}' (buffer '{}') not found", path, b.weight_key, b.name);
    const SafetensorsInfo& info = f.info(b.weight_key);
    Shape want = b.logical_shape();
    if (info.shape != want)
      fail("{}: weight tensor '{}' has shape {}, the artifact's buffer '{}' expects {}", path,
           b.weight_key, shape_str(info.shape), b.name, shape_str(want));
    if (!convertible(b.dtype, info.dtype))
      fail("{}: weight tensor '{}' is {} and cannot be converted to {} (buffer '{}')", path,
           b.weight_key, dtype_name(info.dtype), dtype_name(b.dtype), b.name);
    if (swap_ && swap_->swapped(static_cast<uint32_t>(i))) {  // a swapped layer's: host memory
      convert(swap_->host_address(static_cast<uint32_t>(i)), b.dtype, f.data(b.weight_key), info.dtype,
              info.numel());
      continue;
    }
    size_t bytes = static_cast<size_t>(shape_numel(b.resolve(0, 0))) * dtype_size(b.dtype);
    owned_[i] = b.host() ? backend_->allocate_host(bytes, fmt::format("host master weight '{}'", b.name))
                         : backend_->allocate(bytes, fmt::format("weight '{}'", b.name));
    std::string what = fmt::format("{}: weight tensor '{}'", path, b.weight_key);
    if (b.tp_sliced()) {
      // Only this rank's tensor-parallel slice of the stored tensor.
      const size_t es = dtype_size(info.dtype);
      std::vector<uint8_t> local(static_cast<size_t>(info.numel() / b.tp_ranks) * es);
      tp_slice(static_cast<const uint8_t*>(f.data(b.weight_key)), info.shape, b.tp_dim, b.tp_ranks,
               static_cast<uint32_t>(tp_comm_->rank()), es, local.data());
      upload_slice(i, local.data(), info.dtype, info.numel() / b.tp_ranks, what);
    } else {
      upload_slice(i, f.data(b.weight_key), info.dtype, info.numel(), what);
    }
  }
}

int Executor::rank() const { return comm_->rank(); }
int Executor::world_size() const { return comm_->world_size(); }
int Executor::dp_rank() const { return dp_comm_->rank(); }
int Executor::dp_size() const { return dp_comm_->world_size(); }
int Executor::pp_stage() const { return pp_comm_->rank(); }

bool Executor::on_other_stage(uint32_t index) const {
  return buffer_stage_[index] >= 0 && buffer_stage_[index] != pp_stage();
}

const FunctionDesc& Executor::function_for(const std::string& name) const {
  const Artifact& a = *artifact_;
  if (a.pipeline_stages > 1) {
    const FunctionDesc* f = a.find_function(fmt::format("{}.stage{}", name, pp_stage()));
    if (f && f->pipeline_stage == pp_stage()) return *f;
    const FunctionDesc* g = a.find_function(name);
    if (g && g->pipeline_stage >= 0 && g->pipeline_stage != pp_stage())
      fail("{}: function '{}' is pipeline stage {}'s; this rank runs stage {} (and holds only its memory)", a.path,
           name, g->pipeline_stage, pp_stage());
    if (g && g->pipeline_stage < 0)
      fail("{}: function '{}' cannot run on a pipeline-parallel artifact: each rank holds only its stage's "
           "weights (only the stages' training step '{}.stage<s>' runs; resume its checkpoint with an artifact "
           "compiled without bmsys-pipeline-parallel)",
           a.path, name, "train_step");
    if (g) return *g;
    fail("{}: no function '{}.stage{}' for pipeline stage {}", a.path, name, pp_stage(), pp_stage());
  }
  const FunctionDesc* f = a.find_function(name);
  if (!f) {
    std::string names;
    for (const FunctionDesc& g : a.functions) names += (names.empty() ? "'" : ", '") + g.name + "'";
    fail("{}: no function '{}' (it has {})", a.path, name, names.empty() ? "none" : names);
  }
  return *f;
}

// Uploads the whole tensor (`numel` elements at `src`) into buffer `index`, or, when
// the buffer is a shard, this rank's slice [r*S, min((r+1)*S, n)) and zeros after it.
void Executor::upload_slice(uint32_t index, const void* src, DType src_dtype, int64_t numel,
                            const std::string& what) {
  const BufferDesc& b = artifact_->buffers[index];
  uint8_t* dst = static_cast<uint8_t*>(address(index));
  int64_t off = 0, len = numel, cap = numel;
  if (b.sharded()) {
    cap = shard_size(numel, b.shard_ranks);
    off = std::min<int64_t>(numel, static_cast<int64_t>(dp_comm_->rank()) * cap);
    len = std::min<int64_t>(cap, numel - off);
  }
  const uint8_t* from = static_cast<const uint8_t*>(src) + off * dtype_size(src_dtype);
  if (b.host()) {  // bmsys-offload: host memory, converted in place
    convert(dst, b.dtype, from, src_dtype, len);
    if (cap > len) std::memset(dst + len * dtype_size(b.dtype), 0, static_cast<size_t>(cap - len) * dtype_size(b.dtype));
    return;
  }
  try {
    backend_->upload(dst, b.dtype, from, src_dtype, len);
  } catch (const Error& e) {
    fail("{}: {}", what, e.what());
  }
  if (cap > len)
    backend_->fill_zero(dst + len * dtype_size(b.dtype), static_cast<size_t>(cap - len) * dtype_size(b.dtype));
}

void* Executor::address(uint32_t buffer) const {
  const BufferDesc& b = artifact_->buffers[buffer];
  if (!artifact_->held_by(buffer, pp_stage()))
    fail("{}: buffer '{}' is not held by this rank (pipeline stage {}): {}", artifact_->path, b.name, pp_stage(),
         buffer_stage_[buffer] >= 0 ? fmt::format("it is stage {}'s", buffer_stage_[buffer])
                                    : std::string("no stage's function uses it"));
  switch (b.kind) {
    case BufferKind::Activation:
      return static_cast<uint8_t*>(activation_pool_->data()) + b.offset;
    case BufferKind::State:
    case BufferKind::OptimizerState:
      if (b.host()) return owned_[buffer]->data();  // bmsys-offload
      return static_cast<uint8_t*>(state_pool_->data()) + b.offset;
    case BufferKind::Input:
    case BufferKind::Weight:
      if (swap_ && swap_->swapped(buffer)) return swap_->address(buffer);
      return owned_[buffer]->data();
  }
  return nullptr;
}

void Executor::reset_state() {
  for (uint32_t i = 0; i < artifact_->buffers.size(); ++i)
    if (artifact_->buffers[i].kind == BufferKind::State && artifact_->held_by(i, pp_stage())) {
      if (artifact_->buffers[i].host())
        std::memset(address(i), 0, artifact_->buffers[i].bytes);
      else
        backend_->fill_zero(address(i), artifact_->buffers[i].bytes);
    }
}

uint32_t Executor::buffer_index(const std::string& name) const {
  int64_t i = artifact_->find_buffer(name);
  if (i < 0) fail("{}: no buffer named '{}'", artifact_->path, name);
  return static_cast<uint32_t>(i);
}

namespace {
const BufferDesc& persistent_buffer(const Artifact& a, uint32_t index, const char* op) {
  if (index >= a.buffers.size()) fail("{}: buffer index {} out of range", a.path, index);
  const BufferDesc& b = a.buffers[index];
  if (b.kind != BufferKind::Weight && b.kind != BufferKind::State &&
      b.kind != BufferKind::OptimizerState)
    fail("{}: cannot {} buffer '{}' of kind {} (only weights, states and optimizer states)",
         a.path, op, b.name, buffer_kind_name(b.kind));
  for (const DimDesc& d : b.dims)
    if (d.kind != DimKind::Static)
      fail("{}: cannot {} buffer '{}': its shape {} is not static", a.path, op, b.name, b.dims_str());
  return b;
}
}  // namespace

HostTensor Executor::read_buffer(uint32_t index) const {
  return read_buffer(index, artifact_->buffers.at(index).dtype);
}

HostTensor Executor::read_buffer(uint32_t index, DType dtype) const {
  const BufferDesc& b = persistent_buffer(*artifact_, index, "read");
  backend_->synchronize();
  HostTensor raw(b.dtype, b.resolve(0, 0));
  if (swap_ && swap_->swapped(index))  // its host copy (the slot may hold another layer)
    std::memcpy(raw.data.data(), swap_->host_address(index), raw.data.size());
  else if (b.host())  // bmsys-offload: host memory (synchronize() waited for its copies)
    std::memcpy(raw.data.data(), address(index), raw.data.size());
  else
    backend_->copy_to_host(raw.data.data(), address(index), raw.data.size());
  if (dtype == b.dtype) return raw;
  if (!convertible(dtype, b.dtype))
    fail("{}: buffer '{}' is {} and cannot be read as {}", artifact_->path, b.name,
         dtype_name(b.dtype), dtype_name(dtype));
  HostTensor out(dtype, raw.shape);
  convert(out.data.data(), dtype, raw.data.data(), b.dtype, raw.numel());
  return out;
}

void Executor::write_buffer(uint32_t index, const HostTensor& t, const std::string& what) {
  write_buffer(index, t.data.data(), t.dtype, t.shape, what);
}

void Executor::write_buffer(uint32_t index, const void* data, DType dtype, const Shape& shape,
                            const std::string& what) {
  const BufferDesc& b = persistent_buffer(*artifact_, index, "write");
  std::string src = what.empty() ? std::string("the tensor") : what;
  if (swap_ && swap_->swapped(index))
    fail("{}: weight '{}' is swapped by the memory schedule and cannot be overwritten", artifact_->path, b.name);
  Shape want = b.resolve(0, 0);
  if (shape != want)
    fail("{} has shape {}, the artifact's buffer '{}' expects {}", src, shape_str(shape), b.name,
         shape_str(want));
  if (!convertible(b.dtype, dtype))
    fail("{} is {} and cannot be converted to {} (buffer '{}')", src, dtype_name(dtype),
         dtype_name(b.dtype), b.name);
  backend_->synchronize();
  if (b.host()) {
    convert(address(index), b.dtype, data, dtype, shape_numel(shape));
    return;
  }
  try {
    backend_->upload(address(index), b.dtype, data, dtype, shape_numel(shape));
  } catch (const Error& e) {
    fail("{}: {}", src, e.what());
  }
}

HostTensor Executor::read_logical(uint32_t index, DType dtype) const {
  const BufferDesc& b = persistent_buffer(*artifact_, index, "read");
  if (buffer_stage_[index] >= 0) {
    // Pipeline parallelism: the stage that holds it reads it (gathering over its own
    // groups) and broadcasts it over the pipeline group.
    HostTensor t = on_other_stage(index) ? HostTensor(dtype, b.logical_shape()) : read_local(index, dtype);
    // Through backend memory: the communicator's pointers are in the backend's memory
    // space (device memory for NCCL).
    auto staged = backend_->allocate(std::max<size_t>(t.data.size(), 1), fmt::format("broadcast '{}'", b.name));
    if (!on_other_stage(index)) backend_->upload(staged->data(), dtype, t.data.data(), dtype, t.numel());
    backend_->synchronize();
    pp_comm_->broadcast(staged->data(), dtype, t.numel(), buffer_stage_[index]);
    backend_->copy_to_host(t.data.data(), staged->data(), t.data.size());
    return t;
  }
  if (b.tp_sliced()) {
    // Gather the tensor-parallel slices (each rank's local tensor) and put them in place,
    // through backend memory (the communicator's pointers are in the backend's memory
    // space: device pointers for NCCL).
    HostTensor local = read_local(index, dtype);
    const size_t es = dtype_size(dtype);
    const int64_t n = local.numel();
    std::vector<uint8_t> all(static_cast<size_t>(n * b.tp_ranks) * es);
    {
      auto mine = backend_->allocate(static_cast<size_t>(n) * es, fmt::format("slice of '{}'", b.name));
      auto slices = backend_->allocate(all.size(), fmt::format("gathered slices of '{}'", b.name));
      backend_->upload(mine->data(), dtype, local.data.data(), dtype, n);
      backend_->synchronize();
      tp_comm_->all_gather(mine->data(), dtype, slices->data(), n * b.tp_ranks);
      backend_->copy_to_host(all.data(), slices->data(), all.size());
    }
    HostTensor whole(dtype, b.logical_shape());
    tp_assemble(all.data(), whole.shape, b.tp_dim, b.tp_ranks, es, whole.data.data());
    return whole;
  }
  return read_local(index, dtype);
}

// The tensor this rank's buffer stands for (local_shape()): ZeRO shards gathered
// over the data-parallel group.
HostTensor Executor::read_local(uint32_t index, DType dtype) const {
  const BufferDesc& b = artifact_->buffers[index];
  if (!b.sharded()) return read_buffer(index, dtype);
  const int64_t n = shape_numel(b.full_shape);
  backend_->synchronize();
  auto full = backend_->allocate(static_cast<size_t>(n) * dtype_size(b.dtype), fmt::format("gathered '{}'", b.name));
  const void* shard = address(index);
  std::unique_ptr<DeviceMemory> staged;
  if (b.host()) {
    // A host shard (bmsys-offload) goes through backend memory: the communicator's
    // pointers are in the backend's memory space (device pointers for NCCL).
    const int64_t S = shape_numel(b.resolve(0, 0));
    staged = backend_->allocate(static_cast<size_t>(S) * dtype_size(b.dtype), fmt::format("staged '{}'", b.name));
    backend_->upload(staged->data(), b.dtype, shard, b.dtype, S);
    shard = staged->data();
  }
  dp_comm_->all_gather(shard, b.dtype, full->data(), n);
  HostTensor raw(b.dtype, b.full_shape);
  backend_->copy_to_host(raw.data.data(), full->data(), raw.data.size());
  if (dtype == b.dtype) return raw;
  HostTensor out(dtype, raw.shape);
  convert(out.data.data(), dtype, raw.data.data(), b.dtype, raw.numel());
  return out;
}

void Executor::write_logical(uint32_t index, const void* data, DType dtype, const Shape& shape,
                             const std::string& what) {
  const BufferDesc& b = persistent_buffer(*artifact_, index, "write");
  std::string src = what.empty() ? std::string("the tensor") : what;
  if (on_other_stage(index)) {  // another pipeline stage's: checked, not stored here
    if (shape != b.logical_shape())
      fail("{} has shape {}, the artifact's buffer '{}' expects {}", src, shape_str(shape), b.name,
           shape_str(b.logical_shape()));
    return;
  }
  if (b.tp_sliced()) {
    // This rank's tensor-parallel slice of the whole tensor, then as an untouched buffer.
    if (shape != b.logical_shape())
      fail("{} has shape {}, the artifact's buffer '{}' is a tensor-parallel slice of {}", src, shape_str(shape),
           b.name, shape_str(b.logical_shape()));
    const size_t es = dtype_size(dtype);
    std::vector<uint8_t> local(static_cast<size_t>(shape_numel(shape) / b.tp_ranks) * es);
    tp_slice(static_cast<const uint8_t*>(data), shape, b.tp_dim, b.tp_ranks, static_cast<uint32_t>(tp_comm_->rank()),
             es, local.data());
    return write_local(index, local.data(), dtype, b.local_shape(), src);
  }
  write_local(index, data, dtype, shape, src);
}

void Executor::write_local(uint32_t index, const void* data, DType dtype, const Shape& shape,
                           const std::string& src) {
  const BufferDesc& b = artifact_->buffers[index];
  if (!b.sharded()) return write_buffer(index, data, dtype, shape, src);
  if (shape != b.full_shape)
    fail("{} has shape {}, the artifact's buffer '{}' is a shard of {}", src, shape_str(shape), b.name,
         shape_str(b.full_shape));
  if (!convertible(b.dtype, dtype))
    fail("{} is {} and cannot be converted to {} (buffer '{}')", src, dtype_name(dtype), dtype_name(b.dtype),
         b.name);
  backend_->synchronize();
  upload_slice(index, data, dtype, shape_numel(shape), src);
}

std::map<std::string, HostTensor> Executor::run(const std::string& function,
                                                const std::map<std::string, HostTensor>& inputs,
                                                int64_t start_pos, int64_t step) {
  RunOptions o;
  o.start_pos = start_pos;
  o.step = step;
  return run(function, inputs, o);
}

std::map<std::string, HostTensor> Executor::run(const std::string& function,
                                                const std::map<std::string, HostTensor>& given,
                                                const RunOptions& options) {
  const int64_t start_pos = options.start_pos, step = options.step;
  const Artifact& a = *artifact_;
  const FunctionDesc* f = &function_for(function);
  std::string fwhere = fmt::format("{}: function '{}'", a.path, f->name);
  // A pipeline stage's function takes the micro-batches (input_ids.mb<m>): given the
  // batch, cut its rows into pipeline_micro_batches equal parts.
  std::map<std::string, HostTensor> split;
  const bool cut = f->pipeline_stage >= 0 && given.count("input_ids") && !given.count("input_ids.mb0");
  if (cut) {
    const HostTensor& ids = given.at("input_ids");
    const int64_t M = a.pipeline_micro_batches, rows = ids.shape.empty() ? 0 : ids.shape[0];
    if (rows % M != 0)
      fail("{}: the batch of {} rows is not divisible by the {} micro-batches of the pipeline "
           "(bmsys-pipeline-parallel micro-batches={}); each micro-batch takes B/{} rows",
           fwhere, rows, M, M, M);
    const size_t part = ids.data.size() / static_cast<size_t>(M);
    for (int64_t m = 0; m < M; ++m) {
      HostTensor t(ids.dtype, ids.shape);
      t.shape[0] = rows / M;
      t.data.assign(ids.data.begin() + static_cast<std::ptrdiff_t>(m * part),
                    ids.data.begin() + static_cast<std::ptrdiff_t>((m + 1) * part));
      split[fmt::format("input_ids.mb{}", m)] = std::move(t);
    }
    for (const auto& kv : given)
      if (kv.first != "input_ids") split[kv.first] = kv.second;
  }
  const std::map<std::string, HostTensor>& inputs = cut ? split : given;
  if (options.queued && f->pipeline_stage >= 0)
    fail("{}: a pipeline stage cannot run queued (its sends and receives wait)", fwhere);
  for (const std::string& name : options.device_inputs) {
    bool known = false;
    for (uint32_t idx : f->inputs) known |= a.buffers[idx].name == name;
    if (!known) fail("{}: device input '{}' is not an input of the function", fwhere, name);
  }

  // Bind B and S from the input shapes.
  int64_t B = -1, S = -1;
  for (uint32_t idx : f->inputs) {
    const BufferDesc& b = a.buffers[idx];
    auto it = inputs.find(b.name);
    if (it == inputs.end()) fail("{}: input '{}' {} is missing", fwhere, b.name, b.dims_str());
    const HostTensor& t = it->second;
    if (t.shape.size() != b.dims.size())
      fail("{}: input '{}' has shape {}, expected {}", fwhere, b.name, shape_str(t.shape), b.dims_str());
    for (size_t d = 0; d < b.dims.size(); ++d) {
      int64_t v = t.shape[d];
      int64_t* bound = b.dims[d].kind == DimKind::Batch ? &B : b.dims[d].kind == DimKind::Seq ? &S : nullptr;
      if (!bound) {
        if (v != b.dims[d].value)
          fail("{}: input '{}' has shape {}, expected {}", fwhere, b.name, shape_str(t.shape), b.dims_str());
      } else if (*bound < 0) {
        *bound = v;
      } else if (*bound != v) {
        fail("{}: input '{}' has shape {}: {} is bound to {} by an earlier input", fwhere, b.name,
             shape_str(t.shape), b.dims[d].kind == DimKind::Batch ? "B" : "S", *bound);
      }
    }
    if (!convertible(b.dtype, t.dtype))
      fail("{}: input '{}' is {}, expected {}", fwhere, b.name, dtype_name(t.dtype), dtype_name(b.dtype));
  }
  for (const auto& kv : inputs) {
    bool known = false;
    for (uint32_t idx : f->inputs) known |= a.buffers[idx].name == kv.first;
    if (!known) fail("{}: unexpected input '{}'", fwhere, kv.first);
  }
  if (B < 0) B = 1;
  if (S < 0) S = 1;
  if (B < 1 || B > a.max_batch) fail("{}: batch {} is outside [1, max_batch={}]", fwhere, B, a.max_batch);
  if (S < 1 || S > a.max_seq) fail("{}: sequence length {} is outside [1, max_seq={}]", fwhere, S, a.max_seq);
  if (start_pos < 0 || start_pos + S > a.max_seq)
    fail("{}: start_pos {} + sequence length {} exceeds max_seq {}", fwhere, start_pos, S, a.max_seq);

  // Upload inputs (but those already on the device).
  for (uint32_t idx : f->inputs) {
    const BufferDesc& b = a.buffers[idx];
    if (std::find(options.device_inputs.begin(), options.device_inputs.end(), b.name) !=
        options.device_inputs.end())
      continue;
    const HostTensor& t = inputs.at(b.name);
    try {
      backend_->upload(address(idx), b.dtype, t.data.data(), t.dtype, t.numel());
    } catch (const Error& e) {
      fail("{}: input '{}': {}", fwhere, b.name, e.what());
    }
  }

  if (step < 0) fail("{}: training step {} is negative", fwhere, step);
  if (!(options.loss_scale > 0)) fail("{}: the loss scale must be positive, not {}", fwhere, options.loss_scale);
  LaunchContext ctx{B, S, start_pos, a.max_batch, a.max_seq, step};
  ctx.loss_scale = options.loss_scale;
  if (options.batch_offset != 0) {
    if (options.batch_offset < 0 || options.batch_offset + B > a.max_batch)
      fail("{}: batch {} at cache row offset {} exceeds max_batch {}", fwhere, B, options.batch_offset,
           a.max_batch);
    if (!backend_->supports_batch_offset())
      fail("{}: the {} backend does not support a cache row offset (batch_offset)", fwhere, backend_->name());
  }
  ctx.batch_offset = options.batch_offset;
  ctx.comm = dp_comm_.get();
  ctx.rank = dp_comm_->rank();
  ctx.world_size = dp_comm_->world_size();
  ctx.tp_comm = tp_comm_.get();
  ctx.tp_rank = tp_comm_->rank();
  ctx.tp_size = tp_comm_->world_size();
  ctx.pp_comm = pp_comm_.get();
  ctx.pp_rank = pp_comm_->rank();
  ctx.pp_size = pp_comm_->world_size();
  std::vector<Shape> shapes(a.buffers.size());
  std::vector<bool> resolved(a.buffers.size(), false);
  auto view = [&](uint32_t idx) {
    if (!resolved[idx]) {
      shapes[idx] = a.buffers[idx].resolve(B, S);
      resolved[idx] = true;
    }
    return TensorView{address(idx), a.buffers[idx].dtype, shapes[idx]};
  };

  // The launch records of this function, sizes and context (all but start_pos).
  auto same_context = [](const LaunchContext& x, const LaunchContext& y) {
    return x.batch == y.batch && x.seq == y.seq && x.step == y.step && x.loss_scale == y.loss_scale &&
           x.batch_offset == y.batch_offset;
  };
  LaunchRecords* records = nullptr;
  for (size_t c = 0; c < launch_cache_.size(); ++c)
    if (launch_cache_[c].function == f && same_context(launch_cache_[c].ctx, ctx)) {
      std::rotate(launch_cache_.begin() + c, launch_cache_.begin() + c + 1, launch_cache_.end());
      records = &launch_cache_.back();
      break;
    }
  const bool cached = records != nullptr;
  if (!cached) {
    constexpr size_t kCachedCalls = 8;  // decode, prefill and a training step or two
    if (launch_cache_.size() == kCachedCalls) launch_cache_.erase(launch_cache_.begin());
    launch_cache_.push_back({f, ctx, {}});
    records = &launch_cache_.back();
    records->launches.reserve(f->instructions.size());
  }

  for (size_t i = 0; i < f->instructions.size(); ++i) {
    const InstructionDesc& inst = f->instructions[i];
    try {
      if (!cached) {
        KernelLaunch l;
        l.kernel = inst.kernel;
        l.attrs = &inst.attrs;
        for (uint32_t idx : inst.inputs) l.inputs.push_back(view(idx));
        for (uint32_t idx : inst.outputs) l.outputs.push_back(view(idx));
        l.ctx = ctx;
        records->launches.push_back(std::move(l));
      }
      KernelLaunch& l = records->launches[i];
      l.ctx.start_pos = ctx.start_pos;
      // Only attention with a cache (also rope_attention's) reads start_pos in its checks.
      if (!cached || (l.kernel == KernelId::Attention && l.inputs.size() == 5) ||
          (l.kernel == KernelId::RopeAttention && l.inputs.size() == 6))
        check_launch(l);
      if (swap_) swap_->before(*f, i);
      backend_->launch(l);
      if (swap_) swap_->after(*f, i);
    } catch (const Error& e) {
      if (!cached) launch_cache_.pop_back();  // not all checked
      fail("{}: {}: {}", fwhere, Artifact::describe(i, inst), e.what());
    }
  }
  last_function_ = f;
  last_batch_ = B;
  last_seq_ = S;
  if (options.queued) return {};
  // Pipeline parallelism: every send of this call is received before it returns.
  try {
    pp_comm_->wait_sends();
  } catch (const Error& e) {
    fail("{}: pipeline stage {}: {}", fwhere, pp_stage(), e.what());
  }
  backend_->synchronize();

  std::map<std::string, HostTensor> out;
  for (size_t i = 0; i < f->outputs.size(); ++i) {
    TensorView v = view(f->outputs[i]);
    HostTensor t(v.dtype, v.shape);
    backend_->copy_to_host(t.data.data(), v.data, t.data.size());
    out[f->output_names[i]] = std::move(t);
  }
  return out;
}

uint64_t Executor::queue_pick(const std::string& output, const std::string& input, const PickOptions& pick,
                              const std::vector<double>& uniforms) {
  const Artifact& a = *artifact_;
  if (!last_function_) fail("{}: queue_pick: no function has run yet", a.path);
  const FunctionDesc* f = last_function_;
  const std::string fwhere = fmt::format("{}: function '{}'", a.path, f->name);
  const uint32_t* out = nullptr;
  for (size_t i = 0; i < f->outputs.size(); ++i)
    if (f->output_names[i] == output) out = &f->outputs[i];
  if (!out) fail("{}: queue_pick: no output '{}'", fwhere, output);
  const BufferDesc& ob = a.buffers[*out];
  const Shape os = ob.resolve(last_batch_, last_seq_);
  if (os.size() != 3 || !dtype_is_float(ob.dtype))
    fail("{}: queue_pick: output '{}' is {} {}, expected float [B,S,V]", fwhere, output, dtype_name(ob.dtype),
         shape_str(os));
  const uint32_t* in = nullptr;
  for (const uint32_t& idx : f->inputs)
    if (a.buffers[idx].name == input) in = &idx;
  if (!in) fail("{}: queue_pick: no input '{}'", fwhere, input);
  const BufferDesc& ib = a.buffers[*in];
  if (ib.dtype != DType::I64 || shape_numel(ib.resolve(last_batch_, 1)) != os[0])
    fail("{}: queue_pick: input '{}' is {} {}, expected int64 [B,S] to take the next ids", fwhere, input,
         dtype_name(ib.dtype), ib.dims_str());
  const int64_t S = os[1], V = os[2];
  const auto* last = static_cast<const uint8_t*>(address(*out)) + static_cast<size_t>((S - 1) * V) * dtype_size(ob.dtype);
  return backend_->queue_pick(last, ob.dtype, os[0], V, S * V, address(*in), pick, uniforms);
}

}  // namespace bmsys::rt
