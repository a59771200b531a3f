#include "runtime/backends/cuda/cuda_backend.h"

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "runtime/backends/cuda/allocator.h"
#include "runtime/backends/cuda/collectives.h"
#include "runtime/backends/cuda/cuda_common.h"
#include "runtime/backends/cuda/fused_kernels.h"
#include "runtime/backends/cuda/gemm.h"
#include "runtime/backends/cuda/int8.h"
#include "runtime/backends/cuda/kernels.h"
#include "runtime/backends/cuda/nccl_communicator.h"
#include "runtime/backends/cuda/offload.h"
#include "runtime/backends/cuda/tensor_parallel.h"
#include "runtime/backends/cuda/trace.h"
#include "runtime/backends/cuda/train_ops.h"
#include "runtime/backends/cpu/host_adamw.h"
#include "runtime/core/error.h"
#include "runtime/io/convert.h"

namespace bmsys::rt {

namespace cuda {
void throw_cuda_error(cudaError_t err, const char* call, const std::string& op) {
  std::string msg = fmt::format("cuda backend: {}: {} failed: {} ({})", op, call,
                                cudaGetErrorString(err), cudaGetErrorName(err));
  cudaGetLastError();  // clear a non-sticky error so the caller may go on
  throw Error(msg);
}
}  // namespace cuda

using namespace cuda;

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error
    return 0;
  }
  return n;
}

std::string cuda_device_description(int device) {
  cudaDeviceProp prop;
  cudaError_t err = cudaGetDeviceProperties(&prop, device);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return std::string("no CUDA device ") + std::to_string(device) + ": " + cudaGetErrorString(err);
  }
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) +
         ", " + std::to_string(prop.totalGlobalMem >> 30) + " GiB)";
}

namespace {

std::string human(uint64_t b) {
  if (b >= (1ull << 30)) return fmt::format("{:.2f} GiB", b / double(1ull << 30));
  if (b >= (1ull << 20)) return fmt::format("{:.1f} MiB", b / double(1ull << 20));
  if (b >= 1024) return fmt::format("{:.1f} KiB", b / 1024.0);
  return fmt::format("{} B", b);
}

int env_int(const char* name, int dflt) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  return std::atoi(v);
}

bool env_flag(const char* name, bool dflt) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  return !(v[0] == '0' || v[0] == 'n' || v[0] == 'N' || v[0] == 'f' || v[0] == 'F');
}

constexpr int kMaxRank = 8;
constexpr int kMaxGraphs = 32;
constexpr size_t kStageBytes = 16u << 20;
constexpr size_t kWorkspaceBytes = 32u << 20;

enum Kind { kWeights = 0, kActivations, kState, kInputs, kOther, kKinds };
const char* kind_name(int k) {
  static const char* n[] = {"weights", "activation pool", "state pool (KV cache)", "inputs", "other"};
  return n[k];
}

struct TRef {
  void* data = nullptr;
  DType dtype = DType::F32;
  int rank = 0;
  int64_t dims[kMaxRank] = {};
  int64_t numel = 0;
  size_t bytes() const { return static_cast<size_t>(numel) * dtype_size(dtype); }
  int64_t last() const { return rank ? dims[rank - 1] : 1; }
};

struct Parsed {
  bool wt = false;
  int64_t offset = 0, size = 0;
  double eps = 0;
  int64_t head_dim = 0;
  double theta = 0;
  int64_t nq = 0, nkv = 0;
  double scale = 1;
  bool causal = true;
  bool gelu_tanh = true;
  bool shift = false;
  bool int8_act = false;  // linear_int8: activations = "int8"
  ReduceOp reduce = ReduceOp::Sum;  // all_reduce, reduce_scatter
  bool norm_ranks = false;          // the cross-rank part of global_norm (collectives)
  // Pipeline parallelism: global_norm's sums over the data-parallel ranks and over the
  // stages (norm_ranks); pp_send / pp_recv peer, micro-batch and channel; pp_broadcast
  // root (pp_mean: `scale` = 1/micro-batches).
  bool norm_dp = true, norm_pp = false;
  int peer = -1, root = 0;
  int64_t micro_batch = 0, channel = 0;
};

struct Op {
  KernelId kernel = KernelId::kCount;
  int nin = 0;
  TRef in[6];
  TRef out;
  Parsed p;
  DType ft = DType::F32;  // the launch's float dtype
  // Training kernels (train_ops.h): every operand and attribute; in/out above hold the
  // first operands for traces only. Never fused, and a barrier to the fusions' hoisting.
  std::shared_ptr<const TrainOp> train;
};

// A training kernel's operand as a TRef (for overlaps()).
TRef tref_of(const TensorView& v) {
  TRef t;
  t.data = v.data;
  t.dtype = v.dtype;
  t.numel = v.numel();
  return t;
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

bool overlaps(const TRef& a, const TRef& b) {
  auto a0 = reinterpret_cast<uintptr_t>(a.data), b0 = reinterpret_cast<uintptr_t>(b.data);
  return a0 < b0 + b.bytes() && b0 < a0 + a.bytes() && a.bytes() && b.bytes();
}

std::string shape_of(const TRef& t) {
  std::string s = "[";
  for (int i = 0; i < t.rank; ++i) s += (i ? "," : "") + std::to_string(t.dims[i]);
  return s + "]";
}

// Shared with DeviceMemory deleters, which may run after the backend is gone.
struct Pool {
  CachingAllocator alloc;
  std::mutex mu;
  std::map<void*, std::pair<int, size_t>> owned;
  uint64_t by_kind[kKinds] = {};
  cudaStream_t stream = nullptr;  // null once the backend is destroyed
  void release(void* p) {
    cudaStream_t s;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = owned.find(p);
      if (it != owned.end()) {
        by_kind[it->second.first] -= it->second.second;
        owned.erase(it);
      }
      s = stream;
    }
    alloc.free(p, s);
  }
};

}  // namespace

struct CudaBackend::Impl {
  BackendOptions opts;
  int device = 0;
  cudaDeviceProp prop{};
  bool use_graphs = true, use_pdl = true, use_gemv = true, use_fuse = true, use_flash = true;
  bool use_fork = true;  // BMSYS_CUDA_FORK: linears sharing their input run concurrently
  bool use_int8_mma = true;  // BMSYS_CUDA_INT8_MMA: the weight-only INT8 GEMV on the tensor cores
  // BMSYS_CUDA_GEMV: 1 tuned per shape (the default, see below), 2 row kernel, 3 pipelined
  // kernel, 0 off (cuBLASLt for every linear).
  int gemv_variant = 1;
  std::unordered_map<std::string, int> gemv_pick;  // shape -> variant (0 cuBLASLt, 2, 3)
  void* tune_buf = nullptr;
  size_t tune_bytes = 0;
  cudaEvent_t tune_ev[2] = {nullptr, nullptr};
  bool capturing = false;
  // rope's cosines and sines per (theta, head_dim) for positions < kRopePositions (4 MiB
  // for head_dim 128), so a rope launch reads its angles instead of computing f64 sines
  // (5.7 us per decode launch, H200). Built at the first rope that runs eagerly (the
  // first run of every op sequence is eager); a launch during a capture before that
  // computes its angles.
  struct RopeTable {
    double theta;
    int64_t D;
    void* data;
  };
  std::vector<RopeTable> rope_tables;
  static constexpr int64_t kRopePositions = 8192;
  bool sync_each = false;

  cudaStream_t compute = nullptr, copy = nullptr;
  // Forked linears (kLinearFork): the streams the second and third run on, their
  // cuBLASLt workspaces (made at the first flush that forks), the fork and join events.
  static constexpr int kForkBranches = 2;
  cudaStream_t fork_stream[kForkBranches] = {nullptr, nullptr};
  void* fork_workspace[kForkBranches] = {nullptr, nullptr};
  cudaEvent_t fork_ev = nullptr, join_ev[kForkBranches] = {nullptr, nullptr};
  // queue_pick: per ticket slot (ticket % kPickTickets) a pinned row of ids (pick_cap
  // each), the number of rows and the event after its device-to-host copy.
  int64_t* pick_host = nullptr;
  int64_t pick_cap = 0;
  int64_t pick_rows[Backend::kPickTickets] = {};
  cudaEvent_t pick_ev[Backend::kPickTickets] = {};
  // Swap slots (bmsys-memory-schedule): their own stream, so weight copies overlap the
  // downloads on `copy`; per slot, "copied in" and "released by compute" events.
  cudaStream_t swap = nullptr;
  cudaEvent_t slot_ready[2] = {nullptr, nullptr}, slot_free[2] = {nullptr, nullptr};
  bool slot_loaded[2] = {false, false}, slot_released[2] = {false, false};
  cudaEvent_t ev_compute = nullptr, ev_copy = nullptr, flush_begin = nullptr, flush_end = nullptr;
  bool flush_timed = false;

  std::shared_ptr<Pool> pool;
  std::unique_ptr<Gemm> gemm;
  std::unique_ptr<GemmInt8> gemm_i8;  // linear_int8 (int8.h)
  void* workspace = nullptr;

  DeviceError* err_host = nullptr;
  DeviceError* err_dev = nullptr;
  int* err_gate = nullptr;
  int64_t* scalars = nullptr;

  void* pinned[2] = {nullptr, nullptr};
  void* dstage[2] = {nullptr, nullptr};
  cudaEvent_t stage_ev[2] = {nullptr, nullptr};
  int stage_next = 0;

  std::unordered_set<void*> weights;
  uint64_t random_counter = 0;
  std::string plan;

  std::vector<Op> ops;
  std::vector<uint64_t> sig;
  uint64_t hash = 0;
  int64_t queue_P = 0;
  // Step T and loss scale L of the queued training ops (written to the device scalars
  // at the flush, so a captured train_step replays at every step).
  bool queue_train_scalars = false;
  int64_t queue_T = 0;
  double queue_L = 1.0;
  TrainGemmPtr train_gemm;

  void* scratch = nullptr;
  size_t scratch_bytes = 0;

  struct GraphEntry {
    std::vector<uint64_t> sig;
    std::vector<KernelId> kernels;
    cudaGraphExec_t exec = nullptr;
    uint64_t last_use = 0;
  };
  std::unordered_map<uint64_t, GraphEntry> graphs;
  std::unordered_map<uint64_t, int> seen;
  uint64_t tick = 0;
  std::vector<KernelId> last_kernels;

  std::unique_ptr<Tracer> tracer;
  // Collectives (collectives.h): the run's NCCL communicator and its stream.
  CollectiveStream coll;
  // Optimizer offload (offload.h): the gradient / master copies' stream, and per
  // device parameter of another dtype than f32 the pinned buffer its master is
  // converted into before the upload.
  OffloadCopies offload;
  struct PinnedDeleter {
    void operator()(void* p) const { cudaFreeHost(p); }
  };
  std::unordered_map<void*, std::pair<std::unique_ptr<void, PinnedDeleter>, size_t>> upload_stage;
  std::weak_ptr<NcclCommunicator> nccl;  // made by create_communicator

  // The first collective launch binds the run's communicators (world size 1: none):
  // the data-parallel group and, with tensor parallelism, the tensor-parallel one;
  // the NCCL communicator of this backend or one of its groups.
  NcclCommunicator* own_comm(Communicator* given, const char* what) {
    auto own = nccl.lock();
    auto* c = dynamic_cast<NcclCommunicator*>(given);
    if (!own || !c || !own->same_process_family(c))
      fail("cuda backend: collective kernels need the NCCL communicator of this backend "
           "(CudaBackend::create_communicator) or its groups; this run's {} one is '{}'",
           what, given ? given->name() : std::string("none"));
    return c;
  }
  void bind_comm(const LaunchContext& ctx) {
    NcclCommunicator* c = ctx.world_size > 1 ? own_comm(ctx.comm, "data-parallel") : nullptr;
    NcclCommunicator* t = ctx.tp_size > 1 ? own_comm(ctx.tp_comm, "tensor-parallel") : nullptr;
    NcclCommunicator* p = ctx.pp_size > 1 ? own_comm(ctx.pp_comm, "pipeline") : nullptr;
    if (coll.bound() && coll.comm() == c && coll.tp_comm() == t && coll.pp_comm() == p) return;
    flush();
    coll.bind(c, compute);
    coll.bind_tp(t);
    coll.bind_pp(p);
  }
  // Device memory for the statistics of the tensor-parallel plans (tensor_parallel.h),
  // grown (after a flush: queued steps point at the old one) and kept.
  void* tp_buf = nullptr;
  size_t tp_buf_bytes = 0;
  // queue_pick's keys and sort space (top-k, top-p): grown, never shrunk; stream-ordered
  // like every allocation, so a pick still running keeps the old one.
  void* pick_buf = nullptr;
  size_t pick_buf_bytes = 0;
  void* pick_scratch(size_t bytes) {
    if (bytes <= pick_buf_bytes) return pick_buf;
    if (pick_buf) pool->release(pick_buf);
    pick_buf_bytes = std::max(bytes, pick_buf_bytes * 2);
    pick_buf = device_alloc(pick_buf_bytes, "sampling on the device (sorted logits)", kOther);
    return pick_buf;
  }
  void* tp_buffer(size_t bytes) {
    if (bytes <= tp_buf_bytes) return tp_buf;
    flush();
    if (tp_buf) pool->release(tp_buf);
    tp_buf_bytes = std::max(bytes, tp_buf_bytes * 2);
    tp_buf = device_alloc(tp_buf_bytes, "tensor-parallel statistics", kOther);
    return tp_buf;
  }
  Stats stats;

  // --- helpers ---
  Launch launch_cfg(int op) const {
    Launch L;
    L.stream = compute;
    L.pdl = use_pdl && !tracer && !sync_each;
    L.err = err_dev;
    L.err_gate = err_gate;
    L.op = op;
    L.scalars = scalars;
    L.early_loads = step_early_loads;
    return L;
  }
  bool step_early_loads = true;  // Launch::early_loads of the step running (execute)

  void* device_alloc(size_t bytes, const std::string& what, int kind) {
    void* p = pool->alloc.allocate(bytes, compute);
    if (!p) {
      size_t fr = 0, total = 0;
      cudaMemGetInfo(&fr, &total);
      cudaGetLastError();
      std::string held;
      uint64_t sum = 0;
      {
        std::lock_guard<std::mutex> lock(pool->mu);
        for (int k = 0; k < kKinds; ++k) {
          held += fmt::format("{}{} {}", k ? ", " : "", kind_name(k), human(pool->by_kind[k]));
          sum += pool->by_kind[k];
        }
      }
      fail("cuda backend: out of memory allocating {} for {}: the GPU ({}) has {} free of {}; "
           "bmsys holds {} ({}){}",
           human(bytes), what, prop.name, human(fr), human(total), human(sum), held,
           plan.empty() ? "" : "; the memory plan needs " + plan);
    }
    {
      std::lock_guard<std::mutex> lock(pool->mu);
      size_t sz = CachingAllocator::round(bytes);
      pool->owned[p] = {kind, sz};
      pool->by_kind[kind] += sz;
    }
    return p;
  }

  void ensure_staging() {
    if (pinned[0]) return;
    for (int i = 0; i < 2; ++i) {
      BMSYS_CUDA(cudaHostAlloc(&pinned[i], kStageBytes, cudaHostAllocDefault), "pinned staging buffer");
      dstage[i] = device_alloc(kStageBytes, "upload staging", kOther);
      BMSYS_CUDA(cudaEventCreateWithFlags(&stage_ev[i], cudaEventDisableTiming), "staging event");
    }
  }

  void ensure_scratch(size_t bytes) {
    if (bytes <= scratch_bytes) return;
    // Graphs captured so far point at the old scratch: drop them.
    for (auto& kv : graphs) cudaGraphExecDestroy(kv.second.exec);
    graphs.clear();
    if (scratch) pool->release(scratch);
    size_t want = std::max(bytes, scratch_bytes * 2);
    scratch = device_alloc(want, "kernel scratch", kOther);
    scratch_bytes = want;
  }

  // Copy stream waits for the compute stream (before it writes memory compute uses).
  void copy_after_compute() {
    BMSYS_CUDA(cudaEventRecord(ev_compute, compute), "stream ordering");
    BMSYS_CUDA(cudaStreamWaitEvent(copy, ev_compute, 0), "stream ordering");
  }
  void compute_after_copy() {
    BMSYS_CUDA(cudaEventRecord(ev_copy, copy), "stream ordering");
    BMSYS_CUDA(cudaStreamWaitEvent(compute, ev_copy, 0), "stream ordering");
  }

  void check_device_error() {
    volatile DeviceError* e = err_host;
    if (e->code == 0) return;
    DeviceError got;
    got.code = e->code;
    got.op = e->op;
    got.value = e->value;
    got.index = e->index;
    got.limit = e->limit;
    e->code = 0;
    cudaMemsetAsync(err_gate, 0, sizeof(int), compute);
    cudaStreamSynchronize(compute);
    cudaGetLastError();
    const char* opname = got.op >= 0 && got.op < static_cast<int>(last_kernels.size())
                             ? kernel_name(last_kernels[got.op])
                             : "upload";
    switch (got.code) {
      case kErrTokenId:
        fail("cuda backend: kernel '{}' (op {} of the last flush): token id {} at position {} is "
             "outside the vocabulary [0, {})",
             opname, got.op, got.value, got.index, got.limit);
      case kErrLabel:
        fail("cuda backend: kernel '{}' (op {} of the last flush): label {} at position {} is "
             "outside the vocabulary [0, {})",
             opname, got.op, got.value, got.index, got.limit);
      case kErrIntRange:
        fail("cuda backend: upload: integer {} at index {} does not fit the destination type",
             got.value, got.index);
      default:
        fail("cuda backend: {}: device error code {}", opname, got.code);
    }
  }

  void check_stream(cudaStream_t s, const char* what) {
    // With collectives in flight, wait by polling: a peer that died or hangs fails
    // the wait after --comm-timeout (naming it) instead of blocking here forever.
    if (coll.any_comm()) coll.any_comm()->wait_stream(s, what);
    cudaError_t e = cudaStreamSynchronize(s);
    if (e != cudaSuccess) {
      std::string names;
      if (!last_kernels.empty())
        names = fmt::format(" (the last flush ran {} ops, '{}' .. '{}'; set BMSYS_CUDA_SYNC=1 to "
                            "name the failing one)",
                            last_kernels.size(), kernel_name(last_kernels.front()),
                            kernel_name(last_kernels.back()));
      throw Error(fmt::format("cuda backend: {}: a kernel or copy failed: {} ({}){}", what,
                              cudaGetErrorString(e), cudaGetErrorName(e), names));
    }
  }

  void sync_all(const char* what) {
    check_stream(compute, what);
    check_stream(copy, what);
    if (flush_timed) {
      float ms = 0;
      if (cudaEventElapsedTime(&ms, flush_begin, flush_end) == cudaSuccess) stats.last_flush_ms = ms;
      cudaGetLastError();
      flush_timed = false;
    }
    if (tracer) tracer->collect();
    check_device_error();
  }

  // --- queue -> steps ---
  enum StepKind { kSingle, kGemvGroup, kSiluMul, kRopePair, kLinearGelu, kLinearFork, kInt8Group };
  struct Step {
    StepKind kind = kSingle;
    int idx[3] = {0, 0, 0};
    int n = 1;
    int epi = -1;   // kGemvGroup: the op fused as its epilogue (one job: an elementwise op or
                    // add_rms_norm's add; gate/up: swiglu)
    int norm = -1;  // kGemvGroup: the rms_norm producing x, fused as its prologue
  };
  // An add_rms_norm split across two GEMV steps (its add the epilogue of the GEMV that
  // produces an operand, its norm the prologue of the GEMVs that read its output): set
  // by gemv_group for the step planned next.
  int split_norm_ = -1;

  // GEMVs sharing op i's input, starting at op i (already marked used).
  Step gemv_group(int i, std::vector<char>& used) {
    const int n = static_cast<int>(ops.size());
    const Op& o = ops[i];
    Step s;
    s.idx[0] = i;
    s.kind = kGemvGroup;
    for (int j = i + 1; j < n && j <= i + 6 && s.n < kGemvMaxJobs; ++j) {
      if (used[j]) continue;
      const Op& q = ops[j];
      if (gemv_ok(q) && q.in[0].data == o.in[0].data && q.in[0].numel == o.in[0].numel &&
          q.in[0].last() == o.in[0].last() && q.ft == o.ft && hoistable(i, j, used)) {
        s.idx[s.n++] = j;
        used[j] = 1;
        continue;
      }
      if (q.train || overlaps(q.out, o.in[0])) break;  // x is rewritten: nothing later shares it
    }
    stats.launches_saved += s.n - 1;
    if (s.n == 1) {
      int k = next_unused(i, used);
      if (k >= 0 && epilogue_of(o, ops[k]) != GemvEpilogue::None) {
        s.epi = k;
        used[k] = 1;
        stats.launches_saved += 1;
      } else if (k >= 0 && add_norm_splits(i, k, used)) {
        s.epi = k;
        used[k] = 1;
        split_norm_ = k;
        stats.launches_saved += 1;
      }
    } else if (s.n == 2) {
      int k = next_unused(i, used);
      if (k >= 0 && swiglu_pairs(s, k)) {
        s.epi = k;
        used[k] = 1;
        stats.launches_saved += 1;
      }
    }
    return s;
  }

  // Whether the swiglu op k (y = silu(gate) * up) reads exactly the outputs of the two
  // GEMVs of step s (gate/up) and may run as their SwiGLU epilogue; orders the step's
  // jobs gate first.
  bool swiglu_pairs(Step& s, int k) const {
    const Op& e = ops[k];
    if (e.kernel != KernelId::SwiGlu || !e.train || e.train->in.size() != 2 || e.train->out.size() != 1)
      return false;
    const TensorView &gate = e.train->in[0], &up = e.train->in[1], &y = e.train->out[0];
    const Op *g = &ops[s.idx[0]], *u = &ops[s.idx[1]];
    if (gate.data == u->out.data && up.data == g->out.data) std::swap(g, u);
    if (gate.data != g->out.data || up.data != u->out.data) return false;
    if (g->out.numel != u->out.numel || g->out.last() != u->out.last() || gate.numel() != g->out.numel ||
        up.numel() != u->out.numel || y.numel() != g->out.numel)
      return false;
    if (gate.dtype != g->ft || up.dtype != g->ft || y.dtype != g->ft) return false;
    const TRef yr = tref_of(y);
    // A block writes its rows of gate and up, then of y: y may be one of them exactly.
    for (const Op* q : {g, u}) {
      for (int a = 0; a < q->nin; ++a)
        if (overlaps(yr, q->in[a])) return false;
      if (overlaps(yr, q->out) && y.data != q->out.data) return false;
    }
    if (g != &ops[s.idx[0]]) std::swap(s.idx[0], s.idx[1]);
    return true;
  }

  // Whether add_rms_norm op k (sum = a + b, y = rms_norm(sum)), with GEMV i's output as
  // a or b, splits into the Add epilogue of GEMV i (writing sum) and the norm prologue of
  // the GEMV(s) after it that read y (the decode step's o_proj and down_proj, then
  // gate/up and the next layer's q/k/v): the add_rms_norm launch disappears.
  bool add_norm_splits(int i, int k, const std::vector<char>& used) const {
    const Op& o = ops[i];
    const Op& r = ops[k];
    if (r.kernel != KernelId::AddRmsNorm || !r.train || r.train->in.size() != 3 || r.train->out.size() != 2)
      return false;
    const TensorView &a = r.train->in[0], &b = r.train->in[1], &gamma = r.train->in[2];
    const TensorView &sum = r.train->out[0], &y = r.train->out[1];
    const bool first = a.data == o.out.data;
    if (!first && b.data != o.out.data) return false;
    const TensorView& other = first ? b : a;
    const TRef sum_r = tref_of(sum), y_r = tref_of(y), other_r = tref_of(other), gamma_r = tref_of(gamma);
    if (a.dtype != o.ft || b.dtype != o.ft || sum.dtype != o.ft || y.dtype != o.ft || gamma.dtype != o.ft) return false;
    if ((first ? a : b).numel() != o.out.numel || other.numel() != o.out.numel || sum.numel() != o.out.numel ||
        y.numel() != o.out.numel)
      return false;
    // The epilogue: as epilogue_of's Add.
    if (overlaps(other_r, o.out) && other.data != o.out.data) return false;
    if (overlaps(sum_r, other_r) && sum.data != other.data) return false;
    for (int q = 0; q < o.nin; ++q)
      if (overlaps(sum_r, o.in[q])) return false;
    if (overlaps(sum_r, o.out) && sum.data != o.out.data) return false;
    // The prologue: every block reads sum and gamma, block 0 writes y.
    if (overlaps(y_r, sum_r) || overlaps(y_r, gamma_r) || overlaps(y_r, o.out)) return false;
    const int q = next_unused(k, used);
    if (q < 0 || !gemv_ok(ops[q])) return false;
    const Op& g = ops[q];
    const int64_t H = g.in[0].last();
    if (g.in[0].data != y.data || g.in[0].numel != y.numel() || g.ft != o.ft || H <= 0 ||
        (sum.shape.empty() ? 0 : sum.shape.back()) != H)
      return false;
    GemvJob j;
    j.w = g.in[1].data;
    if (!gemv_stages_x(g.ft, g.in[0].data, linear_M(g), H, &j, 1)) return false;
    return H % (16 / static_cast<int64_t>(dtype_size(g.ft))) == 0 && aligned16(sum.data) && aligned16(gamma.data);
  }

  // A decode-sized linear (M <= kGemvMaxRows) that one library call or kernel runs:
  // cuBLASLt (the own GEMVs off) or the weight-only INT8 GEMV. Such a call streams its
  // weights with too few blocks to keep the memory system busy through its ramp and tail:
  // those sharing an input run concurrently (cuBLASLt) or as one launch (INT8).
  bool forkable(const Op& o) const {
    if (!use_fork || gemv_ok(o)) return false;
    const int64_t M = linear_M(o);
    if (M < 1 || M > kGemvMaxRows || o.in[0].last() <= 0 || o.out.last() <= 0) return false;
    if (o.kernel == KernelId::Linear) return gemm->supported(gemm_args(o));
    // The weight-only INT8 GEMV needs no kernel scratch (which the branches would share).
    return o.kernel == KernelId::LinearInt8 && !o.p.int8_act && linear_int8_scratch_bytes(int8_args(o)) == 0;
  }

  // The linears after op i that read the same input (q/k/v, gate/up) and may run beside
  // it: each of them on its own stream (kLinearFork). A step of one op when there is none.
  Step linear_fork(int i, std::vector<char>& used) {
    const int n = static_cast<int>(ops.size());
    const Op& o = ops[i];
    Step s;
    s.idx[0] = i;
    for (int j = i + 1; j < n && j <= i + 6 && s.n < 1 + kForkBranches; ++j) {
      if (used[j]) continue;
      const Op& q = ops[j];
      if (q.kernel == o.kernel && forkable(q) && q.in[0].data == o.in[0].data && q.in[0].numel == o.in[0].numel &&
          q.in[0].last() == o.in[0].last() && q.ft == o.ft && hoistable(i, j, used)) {
        bool apart = true;  // no branch writes what another reads or writes
        for (int k = 0; k < s.n && apart; ++k) {
          const Op& p = ops[s.idx[k]];
          for (int a = 0; a < q.nin; ++a) apart = apart && !overlaps(q.in[a], p.out);
          for (int a = 0; a < p.nin; ++a) apart = apart && !overlaps(p.in[a], q.out);
          apart = apart && !overlaps(p.out, q.out);
        }
        if (apart) {
          s.idx[s.n++] = j;
          continue;
        }
      }
      if (q.train || overlaps(q.out, o.in[0])) break;  // x is rewritten: nothing later shares it
    }
    if (s.n > 1) {
      // cuBLASLt calls run on fork streams; the own INT8 GEMV takes all weights at once.
      s.kind = o.kernel == KernelId::LinearInt8 ? kInt8Group : kLinearFork;
      stats.forked_linears += s.n - 1;
      for (int k = 1; k < s.n; ++k) used[s.idx[k]] = 1;
    }
    return s;
  }

  // The rms_norm op i can be the prologue of the GEMV(s) that follow it.
  bool norm_fusable(int i, const std::vector<char>& used) const {
    const Op& r = ops[i];
    const int k = next_unused(i, used);
    if (k < 0 || !gemv_ok(ops[k])) return false;
    const Op& g = ops[k];
    if (g.in[0].data != r.out.data || g.in[0].numel != r.out.numel || g.ft != r.ft) return false;
    if (overlaps(r.out, r.in[0]) || overlaps(r.out, r.in[1])) return false;
    GemvJob j;
    j.w = g.in[1].data;
    if (!gemv_stages_x(g.ft, g.in[0].data, linear_M(g), g.in[0].last(), &j, 1)) return false;
    const int64_t pn = 16 / static_cast<int64_t>(dtype_size(r.ft));
    return r.in[0].last() % pn == 0 && aligned16(r.in[0].data) && aligned16(r.in[1].data);
  }

  // The elementwise op `q` can be the epilogue of the GEMV `o` (it consumes o's output
  // and nothing the GEMV reads aliases what q writes).
  GemvEpilogue epilogue_of(const Op& o, const Op& q) const {
    if (q.ft != o.ft || q.out.numel != o.out.numel) return GemvEpilogue::None;
    GemvEpilogue e = GemvEpilogue::None;
    const TRef* other = nullptr;
    switch (q.kernel) {
      case KernelId::Add:
      case KernelId::Mul: {
        int t = q.in[0].data == o.out.data ? 0 : q.in[1].data == o.out.data ? 1 : -1;
        if (t < 0 || q.in[t].numel != o.out.numel) return GemvEpilogue::None;
        other = &q.in[1 - t];
        if (other->numel != o.out.numel) return GemvEpilogue::None;
        if (overlaps(*other, o.out) && other->data != o.out.data) return GemvEpilogue::None;
        if (overlaps(q.out, *other) && q.out.data != other->data) return GemvEpilogue::None;
        e = q.kernel == KernelId::Add ? GemvEpilogue::Add : GemvEpilogue::Mul;
        break;
      }
      case KernelId::Silu:
        if (q.in[0].data != o.out.data || q.in[0].numel != o.out.numel) return GemvEpilogue::None;
        e = GemvEpilogue::Silu;
        break;
      case KernelId::Gelu:
        if (q.in[0].data != o.out.data || q.in[0].numel != o.out.numel) return GemvEpilogue::None;
        e = q.p.gelu_tanh ? GemvEpilogue::GeluTanh : GemvEpilogue::GeluErf;
        break;
      default:
        return GemvEpilogue::None;
    }
    for (int a = 0; a < o.nin; ++a)
      if (overlaps(q.out, o.in[a])) return GemvEpilogue::None;
    if (overlaps(q.out, o.out) && q.out.data != o.out.data) return GemvEpilogue::None;
    return e;
  }

  int64_t linear_M(const Op& o) const {
    int64_t K = o.in[0].last(), N = o.out.last();
    return K ? o.in[0].numel / K : (N ? o.out.numel / N : 0);
  }
  bool gemv_ok(const Op& o) const {
    if (!use_gemv || o.kernel != KernelId::Linear || o.p.wt) return false;
    int64_t K = o.in[0].last(), M = linear_M(o);
    return K > 0 && o.out.last() > 0 && M >= 1 && M <= kGemvMaxRows;
  }
  GemmArgs gemm_args(const Op& o) const {
    GemmArgs g;
    g.dtype = o.ft;
    g.x = o.in[0].data;
    g.w = o.in[1].data;
    g.bias = o.nin == 3 ? o.in[2].data : nullptr;
    g.y = o.out.data;
    g.K = o.in[0].last();
    g.N = o.out.last();
    g.M = linear_M(o);
    g.w_transposed = o.p.wt;
    return g;
  }

  // Whether op j may run before the not-yet-run ops strictly between i and j.
  bool hoistable(int i, int j, const std::vector<char>& used) const {
    const Op& q = ops[j];
    for (int k = i + 1; k < j; ++k) {
      if (used[k]) continue;
      const Op& o = ops[k];
      if (o.train) return false;
      for (int a = 0; a < q.nin; ++a)
        if (overlaps(q.in[a], o.out)) return false;
      if (overlaps(q.out, o.out)) return false;
      for (int a = 0; a < o.nin; ++a)
        if (overlaps(o.in[a], q.out)) return false;
    }
    return true;
  }

  int next_unused(int i, const std::vector<char>& used) const {
    for (int k = i + 1; k < static_cast<int>(ops.size()); ++k)
      if (!used[k]) return k;
    return -1;
  }

  std::vector<Step> plan_steps() {
    split_norm_ = -1;
    const int n = static_cast<int>(ops.size());
    std::vector<Step> steps;
    std::vector<char> used(n, 0);
    for (int i = 0; i < n; ++i) {
      if (used[i]) continue;
      used[i] = 1;
      const Op& o = ops[i];
      Step s;
      s.idx[0] = i;
      if (use_fuse && gemv_ok(o)) {
        const int pending = split_norm_;
        split_norm_ = -1;
        s = gemv_group(i, used);
        if (pending >= 0) s.norm = pending;  // add_norm_splits checked that op i reads y
      } else if (use_fuse && forkable(o) && (s = linear_fork(i, used)).kind != kSingle) {
        // the step is made
      } else if (use_fuse && o.kernel == KernelId::RmsNorm && norm_fusable(i, used)) {
        const int k = next_unused(i, used);
        used[k] = 1;
        s = gemv_group(k, used);
        s.norm = i;
        stats.launches_saved += 1;
      } else if (use_fuse && o.kernel == KernelId::Silu) {
        int k = next_unused(i, used);
        if (k >= 0) {
          const Op& q = ops[k];
          int t = q.kernel == KernelId::Mul ? (q.in[0].data == o.out.data ? 0 : q.in[1].data == o.out.data ? 1 : -1) : -1;
          if (t >= 0 && q.in[0].numel == o.out.numel && q.ft == o.ft && !overlaps(q.in[1 - t], o.out) &&
              !overlaps(q.out, o.out)) {
            s.kind = kSiluMul;
            s.idx[1] = k;
            s.n = 2;
            used[k] = 1;
            stats.launches_saved += 1;
          }
        }
      } else if (use_fuse && o.kernel == KernelId::Rope) {
        int k = next_unused(i, used);
        if (k >= 0) {
          const Op& q = ops[k];
          if (q.kernel == KernelId::Rope && q.in[1].data == o.in[1].data && q.ft == o.ft &&
              q.p.head_dim == o.p.head_dim && q.p.theta == o.p.theta &&
              q.in[0].dims[0] == o.in[0].dims[0] && q.in[0].dims[1] == o.in[0].dims[1] &&
              !overlaps(q.in[0], o.out) && !overlaps(q.out, o.out) && !overlaps(q.out, o.in[0])) {
            s.kind = kRopePair;
            s.idx[1] = k;
            s.n = 2;
            used[k] = 1;
            stats.launches_saved += 1;
          }
        }
      } else if (use_fuse && o.kernel == KernelId::Linear && !gemv_ok(o)) {
        int k = next_unused(i, used);
        if (k >= 0) {
          const Op& q = ops[k];
          if (q.kernel == KernelId::Gelu && q.p.gelu_tanh && q.in[0].data == o.out.data &&
              q.in[0].numel == o.out.numel && q.ft == o.ft && !overlaps(q.out, o.out) &&
              !overlaps(q.out, o.in[0]) && !overlaps(q.out, o.in[1])) {
            GemmArgs g = gemm_args(o);
            g.gelu = true;
            g.y = q.out.data;
            g.gelu_aux = o.out.data;
            if (gemm->supported(g)) {
              s.kind = kLinearGelu;
              s.idx[1] = k;
              s.n = 2;
              used[k] = 1;
              stats.launches_saved += 1;
            }
          }
        }
      }
      steps.push_back(s);
    }
    return steps;
  }

  size_t scratch_need() const {
    size_t need = 0;
    for (const Op& o : ops) {
      if (o.train) need = std::max(need, train_scratch_bytes(*o.train));
      if (o.kernel == KernelId::RopeAttention) need = std::max(need, rope_attention_scratch(o));
      if (o.kernel == KernelId::CrossEntropy)
        need = std::max(need, cross_entropy_scratch_bytes(o.in[0].dims[0], o.in[0].dims[1], o.p.shift));
      if (o.kernel == KernelId::LinearInt8) need = std::max(need, linear_int8_scratch_bytes(int8_args(o)));
    }
    return need;
  }

  LinearInt8Args int8_args(const Op& o) const {
    LinearInt8Args a;
    a.dtype = o.ft;
    a.x = o.in[0].data;
    a.q = static_cast<const int8_t*>(o.in[1].data);
    a.scale = static_cast<const float*>(o.in[2].data);
    a.bias = o.nin == 4 ? o.in[3].data : nullptr;
    a.y = o.out.data;
    a.K = o.in[0].last();
    a.N = o.out.last();
    a.M = linear_M(o);
    a.int8_activations = o.p.int8_act;
    a.tensor_core_gemv = use_int8_mma;
    return a;
  }

  AttentionArgs attn_args(const Op& o) const {
    AttentionArgs a;
    a.dtype = o.ft;
    a.q = o.in[0].data;
    a.k = o.in[1].data;
    a.v = o.in[2].data;
    a.y = o.out.data;
    a.B = o.in[0].dims[0];
    a.S = o.in[0].dims[1];
    a.Nq = o.p.nq;
    a.Nkv = o.p.nkv;
    a.D = o.p.head_dim;
    a.scale = static_cast<float>(o.p.scale);
    a.causal = o.p.causal;
    const int cache_in = o.kernel == KernelId::RopeAttention ? 4 : 3;
    if (o.nin == cache_in + 2) {
      a.k_cache = o.in[cache_in].data;
      a.v_cache = o.in[cache_in + 1].data;
      a.Smax = o.in[cache_in].dims[1];
    }
    return a;
  }

  // rope_attention's q and k rotated into scratch (when attention cannot apply the rope):
  // q's bytes rounded up to 256, then k's.
  static size_t padded256(size_t bytes) { return (bytes + 255) / 256 * 256; }
  static size_t rope_attention_scratch(const Op& o) { return padded256(o.in[0].bytes()) + padded256(o.in[1].bytes()); }

  // rope_attention: the decode kernel rotates q and the new key itself; every other case
  // runs rope on q and k in one launch (into scratch), then attention.
  void rope_attention(const Op& o, const Launch& L) {
    AttentionArgs a = attn_args(o);
    const int64_t* pos = static_cast<const int64_t*>(o.in[3].data);
    const void* table = rope_table(L, o.p.theta, a.D);
    if (attention_fuses_rope(a)) {
      a.rope_pos = pos;
      a.rope_theta = o.p.theta;
      a.rope_table = table;
      a.rope_table_len = kRopePositions;
      attention(L, a, prop.multiProcessorCount, use_flash);
      return;
    }
    char* qr = static_cast<char*>(scratch);
    char* kr = qr + padded256(o.in[0].bytes());
    const int64_t T = a.B * a.S;
    RopeTensor t[2];
    t[0].x = a.q;
    t[0].y = qr;
    t[0].heads = a.Nq;
    t[1].x = a.k;
    t[1].y = kr;
    t[1].heads = a.Nkv;
    rope(L, o.ft, t, 2, pos, T, a.D, o.p.theta, table, kRopePositions);
    a.q = qr;
    a.k = kr;
    attention(L, a, prop.multiProcessorCount, use_flash);
  }

  // The table of rope's angles for (theta, D) (rope_tables), built on first use; null
  // during a capture before that.
  const void* rope_table(const Launch& L, double theta, int64_t D) {
    for (const RopeTable& r : rope_tables)
      if (r.theta == theta && r.D == D) return r.data;
    if (capturing) return nullptr;
    RopeTable r{theta, D, device_alloc(kRopePositions * (D / 2) * 2 * sizeof(float), "rope table", kOther)};
    cuda::rope_table(L, r.data, kRopePositions, D, theta);
    rope_tables.push_back(r);
    return r.data;
  }

  // Which GEMV implementation runs a step of `njobs` weights sharing x [M,K]: with
  // BMSYS_CUDA_GEMV=1 (the default) the fastest of the row kernel, the pipelined kernel
  // and (for a lone weight without epilogue or fused norm: cublas_ok) cuBLASLt, timed once
  // per shape on the first eager run (into scratch outputs) and cached.
  int pick_gemv(const Launch& L, DType t, const void* x, int64_t M, int64_t K, const GemvJob* jobs,
                int njobs, bool cublas_ok) {
    if (gemv_variant != 1) return gemv_variant;
    int64_t totalN = 0;
    for (int j = 0; j < njobs; ++j) totalN += jobs[j].N;
    const std::string key = fmt::format("{}:{}:{}:{}:{}:{}", static_cast<int>(t), M, K, totalN, njobs,
                                        cublas_ok ? 1 : 0);
    auto it = gemv_pick.find(key);
    if (it != gemv_pick.end()) return it->second;
    if (capturing) return 2;
    size_t need = 0;
    for (int j = 0; j < njobs; ++j) need += 2 * static_cast<size_t>(M * jobs[j].N) * dtype_size(t) + 256;
    if (need > tune_bytes) {
      if (tune_buf) pool->release(tune_buf);
      tune_buf = device_alloc(need, "GEMV tuning outputs", kOther);
      tune_bytes = need;
    }
    GemvJob tj[kGemvMaxJobs];
    char* p = static_cast<char*>(tune_buf);
    for (int j = 0; j < njobs; ++j) {
      tj[j] = jobs[j];
      tj[j].y = p;
      p += (static_cast<size_t>(M * jobs[j].N) * dtype_size(t) + 127) / 128 * 128;
      if (tj[j].out) {
        tj[j].out = p;
        p += (static_cast<size_t>(M * jobs[j].N) * dtype_size(t) + 127) / 128 * 128;
      }
    }
    if (!tune_ev[0]) {
      BMSYS_CUDA(cudaEventCreate(&tune_ev[0]), "GEMV tuning");
      BMSYS_CUDA(cudaEventCreate(&tune_ev[1]), "GEMV tuning");
    }
    Launch Lt = L;
    Lt.pdl = false;
    // cuBLASLt's form of the one-job GEMV into the tuning output.
    GemmArgs g;
    g.dtype = t;
    g.x = x;
    g.w = tj[0].w;
    g.bias = tj[0].bias;
    g.y = tj[0].y;
    g.M = M;
    g.K = K;
    g.N = tj[0].N;
    auto run = [&](int v) {
      if (v == 0)
        gemm->run(g, compute);
      else
        cuda::gemv(Lt, t, x, M, K, tj, njobs, prop.multiProcessorCount, v);
    };
    std::vector<int> cands = {2};
    if (gemv_stages_x(t, x, M, K, jobs, njobs)) cands.push_back(3);
    if (cublas_ok && njobs == 1 && gemm->supported(g)) cands.push_back(0);
    // Each timed run starts with the weights out of L2 (a decode step streams far more
    // than L2 holds, so that is how the kernels meet them), by overwriting a buffer
    // larger than L2 first; only the GEMV itself is timed.
    const size_t l2_flush_bytes = std::max<size_t>(2 * static_cast<size_t>(prop.l2CacheSize), 64 << 20);
    void* l2_flush = device_alloc(l2_flush_bytes, "GEMV tuning L2 flush", kOther);
    int best = cands.front();
    float best_ms = 1e30f;
    for (int v : cands) {
      run(v);  // warm-up (module load, heuristics)
      float total = 0;
      for (int r = 0; r < 5; ++r) {
        BMSYS_CUDA(cudaMemsetAsync(l2_flush, r, l2_flush_bytes, compute), "GEMV tuning");
        BMSYS_CUDA(cudaEventRecord(tune_ev[0], compute), "GEMV tuning");
        run(v);
        BMSYS_CUDA(cudaEventRecord(tune_ev[1], compute), "GEMV tuning");
        BMSYS_CUDA(cudaEventSynchronize(tune_ev[1]), "GEMV tuning");
        float ms = 0;
        BMSYS_CUDA(cudaEventElapsedTime(&ms, tune_ev[0], tune_ev[1]), "GEMV tuning");
        total += ms;
      }
      if (total < best_ms) {
        best_ms = total;
        best = v;
      }
    }
    pool->release(l2_flush);
    gemv_pick[key] = best;
    return best;
  }

  void run_linear(const Op& o, const Launch& L) {
    GemmArgs g = gemm_args(o);
    if (g.M == 0 || g.N == 0) return;
    if (g.K > 0 && gemv_ok(o)) {
      GemvJob j;
      j.w = g.w;
      j.bias = g.bias;
      j.y = g.y;
      j.N = g.N;
      const int v = pick_gemv(L, o.ft, g.x, g.M, g.K, &j, 1, true);
      if (v == 0) {
        gemm->run(g, compute);
        return;
      }
      cuda::gemv(L, o.ft, g.x, g.M, g.K, &j, 1, prop.multiProcessorCount, v);
      return;
    }
    if (g.K > 0 && gemm->supported(g)) {
      gemm->run(g, compute);
      return;
    }
    gemm_simt(L, o.ft, g.y, g.x, g.w, g.bias, g.M, g.K, g.N, g.w_transposed);
  }

  void run_train(const Op& o, const Launch& L) {
    if (!train_gemm) train_gemm = make_train_gemm();
    TrainEnv env;
    env.scratch = scratch;
    env.scratch_bytes = scratch_bytes;
    env.workspace = workspace;
    env.workspace_bytes = kWorkspaceBytes;
    env.gemm = train_gemm.get();
    env.use_flash = use_flash;
    run_train_op(*o.train, L, env);
  }

  // A training kernel: queued like any op, its signature from train_signature(). A
  // different T or L than the queued ops' flushes first.
  void queue_train(const KernelLaunch& l) { queue_train_op(make_train_op(l), l); }
  void queue_train_op(std::shared_ptr<const TrainOp> t, const KernelLaunch& l) {
    if (t->uses_step || t->uses_loss_scale) {
      if (queue_train_scalars && !ops.empty() && (l.ctx.step != queue_T || l.ctx.loss_scale != queue_L))
        flush();
      queue_train_scalars = true;
      queue_T = l.ctx.step;
      queue_L = l.ctx.loss_scale;
    }
    if (ops.empty()) queue_P = l.ctx.start_pos;
    Op op;
    op.kernel = t->kernel;
    op.train = t;
    auto view = [](const TensorView& v, TRef& r) {
      r.data = v.data;
      r.dtype = v.dtype;
      r.rank = static_cast<int>(std::min<size_t>(v.shape.size(), kMaxRank));
      for (int d = 0; d < r.rank; ++d) r.dims[d] = v.shape[d];
      r.numel = v.numel();
    };
    op.nin = static_cast<int>(std::min<size_t>(t->in.size(), std::size(op.in)));
    for (int i = 0; i < op.nin; ++i) view(t->in[i], op.in[i]);
    view(t->out.at(0), op.out);
    op.ft = t->out[0].dtype;
    std::vector<uint64_t> words = {0x747261696eull, static_cast<uint64_t>(l.ctx.batch),
                                   static_cast<uint64_t>(l.ctx.seq)};
    train_signature(*t, words);
    for (uint64_t w : words) mix(w);
    ops.push_back(std::move(op));
  }

  void run_single(const Op& o, const Launch& L) {
    if (o.train) {
      run_train(o, L);
      return;
    }
    const auto& in = o.in;
    const TRef& y = o.out;
    switch (o.kernel) {
      case KernelId::Positions:
        positions(L, static_cast<int64_t*>(y.data), in[0].dims[0], in[0].dims[1]);
        return;
      case KernelId::PpMean:  // the micro-batches' gradient sum -> mean (collectives.h)
        scale_elements(L.stream, o.ft, y.data, in[0].data, y.numel, static_cast<float>(o.p.scale));
        return;
      case KernelId::Embedding:
        embedding(L, o.ft, y.data, static_cast<const int64_t*>(in[0].data), in[0].numel,
                  in[1].data, in[1].dims[0], in[1].dims[1]);
        return;
      case KernelId::Linear:
        run_linear(o, L);
        return;
      case KernelId::LinearInt8:
        linear_int8(L, int8_args(o), *gemm_i8, *gemm, scratch, scratch_bytes);
        return;
      case KernelId::Slice: {
        int64_t K = in[0].last();
        slice(L, y.data, in[0].data, dtype_size(in[0].dtype), K ? in[0].numel / K : 0, K,
              o.p.offset, y.last());
        return;
      }
      case KernelId::LayerNorm: {
        int64_t H = in[0].last();
        layer_norm(L, o.ft, y.data, in[0].data, in[1].data, in[2].data, H ? in[0].numel / H : 0, H,
                   static_cast<float>(o.p.eps));
        return;
      }
      case KernelId::RmsNorm: {
        int64_t H = in[0].last();
        rms_norm(L, o.ft, y.data, in[0].data, in[1].data, H ? in[0].numel / H : 0, H,
                 static_cast<float>(o.p.eps));
        return;
      }
      case KernelId::Rope: {
        int64_t T = in[0].dims[0] * in[0].dims[1], D = o.p.head_dim;
        RopeTensor t;
        t.x = in[0].data;
        t.y = y.data;
        t.heads = T ? in[0].numel / T / D : 0;
        rope(L, o.ft, &t, 1, static_cast<const int64_t*>(in[1].data), T, D, o.p.theta,
             rope_table(L, o.p.theta, D), kRopePositions);
        return;
      }
      case KernelId::Attention:
        attention(L, attn_args(o), prop.multiProcessorCount, use_flash);
        return;
      case KernelId::RopeAttention:
        rope_attention(o, L);
        return;
      case KernelId::Gelu:
        unary(L, o.ft, o.p.gelu_tanh ? UnaryOp::GeluTanh : UnaryOp::GeluErf, y.data, in[0].data,
              in[0].numel);
        return;
      case KernelId::Silu:
        unary(L, o.ft, UnaryOp::Silu, y.data, in[0].data, in[0].numel);
        return;
      case KernelId::Add:
        binary(L, o.ft, BinaryOp::Add, y.data, in[0].data, in[1].data, in[0].numel);
        return;
      case KernelId::Mul:
        binary(L, o.ft, BinaryOp::Mul, y.data, in[0].data, in[1].data, in[0].numel);
        return;
      case KernelId::CrossEntropy:
        cross_entropy(L, o.ft, y.data, y.dtype, in[0].data, static_cast<const int64_t*>(in[1].data),
                      in[0].dims[0], in[0].dims[1], in[0].dims[2], o.p.shift, scratch);
        return;
      default:
        break;
    }
    fail("cuda backend: kernel '{}' is not implemented", kernel_name(o.kernel));
  }

  std::string step_name(const Step& s) const {
    const Op& o = ops[s.idx[0]];
    switch (s.kind) {
      case kGemvGroup: {
        // A split add_rms_norm shows as "+add" on the GEMV before and "rms_norm+" after.
        std::string name = s.norm >= 0 ? "rms_norm+linear" : "linear";
        if (s.n > 1) name += fmt::format(" x{}", s.n);
        if (s.epi >= 0)
          name += ops[s.epi].kernel == KernelId::AddRmsNorm ? std::string("+add")
                                                             : fmt::format("+{}", kernel_name(ops[s.epi].kernel));
        return name + " (gemv)";
      }
      case kSiluMul: return "silu*mul";
      case kRopePair: return "rope x2";
      case kLinearGelu: return "linear+gelu (cuBLASLt)";
      case kLinearFork:
        return fmt::format("linear x{} (concurrent)", s.n);
      case kInt8Group:
        return fmt::format("linear_int8 x{} (grouped gemv)", s.n);
      case kSingle: break;
    }
    if (o.kernel == KernelId::Attention)
      return fmt::format("attention ({})", attention_impl(attn_args(o), use_flash));
    if (o.kernel == KernelId::RopeAttention) {
      const AttentionArgs a = attn_args(o);
      return attention_fuses_rope(a) ? "rope_attention (decode, rope inside)"
                                     : fmt::format("rope_attention (rope x2, {})", attention_impl(a, use_flash));
    }
    if (o.kernel == KernelId::LinearInt8)
      return fmt::format("linear_int8 ({})", linear_int8_impl(int8_args(o), *gemm_i8, *gemm, scratch));
    if (o.kernel == KernelId::Linear) {
      GemmArgs g = gemm_args(o);
      return g.K > 0 && gemm->supported(g) ? "linear (cuBLASLt)" : "linear (simt)";
    }
    return kernel_name(o.kernel);
  }

  std::string step_args(const Step& s) const {
    std::string a = "{";
    std::vector<int> all(s.idx, s.idx + s.n);
    if (s.epi >= 0) all.push_back(s.epi);
    if (s.norm >= 0) all.insert(all.begin(), s.norm);
    for (size_t k = 0; k < all.size(); ++k) {
      const int oi = all[k];
      const Op& o = ops[oi];
      std::string shapes;
      for (int i = 0; i < o.nin; ++i) shapes += (i ? " " : "") + shape_of(o.in[i]);
      a += fmt::format("{}\"op{}\":\"{} {} -> {} {}\"", k ? "," : "", oi, kernel_name(o.kernel),
                       shapes, shape_of(o.out), dtype_name(o.ft));
    }
    return a + "}";
  }

  void run_step(const Step& s) {
    const Launch L = launch_cfg(s.idx[0]);
    const Op& o = ops[s.idx[0]];
    switch (s.kind) {
      case kSingle:
        run_single(o, L);
        return;
      case kGemvGroup: {
        GemvJob jobs[kGemvMaxJobs];
        for (int k = 0; k < s.n; ++k) {
          const Op& q = ops[s.idx[k]];
          jobs[k].w = q.in[1].data;
          jobs[k].bias = q.nin == 3 ? q.in[2].data : nullptr;
          jobs[k].y = q.out.data;
          jobs[k].N = q.out.last();
        }
        if (s.epi >= 0) {
          const Op& e = ops[s.epi];
          if (e.kernel == KernelId::AddRmsNorm) {  // its add (add_norm_splits)
            const std::vector<TensorView>& in = e.train->in;
            jobs[0].epi = GemvEpilogue::Add;
            jobs[0].out = e.train->out[0].data;
            jobs[0].other = in[0].data == o.out.data ? in[1].data : in[0].data;
          } else if (e.kernel == KernelId::SwiGlu) {  // over gate (job 0) and up (swiglu_pairs)
            jobs[0].epi = GemvEpilogue::SwiGlu;
            jobs[0].out = e.train->out[0].data;
          } else {
            jobs[0].epi = epilogue_of(o, e);
            jobs[0].out = e.out.data;
            if (e.kernel == KernelId::Add || e.kernel == KernelId::Mul)
              jobs[0].other = e.in[0].data == o.out.data ? e.in[1].data : e.in[0].data;
          }
        }
        GemvNorm norm;
        if (s.norm >= 0) {
          const Op& r = ops[s.norm];
          if (r.kernel == KernelId::AddRmsNorm) {  // its norm, of the sum the GEMV before wrote
            norm.x = r.train->out[0].data;
            norm.gamma = r.train->in[2].data;
            norm.eps = static_cast<float>(r.train->eps);
            norm.threads = fused::kAddRmsNormThreads;
          } else {
            norm.x = r.in[0].data;
            norm.gamma = r.in[1].data;
            norm.eps = static_cast<float>(r.p.eps);
          }
        }
        const int v = pick_gemv(L, o.ft, o.in[0].data, linear_M(o), o.in[0].last(), jobs, s.n,
                                s.norm < 0 && s.epi < 0 && s.n == 1);
        if (v == 0) {
          gemm->run(gemm_args(o), compute);
          return;
        }
        cuda::gemv(L, o.ft, o.in[0].data, linear_M(o), o.in[0].last(), jobs, s.n,
                   prop.multiProcessorCount, v, s.norm >= 0 ? &norm : nullptr);
        return;
      }
      case kSiluMul: {
        const Op& q = ops[s.idx[1]];
        const void* up = q.in[0].data == o.out.data ? q.in[1].data : q.in[0].data;
        silu_mul(L, o.ft, o.out.data, q.out.data, o.in[0].data, up, o.in[0].numel);
        return;
      }
      case kRopePair: {
        const Op& q = ops[s.idx[1]];
        int64_t T = o.in[0].dims[0] * o.in[0].dims[1], D = o.p.head_dim;
        RopeTensor t[2];
        t[0].x = o.in[0].data;
        t[0].y = o.out.data;
        t[0].heads = T ? o.in[0].numel / T / D : 0;
        t[1].x = q.in[0].data;
        t[1].y = q.out.data;
        t[1].heads = T ? q.in[0].numel / T / D : 0;
        rope(L, o.ft, t, 2, static_cast<const int64_t*>(o.in[1].data), T, D, o.p.theta,
             rope_table(L, o.p.theta, D), kRopePositions);
        return;
      }
      case kLinearGelu: {
        const Op& q = ops[s.idx[1]];
        GemmArgs g = gemm_args(o);
        g.gelu = true;
        g.y = q.out.data;
        g.gelu_aux = o.out.data;
        gemm->run(g, compute);
        return;
      }
      case kLinearFork:
        run_fork(s, L);
        return;
      case kInt8Group: {
        Int8GemvJob jobs[kGemvMaxJobs];
        for (int k = 0; k < s.n; ++k) {
          const LinearInt8Args a = int8_args(ops[s.idx[k]]);
          jobs[k].q = a.q;
          jobs[k].scale = a.scale;
          jobs[k].bias = a.bias;
          jobs[k].y = a.y;
          jobs[k].N = a.N;
        }
        gemv_int8(L, o.ft, o.in[0].data, linear_M(o), o.in[0].last(), jobs, s.n, use_int8_mma);
        return;
      }
    }
  }

  // Op idx[k] (k >= 1) on fork stream k-1 after what the compute stream queued so far,
  // op idx[0] on the compute stream, which then waits for the branches. In a captured
  // graph this becomes parallel nodes. Every branch computes what it computes alone.
  void run_fork(const Step& s, const Launch& L) {
    auto run_one = [&](const Op& o, const Launch& Lb, void* ws) {
      if (o.kernel == KernelId::Linear)
        gemm->run(gemm_args(o), Lb.stream, ws);
      else
        linear_int8(Lb, int8_args(o), *gemm_i8, *gemm, scratch, scratch_bytes);
    };
    BMSYS_CUDA(cudaEventRecord(fork_ev, compute), "forking linears");
    for (int k = 1; k < s.n; ++k) {
      cudaStream_t st = fork_stream[k - 1];
      BMSYS_CUDA(cudaStreamWaitEvent(st, fork_ev, 0), "forking linears");
      Launch Lb = L;
      Lb.stream = st;
      Lb.pdl = false;  // its predecessor is an event, not a kernel of its stream
      Lb.op = s.idx[k];
      run_one(ops[s.idx[k]], Lb, fork_workspace[k - 1]);
      BMSYS_CUDA(cudaEventRecord(join_ev[k - 1], st), "joining forked linears");
    }
    run_one(ops[s.idx[0]], L, nullptr);
    for (int k = 1; k < s.n; ++k)
      BMSYS_CUDA(cudaStreamWaitEvent(compute, join_ev[k - 1], 0), "joining forked linears");
  }

  // The fork streams, events and workspaces, made before the first flush that may fork
  // (never while a graph is captured).
  void ensure_fork() {
    bool any = false, cublas = false;
    for (const Op& o : ops) {
      const bool f = forkable(o);
      any = any || f;
      cublas = cublas || (f && o.kernel == KernelId::Linear);
    }
    if (any && !fork_ev) {
      for (int k = 0; k < kForkBranches; ++k) {
        BMSYS_CUDA(cudaStreamCreateWithFlags(&fork_stream[k], cudaStreamNonBlocking), "creating streams");
        BMSYS_CUDA(cudaEventCreateWithFlags(&join_ev[k], cudaEventDisableTiming), "creating events");
      }
      BMSYS_CUDA(cudaEventCreateWithFlags(&fork_ev, cudaEventDisableTiming), "creating events");
    }
    if (cublas && !fork_workspace[0])  // only cuBLASLt needs a workspace per stream
      for (int k = 0; k < kForkBranches; ++k)
        fork_workspace[k] = device_alloc(kWorkspaceBytes, "cuBLASLt workspace (forked linears)", kOther);
  }

  static bool is_collective(KernelId k) {
    return k == KernelId::AllReduce || k == KernelId::ReduceScatter || k == KernelId::AllGather ||
           k == KernelId::SyncParam || k == KernelId::TpAllReduce || is_pipeline_transfer(k);
  }
  // pp_send, pp_recv, pp_broadcast: collectives on the pipeline group (collectives.h).
  static bool is_pipeline_transfer(KernelId k) {
    return k == KernelId::PpSend || k == KernelId::PpRecv || k == KernelId::PpBroadcast;
  }

  // A pipeline transfer, queued like the collectives (run_collective issues it).
  void queue_pipeline_transfer(const KernelLaunch& l) {
    bind_comm(l.ctx);
    const Attrs& a = *l.attrs;
    auto set = [](TRef& r, const TensorView& v) {
      r.data = v.data;
      r.dtype = v.dtype;
      r.rank = 1;
      r.dims[0] = v.numel();
      r.numel = v.numel();
    };
    Op op;
    op.kernel = l.kernel;
    if (!l.inputs.empty()) {
      set(op.in[0], l.inputs[0]);
      op.nin = 1;
    }
    if (!l.outputs.empty()) set(op.out, l.outputs[0]);
    op.ft = l.inputs.empty() ? op.out.dtype : op.in[0].dtype;
    if (l.kernel == KernelId::PpBroadcast) {
      op.p.root = static_cast<int>(a.get_int("root"));
    } else {
      op.p.peer = static_cast<int>(a.get_int("peer"));
      op.p.micro_batch = a.get_int("micro_batch");
      op.p.channel = a.get_int("channel");
    }
    if (ops.empty()) queue_P = l.ctx.start_pos;
    mix(0x7070000000000000ull ^ static_cast<uint64_t>(op.kernel));
    mix(reinterpret_cast<uint64_t>(op.in[0].data));
    mix(reinterpret_cast<uint64_t>(op.out.data));
    mix(static_cast<uint64_t>(op.in[0].numel) ^ (static_cast<uint64_t>(op.out.numel) << 32));
    mix(static_cast<uint64_t>(op.p.peer + 1) | (static_cast<uint64_t>(op.p.root) << 16) |
        (static_cast<uint64_t>(op.p.micro_batch) << 32) | (static_cast<uint64_t>(op.p.channel) << 48));
    ops.push_back(op);
  }

  // A tensor-parallel launch (tensor_parallel.h): its plan's compute steps queued as
  // training ops, its all-reduces as collectives (in place).
  void queue_tensor_parallel(const KernelLaunch& l) {
    bind_comm(l.ctx);
    auto plan = plan_tensor_parallel(l, [this](size_t bytes) { return tp_buffer(bytes); });
    for (const TpItem& it : plan) {
      if (it.step) {
        queue_train_op(it.step, l);
        continue;
      }
      if (ops.empty()) queue_P = l.ctx.start_pos;
      Op op;
      op.kernel = it.tp ? KernelId::TpAllReduce : KernelId::AllReduce;
      op.nin = 1;
      op.in[0].data = it.data;
      op.in[0].dtype = it.dtype;
      op.in[0].rank = 1;
      op.in[0].dims[0] = it.count;
      op.in[0].numel = it.count;
      op.out = op.in[0];
      op.ft = it.dtype;
      op.p.reduce = it.reduce;
      mix(0x7470616c6c726564ull ^ static_cast<uint64_t>(op.kernel));
      mix(reinterpret_cast<uint64_t>(it.data));
      mix(static_cast<uint64_t>(it.count) | (static_cast<uint64_t>(it.dtype) << 48) |
          (static_cast<uint64_t>(it.reduce) << 56));
      ops.push_back(op);
    }
  }

  // A collective step goes to the collective stream; a compute step first waits for
  // the in-flight collectives whose buffers it touches (collectives.h).
  bool run_collective(const Step& s) {
    const Op& o = ops[s.idx[0]];
    if (s.kind == kSingle && o.p.norm_ranks) {
      run_norm_ranks(o);
      return true;
    }
    if (s.kind == kSingle && is_collective(o.kernel)) {
      CollectiveOp c;
      c.kernel = o.kernel;
      c.dtype = o.out.dtype;
      c.in = o.kernel == KernelId::SyncParam ? o.out.data : o.in[0].data;
      c.in_count = o.kernel == KernelId::SyncParam ? o.out.numel : o.in[0].numel;
      c.out = o.out.data;
      c.out_count = o.out.numel;
      c.reduce = o.p.reduce;
      c.tp = o.kernel == KernelId::TpAllReduce;
      if (is_pipeline_transfer(o.kernel)) {
        c.dtype = o.ft;
        c.peer = o.p.peer;
        c.root = o.p.root;
        if (o.kernel != KernelId::PpBroadcast)
          c.what = fmt::format("{} of micro-batch {} (channel {}) {} stage {}", kernel_name(o.kernel), o.p.micro_batch,
                               o.p.channel, o.kernel == KernelId::PpSend ? "to" : "from", o.p.peer);
      }
      coll.launch(c, tracer.get(), tracer ? step_args(s) : std::string());
      return true;
    }
    if (!coll.any_comm()) return false;
    std::vector<Range> reads, writes;
    std::vector<int> all(s.idx, s.idx + s.n);
    if (s.epi >= 0) all.push_back(s.epi);
    if (s.norm >= 0) all.push_back(s.norm);
    for (int i : all) add_ranges(ops[i], reads, writes);
    coll.before_compute(reads, writes);
    return false;
  }

  // What an op reads and writes (for the collective ordering).
  static void add_ranges(const Op& q, std::vector<Range>& reads, std::vector<Range>& writes) {
    if (q.train) {  // training kernels: every operand (in/out hold the first ones only)
      for (const TensorView& v : q.train->in) reads.push_back({v.data, v.bytes()});
      for (const TensorView& v : q.train->out) writes.push_back({v.data, v.bytes()});
      return;
    }
    for (int a = 0; a < q.nin; ++a) reads.push_back({q.in[a].data, q.in[a].bytes()});
    for (int a : kernel_spec(q.kernel).mutated_inputs)
      if (a < q.nin) writes.push_back({q.in[a].data, q.in[a].bytes()});
    writes.push_back({q.out.data, q.out.bytes()});
  }

  // global_norm over ZeRO shards (attribute ranks = R > 1): the training kernel computes
  // the norm of this rank's shards, then a second op (norm_ranks) squares it, sums the
  // squares over the ranks on the collective stream and takes the root, on the device.
  void queue_distributed_norm(const KernelLaunch& l) {
    bind_comm(l.ctx);
    const TensorView& y = l.outputs.at(0);
    if (y.dtype != DType::F32 || y.numel() != 1)
      fail("cuda backend: global_norm over ranks: the norm must be one f32, not {} {}", y.numel(),
           dtype_name(y.dtype));
    Attrs local = *l.attrs;
    AttrValue one;
    one.ints = {0};
    local.set("ranks", one);
    local.set("pp_stages", one);
    KernelLaunch k = l;
    k.attrs = &local;
    queue_train(k);
    Op op;
    op.kernel = KernelId::AllReduce;
    op.nin = 1;
    op.in[0].data = y.data;
    op.in[0].numel = 1;
    op.out = op.in[0];
    op.p.norm_ranks = true;
    // Pipeline parallelism: each stage holds its own gradients; the squares are summed
    // over the data-parallel ranks (ZeRO shards), then over the stages.
    op.p.norm_dp = l.attrs->get_int("ranks", 0) > 1;
    op.p.norm_pp = l.attrs->get_int("pp_stages", 0) > 1;
    mix(0x6e6f726d72616e6bull);
    mix(reinterpret_cast<uint64_t>(y.data));
    ops.push_back(op);
  }

  // The second op of queue_distributed_norm.
  void run_norm_ranks(const Op& o) {
    float* y = static_cast<float*>(o.out.data);
    scalar_square(compute, y);
    CollectiveOp c;
    c.kernel = KernelId::AllReduce;
    c.in = c.out = y;
    c.in_count = c.out_count = 1;
    if (o.p.norm_dp) coll.launch(c, tracer.get(), "{\"op\":\"global_norm over ranks: sum of squares\"}");
    if (o.p.norm_pp) {
      c.pp = true;
      coll.launch(c, tracer.get(), "{\"op\":\"global_norm over the pipeline stages: sum of squares\"}");
    }
    coll.before_compute({{y, sizeof(float)}}, {});
    scalar_sqrt(compute, y);
  }

  static bool is_offload_copy(KernelId k) { return k == KernelId::ToHost || k == KernelId::UploadMaster; }

  // Waits for `e` on the host; polling through the communicator when collectives may
  // be upstream of it (a dead peer fails the wait after --comm-timeout).
  void wait_event(cudaEvent_t e, const char* what) {
    if (coll.any_comm())
      coll.any_comm()->wait_event(e, what);
    else
      BMSYS_CUDA(cudaEventSynchronize(e), what);
  }

  // An offload copy step goes to the offload copy stream (offload.h), after the
  // collectives that produce its source or touch its destination.
  bool run_offload(const Step& s) {
    const Op& o = ops[s.idx[0]];
    if (s.kind != kSingle || !is_offload_copy(o.kernel)) return false;
    const bool d2h = o.kernel == KernelId::ToHost;
    std::vector<Range> reads, writes;
    if (d2h)
      reads.push_back({o.in[0].data, o.in[0].bytes()});
    else
      writes.push_back({o.out.data, o.out.bytes()});
    if (coll.any_comm()) coll.before_compute(reads, writes);
    offload.before_compute(reads, writes);
    if (d2h)
      offload.to_host(o.out.data, o.in[0].data, o.in[0].bytes(), tracer.get());
    else
      offload.to_device(o.out.data, o.in[0].data, o.out.bytes(), tracer.get());
    stats.offload_copies = offload.copies();
    stats.offload_bytes = offload.bytes();
    return true;
  }

  // to_host / upload_master: queued like the other ops, run on the copy stream.
  void queue_offload_copy(const KernelLaunch& l) {
    offload.bind(compute);
    if (tracer) tracer->set_track(4, "offload copy stream");
    const TensorView& x = l.inputs.at(0);
    const TensorView& y = l.outputs.at(0);
    auto set = [](TRef& r, const void* data, DType dt, int64_t n) {
      r.data = const_cast<void*>(data);
      r.dtype = dt;
      r.rank = 1;
      r.dims[0] = n;
      r.numel = n;
    };
    Op op;
    op.kernel = l.kernel;
    op.nin = 1;
    if (l.kernel == KernelId::ToHost) {
      set(op.in[0], x.data, x.dtype, x.numel());
      set(op.out, y.data, y.dtype, y.numel());
    } else {
      // This rank's slice of a replicated parameter (ZeRO-1/2), else the whole.
      const Attrs& a = *l.attrs;
      const int64_t R = a.get_int("zero_ranks", 0), n = y.numel();
      int64_t off = 0, len = n;
      if (R > 1 && a.get_int("param_sharded", 0) == 0) {
        const int64_t S = shard_size(n, R);
        off = std::min(n, static_cast<int64_t>(l.ctx.rank) * S);
        len = std::min(S, n - off);
      }
      const size_t es = dtype_size(y.dtype);
      const void* src = x.data;
      if (y.dtype != x.dtype) {
        // A bf16/f16 device parameter: the master is converted on the host, now (the
        // CPU step wrote it just before), into pinned memory the copy reads.
        auto& [buf, cap] = upload_stage[y.data];
        const size_t need = static_cast<size_t>(len) * es;
        if (!buf || cap < need) {
          void* p = nullptr;
          BMSYS_CUDA(cudaHostAlloc(&p, need ? need : 1, cudaHostAllocDefault), "pinned upload staging");
          buf.reset(p);
          cap = need;
        }
        offload.wait_host({buf.get(), need}, [&](cudaEvent_t e) { wait_event(e, "upload_master staging"); });
        convert(buf.get(), y.dtype, x.data, x.dtype, len);
        src = buf.get();
      }
      set(op.in[0], src, y.dtype, len);
      set(op.out, static_cast<char*>(y.data) + static_cast<size_t>(off) * es, y.dtype, len);
    }
    op.ft = op.out.dtype;
    if (ops.empty()) queue_P = l.ctx.start_pos;
    mix(static_cast<uint64_t>(op.kernel) | (1ull << 16));
    mix(reinterpret_cast<uint64_t>(op.in[0].data));
    mix(reinterpret_cast<uint64_t>(op.out.data));
    mix(static_cast<uint64_t>(op.out.numel));
    ops.push_back(op);
  }

  // adamw with offload = 1: the CPU step on host memory, once its copies arrived.
  void host_step(const KernelLaunch& l) {
    flush();  // issues the queued copies of the gradients and the norm
    auto wait = [&](cudaEvent_t e) { wait_event(e, "the offloaded optimizer step"); };
    for (const TensorView& v : l.inputs) offload.wait_host({v.data, v.bytes()}, wait);
    const auto t0 = std::chrono::steady_clock::now();
    cpu::host_adamw(l);
    stats.host_steps++;
    stats.launch_host_us +=
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  }

  // The operands of a step that its kernels read before griddepcontrol.wait (Launch::
  // early_loads): the weights, scales and biases of linears (the GEMVs) and the gamma of
  // the norms (add_rms_norm, and those fused into a GEMV).
  void constant_operands(const std::vector<int>& step_ops, std::vector<Range>& out) const {
    for (int i : step_ops) {
      const Op& o = ops[i];
      if (o.train) {
        if (o.kernel == KernelId::AddRmsNorm && o.train->in.size() > 2)
          out.push_back({o.train->in[2].data, o.train->in[2].bytes()});
        continue;
      }
      if (o.kernel == KernelId::Linear || o.kernel == KernelId::LinearInt8 || o.kernel == KernelId::RmsNorm)
        for (int a = 1; a < o.nin; ++a) out.push_back({o.in[a].data, o.in[a].bytes()});
    }
  }

  void execute() {
    std::vector<Step> steps = plan_steps();
    // What the steps so far write: a step whose constant operands an earlier step of this
    // flush wrote (mixed precision casts its masters to f16/bf16 copies in the activation
    // pool) loads them after griddepcontrol.wait. Its kernels may start before that
    // earlier step ends, so an early load could read what was there before. Earlier flushes
    // are complete: each starts with a kernel launched without PDL (set_scalars).
    RangeSet written;
    std::vector<int> all;  // the step's ops
    std::vector<Range> constants, reads, writes;
    for (const Step& s : steps) {
      all.assign(s.idx, s.idx + s.n);
      if (s.epi >= 0) all.push_back(s.epi);
      if (s.norm >= 0) all.push_back(s.norm);
      constants.clear();
      reads.clear();
      writes.clear();
      constant_operands(all, constants);
      for (int i : all) add_ranges(ops[i], reads, writes);
      step_early_loads =
          std::none_of(constants.begin(), constants.end(), [&](const Range& r) { return written.overlaps(r); });
      for (const Range& r : writes) written.add(r);
      if (run_offload(s)) continue;
      if (offload.bound()) offload.before_compute(reads, writes);  // after the copies whose memory it touches
      if (run_collective(s)) continue;
      if (tracer) tracer->begin(compute);
      run_step(s);
      if (tracer) tracer->end(compute, step_name(s), "kernel", 1, step_args(s));
      if (sync_each) {
        cudaError_t e = cudaStreamSynchronize(compute);
        if (e != cudaSuccess)
          throw Error(fmt::format("cuda backend: {} (op {} of the flush, {}) failed: {} ({})",
                                  step_name(s), s.idx[0], step_args(s), cudaGetErrorString(e),
                                  cudaGetErrorName(e)));
        check_device_error();
      }
    }
    step_early_loads = true;
    coll.join();
    offload.join();
  }

  void flush() {
    if (ops.empty()) return;
    stats.flushes++;
    stats.ops += static_cast<int64_t>(ops.size());
    last_kernels.clear();
    for (const Op& o : ops) last_kernels.push_back(o.kernel);
    // Flushes with collectives run eagerly: NCCL calls on a nonblocking communicator
    // are not captured into graphs.
    bool has_collective = false;
    // Offload copies run on their own stream too (offload.h), eagerly.
    for (const Op& o : ops) has_collective = has_collective || is_collective(o.kernel) || is_offload_copy(o.kernel);
    const bool graphs_ok = use_graphs && !tracer && !sync_each && !has_collective;
    auto git = graphs.find(hash);
    bool replay = graphs_ok && git != graphs.end() && git->second.sig == sig;
    if (!replay) {
      ensure_scratch(scratch_need());
      ensure_fork();
    }
    BMSYS_CUDA(cudaEventRecord(flush_begin, compute), "flush timing");
    set_scalars(compute, scalars, queue_P);
    if (queue_train_scalars) {
      set_train_scalars(compute, scalars, queue_T, queue_L);
      queue_train_scalars = false;
    }
    try {
      if (replay) {
        GraphEntry& g = git->second;
        g.last_use = ++tick;
        BMSYS_CUDA(cudaGraphLaunch(g.exec, compute), "replaying a CUDA graph");
        stats.graph_replays++;
      } else {
        int& cnt = seen[hash];
        cnt++;
        if (seen.size() > 4096) seen.clear();
        if (graphs_ok && cnt >= 2) {
          try {
            capture();
          } catch (const Error& e) {
            // A capture that fails (a driver without support for something in the
            // flush) must not fail the run: go on without graphs. A real error in an op
            // shows again in the eager run.
            std::fprintf(stderr, "bmsys: cuda backend: CUDA graph capture failed, running without graphs: %s\n",
                         e.what());
            use_graphs = false;
            execute();
            stats.eager_flushes++;
          }
        } else {
          execute();
          stats.eager_flushes++;
        }
      }
    } catch (...) {
      ops.clear();
      sig.clear();
      hash = 0;
      throw;
    }
    BMSYS_CUDA(cudaEventRecord(flush_end, compute), "flush timing");
    flush_timed = true;
    ops.clear();
    sig.clear();
    hash = 0;
  }

  void capture() {
    BMSYS_CUDA(cudaStreamBeginCapture(compute, cudaStreamCaptureModeThreadLocal),
               "capturing a CUDA graph");
    capturing = true;
    try {
      execute();
      capturing = false;
    } catch (...) {
      capturing = false;
      cudaGraph_t g = nullptr;
      cudaStreamEndCapture(compute, &g);
      if (g) cudaGraphDestroy(g);
      cudaGetLastError();
      throw;
    }
    cudaGraph_t g = nullptr;
    BMSYS_CUDA(cudaStreamEndCapture(compute, &g), "capturing a CUDA graph");
    cudaGraphExec_t exec = nullptr;
    cudaError_t e = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    BMSYS_CUDA(e, "instantiating a CUDA graph");
    if (graphs.size() >= kMaxGraphs) {
      auto lru = graphs.begin();
      for (auto it = graphs.begin(); it != graphs.end(); ++it)
        if (it->second.last_use < lru->second.last_use) lru = it;
      cudaGraphExecDestroy(lru->second.exec);
      graphs.erase(lru);
    }
    auto old = graphs.find(hash);
    if (old != graphs.end()) {
      cudaGraphExecDestroy(old->second.exec);
      graphs.erase(old);
    }
    GraphEntry& ent = graphs[hash];
    ent.sig = sig;
    ent.exec = exec;
    ent.last_use = ++tick;
    BMSYS_CUDA(cudaGraphLaunch(exec, compute), "launching a captured CUDA graph");
    stats.graph_captures++;
  }

  void mix(uint64_t w) {
    sig.push_back(w);
    hash = (hash ^ w) * 0x100000001b3ull;
    hash ^= hash >> 29;
  }
};

// ======================================================================================

CudaBackend::CudaBackend(const BackendOptions& opts) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.opts = opts;
  int n = cuda_device_count();
  if (n == 0) fail("cuda backend: no CUDA device is available");
  if (opts.device < 0 || opts.device >= n)
    fail("cuda backend: device {} does not exist ({} visible)", opts.device, n);
  m.device = opts.device;
  BMSYS_CUDA(cudaSetDevice(m.device), "selecting the device");
  BMSYS_CUDA(cudaGetDeviceProperties(&m.prop, m.device), "reading device properties");
  m.use_graphs = env_flag("BMSYS_CUDA_GRAPHS", true);
  m.use_pdl = env_flag("BMSYS_CUDA_PDL", true) && m.prop.major >= 9;
  // Default 1: the own GEMVs (tuned per shape against cuBLASLt) and their fusions; since
  // session 7 the row kernel streams the decode weights faster than cuBLASLt's GEMV
  // (docs/cuda.md). 0: cuBLASLt for every linear.
  m.gemv_variant = env_int("BMSYS_CUDA_GEMV", 1);
  m.use_gemv = m.gemv_variant != 0;
  m.use_fuse = env_flag("BMSYS_CUDA_FUSE", true);
  m.use_flash = env_flag("BMSYS_CUDA_FLASH", true) && m.prop.major >= 8;
  m.use_fork = env_flag("BMSYS_CUDA_FORK", true);
  m.use_int8_mma = env_flag("BMSYS_CUDA_INT8_MMA", true);
  m.sync_each = env_flag("BMSYS_CUDA_SYNC", false);

  BMSYS_CUDA(cudaStreamCreateWithFlags(&m.compute, cudaStreamNonBlocking), "creating streams");
  BMSYS_CUDA(cudaStreamCreateWithFlags(&m.copy, cudaStreamNonBlocking), "creating streams");
  BMSYS_CUDA(cudaEventCreateWithFlags(&m.ev_compute, cudaEventDisableTiming), "creating events");
  BMSYS_CUDA(cudaEventCreateWithFlags(&m.ev_copy, cudaEventDisableTiming), "creating events");
  BMSYS_CUDA(cudaEventCreate(&m.flush_begin), "creating events");
  BMSYS_CUDA(cudaEventCreate(&m.flush_end), "creating events");
  m.pool = std::make_shared<Pool>();
  m.pool->stream = m.compute;

  BMSYS_CUDA(cudaHostAlloc(reinterpret_cast<void**>(&m.err_host), sizeof(DeviceError),
                           cudaHostAllocMapped),
             "allocating the error record");
  std::memset(m.err_host, 0, sizeof(DeviceError));
  BMSYS_CUDA(cudaHostGetDevicePointer(reinterpret_cast<void**>(&m.err_dev), m.err_host, 0),
             "mapping the error record");
  m.err_gate = static_cast<int*>(m.device_alloc(sizeof(int), "error gate", kOther));
  m.scalars = static_cast<int64_t*>(m.device_alloc(64, "device scalars", kOther));
  BMSYS_CUDA(cudaMemsetAsync(m.err_gate, 0, sizeof(int), m.compute), "clearing the error gate");
  BMSYS_CUDA(cudaMemsetAsync(m.scalars, 0, 64, m.compute), "clearing the device scalars");
  BMSYS_CUDA(cudaStreamSynchronize(m.compute), "initializing the device");

  m.gemm = std::make_unique<Gemm>(kWorkspaceBytes);
  m.workspace = m.device_alloc(kWorkspaceBytes, "cuBLASLt workspace", kOther);
  m.gemm->set_workspace(m.workspace);
  m.gemm_i8 = std::make_unique<GemmInt8>();
  m.gemm_i8->set_workspace(m.workspace, kWorkspaceBytes);  // same stream as gemm: shared
  if (!opts.trace_path.empty()) set_trace(opts.trace_path);
}

CudaBackend::~CudaBackend() {
  Impl& m = *impl_;
  // A communicator already destroyed cannot run what is still queued.
  if (m.coll.any_comm() && m.nccl.expired()) {
    m.ops.clear();
    m.coll.bind(nullptr, m.compute);
    m.coll.bind_tp(nullptr);
    m.coll.bind_pp(nullptr);
  }
  try {
    m.flush();
  } catch (...) {
  }
  cudaStreamSynchronize(m.compute);
  cudaStreamSynchronize(m.copy);
  cudaGetLastError();
  m.tracer.reset();
  for (auto& kv : m.graphs) cudaGraphExecDestroy(kv.second.exec);
  m.graphs.clear();
  m.gemm.reset();
  m.gemm_i8.reset();
  for (int i = 0; i < 2; ++i) {
    if (m.pinned[i]) cudaFreeHost(m.pinned[i]);
    if (m.stage_ev[i]) cudaEventDestroy(m.stage_ev[i]);
  }
  if (m.err_host) cudaFreeHost(m.err_host);
  for (cudaEvent_t e : {m.ev_compute, m.ev_copy, m.flush_begin, m.flush_end})
    if (e) cudaEventDestroy(e);
  {
    std::lock_guard<std::mutex> lock(m.pool->mu);
    m.pool->stream = nullptr;
  }
  // Internal buffers go back to the pool; DeviceMemory still held by others stays valid
  // until its owner frees it (the pool outlives the backend).
  for (cudaEvent_t e : m.tune_ev)
    if (e) cudaEventDestroy(e);
  for (void* p : {m.scratch, m.tune_buf, m.tp_buf, m.pick_buf, m.workspace, static_cast<void*>(m.err_gate),
                  static_cast<void*>(m.scalars), m.dstage[0], m.dstage[1]})
    if (p) m.pool->release(p);
  for (const Impl::RopeTable& r : m.rope_tables) m.pool->release(r.data);
  for (int k = 0; k < Impl::kForkBranches; ++k) {
    if (m.fork_workspace[k]) m.pool->release(m.fork_workspace[k]);
    if (m.fork_stream[k]) {
      cudaStreamSynchronize(m.fork_stream[k]);
      cudaStreamDestroy(m.fork_stream[k]);
    }
    if (m.join_ev[k]) cudaEventDestroy(m.join_ev[k]);
  }
  if (m.fork_ev) cudaEventDestroy(m.fork_ev);
  for (cudaEvent_t e : m.pick_ev)
    if (e) cudaEventDestroy(e);
  if (m.pick_host) cudaFreeHost(m.pick_host);
  for (cudaEvent_t e : {m.slot_ready[0], m.slot_ready[1], m.slot_free[0], m.slot_free[1]})
    if (e) cudaEventDestroy(e);
  if (m.swap) {
    cudaStreamSynchronize(m.swap);
    cudaStreamDestroy(m.swap);
  }
  cudaStreamDestroy(m.compute);
  cudaStreamDestroy(m.copy);
  cudaGetLastError();
}

std::string CudaBackend::description() const {
  const Impl& m = *impl_;
  int lt = static_cast<int>(cublasLtGetVersion());
  return fmt::format(
      "cuda: {} (sm_{}{}, {} SMs, {} GiB), cuBLASLt {}; graphs {}, PDL {}, gemv {}, fusion {}, "
      "tensor-core attention {}",
      m.prop.name, m.prop.major, m.prop.minor, m.prop.multiProcessorCount,
      m.prop.totalGlobalMem >> 30, lt, m.use_graphs ? "on" : "off", m.use_pdl ? "on" : "off",
      m.use_gemv ? "on" : "off", m.use_fuse ? "on" : "off", m.use_flash ? "on" : "off");
}

bool CudaBackend::supports(KernelId kernel) const {
  if (is_train_kernel(kernel)) return true;  // train_ops.h
  switch (kernel) {
    case KernelId::Positions:
    case KernelId::Embedding:
    case KernelId::Linear:
    case KernelId::Slice:
    case KernelId::LayerNorm:
    case KernelId::RmsNorm:
    case KernelId::Rope:
    case KernelId::Attention:
    case KernelId::RopeAttention:
    case KernelId::Gelu:
    case KernelId::Silu:
    case KernelId::Add:
    case KernelId::Mul:
    case KernelId::CrossEntropy:
    case KernelId::LinearInt8:
    case KernelId::AllReduce:
    case KernelId::ReduceScatter:
    case KernelId::AllGather:
    case KernelId::SyncParam:
    case KernelId::TpAllReduce:  // tensor parallelism (tensor_parallel.h)
    case KernelId::ToHost:  // bmsys-offload (offload.h)
    case KernelId::UploadMaster:
    case KernelId::PpSend:  // pipeline parallelism (collectives.h)
    case KernelId::PpRecv:
    case KernelId::PpBroadcast:
    case KernelId::PpMean:
      return true;
    default:
      return false;  // training kernels: CPU backend only for now
  }
}

bool CudaBackend::supports_dtype(DType dtype) const {
  return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16 || dtype == DType::I64 ||
         dtype == DType::I8;
}

std::unique_ptr<DeviceMemory> CudaBackend::allocate(size_t bytes, const std::string& what) {
  Impl& m = *impl_;
  int kind = kOther;
  if (what.rfind("weight ", 0) == 0) kind = kWeights;
  else if (what == "the activation pool") kind = kActivations;
  else if (what == "the state pool") kind = kState;
  else if (what.rfind("input ", 0) == 0) kind = kInputs;
  void* p = m.device_alloc(bytes, what, kind);
  if (kind == kWeights) m.weights.insert(p);
  std::shared_ptr<Pool> pool = m.pool;
  Impl* impl = &m;
  return std::make_unique<DeviceMemory>(p, bytes, [pool, impl](void* q) {
    bool alive;
    {
      std::lock_guard<std::mutex> lock(pool->mu);
      alive = pool->stream != nullptr;
    }
    if (alive) impl->weights.erase(q);
    pool->release(q);
  });
}

void CudaBackend::fill_zero(void* dst, size_t bytes) {
  Impl& m = *impl_;
  m.flush();
  if (bytes == 0) return;
  BMSYS_CUDA(cudaMemsetAsync(dst, 0, bytes, m.compute), "fill_zero");
}

void CudaBackend::upload(void* dst, DType dst_dtype, const void* src, DType src_dtype,
                         int64_t count) {
  Impl& m = *impl_;
  m.flush();
  if (count <= 0) return;
  if (m.opts.random_weights && m.weights.count(dst)) {
    if (dst_dtype == DType::I8) {  // linear_int8 weights
      Launch L = m.launch_cfg(-1);
      L.pdl = false;
      fill_random_int8(L, static_cast<int8_t*>(dst), count, m.opts.random_seed * 1000003ull + m.random_counter++);
      return;
    }
    if (!dtype_is_float(dst_dtype))
      fail("cuda backend: --random-weights: weight of dtype {}", dtype_name(dst_dtype));
    Launch L = m.launch_cfg(-1);
    L.pdl = false;
    fill_random(L, dst_dtype, dst, count, m.opts.random_seed * 1000003ull + m.random_counter++, 0.02f);
    return;
  }
  if (dtype_is_float(dst_dtype) != dtype_is_float(src_dtype))
    fail("cuda backend: upload: cannot convert {} to {}", dtype_name(src_dtype), dtype_name(dst_dtype));
  m.ensure_staging();
  m.copy_after_compute();
  const size_t ss = dtype_size(src_dtype), ds = dtype_size(dst_dtype);
  const int64_t chunk = static_cast<int64_t>(kStageBytes / std::max(ss, ds));
  if (m.tracer) m.tracer->begin(m.copy);
  Launch L;
  L.stream = m.copy;
  L.err = m.err_dev;
  L.err_gate = m.err_gate;
  L.op = -1;
  for (int64_t off = 0; off < count; off += chunk) {
    const int64_t n = std::min(chunk, count - off);
    const int slot = m.stage_next;
    m.stage_next ^= 1;
    m.wait_event(m.stage_ev[slot], "upload");  // polled: the copy may follow collectives
    std::memcpy(m.pinned[slot], static_cast<const uint8_t*>(src) + off * ss, n * ss);
    uint8_t* d = static_cast<uint8_t*>(dst) + off * ds;
    if (src_dtype == dst_dtype) {
      BMSYS_CUDA(cudaMemcpyAsync(d, m.pinned[slot], n * ss, cudaMemcpyHostToDevice, m.copy), "upload");
    } else {
      BMSYS_CUDA(cudaMemcpyAsync(m.dstage[slot], m.pinned[slot], n * ss, cudaMemcpyHostToDevice, m.copy),
                 "upload");
      convert(L, d, dst_dtype, m.dstage[slot], src_dtype, n);
    }
    BMSYS_CUDA(cudaEventRecord(m.stage_ev[slot], m.copy), "upload");
  }
  if (m.tracer)
    m.tracer->end(m.copy, fmt::format("H2D {} B", count * ss), "copy", 2,
                  fmt::format("{{\"from\":\"{}\",\"to\":\"{}\",\"elements\":{}}}", dtype_name(src_dtype),
                              dtype_name(dst_dtype), count));
  m.compute_after_copy();
}

void CudaBackend::copy_to_host(void* dst, const void* src, size_t bytes) {
  Impl& m = *impl_;
  m.flush();
  if (bytes == 0) {
    m.sync_all("copy_to_host");
    return;
  }
  m.ensure_staging();
  m.copy_after_compute();
  if (m.tracer) m.tracer->begin(m.copy);
  // Large copies go straight to the destination; small ones through pinned staging.
  if (bytes > kStageBytes) {
    BMSYS_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, m.copy), "copy_to_host");
    if (m.tracer) m.tracer->end(m.copy, fmt::format("D2H {} B", bytes), "copy", 2, "");
    m.sync_all("copy_to_host");
    return;
  }
  const int slot = m.stage_next;
  m.stage_next ^= 1;
  m.wait_event(m.stage_ev[slot], "copy_to_host");  // polled: the copy may follow collectives
  BMSYS_CUDA(cudaMemcpyAsync(m.pinned[slot], src, bytes, cudaMemcpyDeviceToHost, m.copy), "copy_to_host");
  if (m.tracer) m.tracer->end(m.copy, fmt::format("D2H {} B", bytes), "copy", 2, "");
  m.sync_all("copy_to_host");
  std::memcpy(dst, m.pinned[slot], bytes);
}

void CudaBackend::launch(const KernelLaunch& l) {
  Impl& m = *impl_;
  if (!m.ops.empty() && l.ctx.start_pos != m.queue_P) m.flush();
  if (l.kernel == KernelId::AdamW && l.attrs->get_int("offload", 0) != 0) {  // bmsys-offload
    m.host_step(l);
    if (m.sync_each) synchronize();
    return;
  }
  if (Impl::is_offload_copy(l.kernel)) {
    m.queue_offload_copy(l);
    if (m.sync_each) synchronize();
    return;
  }
  if (is_tensor_parallel_launch(l)) {  // tensor_parallel.h
    m.queue_tensor_parallel(l);
    if (m.sync_each) synchronize();
    return;
  }
  if (l.kernel == KernelId::GlobalNorm &&
      (l.attrs->get_int("ranks", 0) > 1 || l.attrs->get_int("pp_stages", 0) > 1)) {
    m.queue_distributed_norm(l);
    if (m.sync_each) synchronize();
    return;
  }
  if (Impl::is_pipeline_transfer(l.kernel)) {  // pp_send, pp_recv, pp_broadcast (collectives.h)
    m.queue_pipeline_transfer(l);
    if (m.sync_each) synchronize();
    return;
  }
  if (is_train_kernel(l.kernel)) {
    m.queue_train(l);
    if (m.sync_each) synchronize();
    return;
  }
  const auto t_begin = std::chrono::steady_clock::now();
  Op op;
  op.kernel = l.kernel;
  op.nin = static_cast<int>(l.inputs.size());
  if (op.nin > static_cast<int>(std::size(op.in)) || l.outputs.size() != 1)
    fail("cuda backend: unexpected operand count");
  bool have = false;
  auto ref = [&](const TensorView& t, TRef& r, const char* what, size_t i, bool float_check) {
    if (t.shape.size() > static_cast<size_t>(kMaxRank))
      fail("cuda backend: {} {} has rank {} (at most {})", what, i, t.shape.size(), kMaxRank);
    r.data = t.data;
    r.dtype = t.dtype;
    r.rank = static_cast<int>(t.shape.size());
    for (int d = 0; d < r.rank; ++d) r.dims[d] = t.shape[d];
    r.numel = t.numel();
    if (float_check && dtype_is_float(t.dtype)) {
      if (!supports_dtype(t.dtype))
        fail("cuda backend: {} {} is {}; the cuda backend computes in f32, f16 or bf16", what, i,
             dtype_name(t.dtype));
      if (!have) {
        op.ft = t.dtype;
        have = true;
      } else if (t.dtype != op.ft) {
        fail("cuda backend: {} {} is {} but the launch computes in {} (one float dtype per launch)",
             what, i, dtype_name(t.dtype), dtype_name(op.ft));
      }
    }
  };
  // linear_int8's scale (input 2) stays f32 whatever the launch computes in.
  for (int i = 0; i < op.nin; ++i)
    ref(l.inputs[i], op.in[i], "input", i, !(l.kernel == KernelId::LinearInt8 && i == 2));
  ref(l.outputs[0], op.out, "output", 0, l.kernel != KernelId::CrossEntropy);
  const int cache_in = l.kernel == KernelId::Attention ? 3 : l.kernel == KernelId::RopeAttention ? 4 : -1;
  if (cache_in > 0 && op.nin == cache_in + 2 && l.ctx.batch_offset != 0) {
    // Batched generation: this call's rows are cache rows batch_offset.. (the graph
    // signature sees the offset views, so each offset has its own graph).
    for (int i = cache_in; i < cache_in + 2; ++i) {
      TRef& c = op.in[i];
      const int64_t row = c.dims[0] ? c.numel / c.dims[0] : 0;
      c.data = static_cast<char*>(c.data) + static_cast<size_t>(l.ctx.batch_offset * row) * dtype_size(c.dtype);
      c.dims[0] -= l.ctx.batch_offset;
      c.numel -= l.ctx.batch_offset * row;
    }
  }

  const Attrs& a = *l.attrs;
  Parsed& p = op.p;
  switch (l.kernel) {
    case KernelId::Linear: p.wt = a.get_int("weight_transposed", 0) != 0; break;
    case KernelId::Slice:
      p.offset = a.get_int("offset");
      p.size = a.get_int("size");
      break;
    case KernelId::LayerNorm:
    case KernelId::RmsNorm: p.eps = a.get_float("eps"); break;
    case KernelId::Rope:
      p.head_dim = a.get_int("head_dim");
      p.theta = a.get_float("theta");
      break;
    case KernelId::RopeAttention:
      p.theta = a.get_float("theta");
      [[fallthrough]];
    case KernelId::Attention:
      p.nq = a.get_int("num_heads");
      p.nkv = a.get_int("num_kv_heads");
      p.head_dim = a.get_int("head_dim");
      p.scale = a.get_float("scale");
      p.causal = a.get_int("causal") != 0;
      if (p.head_dim > 256 && !(m.use_flash && op.ft != DType::F32 && p.head_dim <= 128))
        fail("cuda backend: attention with head_dim {} (at most 256)", p.head_dim);
      break;
    case KernelId::Gelu: p.gelu_tanh = a.get_string("approximate") == "tanh"; break;
    case KernelId::CrossEntropy: p.shift = a.get_int("shift", 0) != 0; break;
    case KernelId::AllReduce:
    case KernelId::ReduceScatter: p.reduce = reduce_op_from_name(a.get_string("reduction")); break;
    case KernelId::LinearInt8: p.int8_act = a.get_string("activations") == "int8"; break;
    case KernelId::PpMean: p.scale = 1.0 / static_cast<double>(a.get_int("micro_batches")); break;
    default: break;
  }

  if (Impl::is_collective(l.kernel)) m.bind_comm(l.ctx);
  if (m.ops.empty()) m.queue_P = l.ctx.start_pos;
  // The signature: everything that shapes the launches except start_pos.
  m.mix(static_cast<uint64_t>(op.kernel) | (static_cast<uint64_t>(op.nin) << 16) |
        (static_cast<uint64_t>(op.ft) << 24));
  m.mix(static_cast<uint64_t>(l.ctx.batch));
  m.mix(static_cast<uint64_t>(l.ctx.seq));
  auto mix_ref = [&](const TRef& r) {
    m.mix(reinterpret_cast<uint64_t>(r.data));
    m.mix(static_cast<uint64_t>(r.dtype) | (static_cast<uint64_t>(r.rank) << 8));
    for (int d = 0; d < r.rank; ++d) m.mix(static_cast<uint64_t>(r.dims[d]));
  };
  for (int i = 0; i < op.nin; ++i) mix_ref(op.in[i]);
  mix_ref(op.out);
  uint64_t bits[4];
  std::memcpy(&bits[0], &p.eps, 8);
  std::memcpy(&bits[1], &p.theta, 8);
  std::memcpy(&bits[2], &p.scale, 8);
  bits[3] = static_cast<uint64_t>(p.wt) | (static_cast<uint64_t>(p.causal) << 1) |
            (static_cast<uint64_t>(p.gelu_tanh) << 2) | (static_cast<uint64_t>(p.shift) << 3) |
            (static_cast<uint64_t>(p.int8_act) << 4);
  for (uint64_t b : bits) m.mix(b);
  m.mix(static_cast<uint64_t>(p.offset));
  m.mix(static_cast<uint64_t>(p.head_dim) | (static_cast<uint64_t>(p.nq) << 20) |
        (static_cast<uint64_t>(p.nkv) << 40));
  m.ops.push_back(op);
  m.stats.launch_host_us +=
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t_begin).count();
  if (m.sync_each) synchronize();
}

void CudaBackend::synchronize() {
  Impl& m = *impl_;
  m.flush();
  m.sync_all("synchronize");
}

void CudaBackend::check_memory_plan(uint64_t bytes, const std::string& plan) {
  Impl& m = *impl_;
  m.plan = fmt::format("{} ({})", human(bytes), plan);
  size_t fr = 0, total = 0;
  BMSYS_CUDA(cudaMemGetInfo(&fr, &total), "reading free memory");
  if (bytes > fr)
    fail("cuda backend: the memory plan needs {} ({}), but the GPU ({}) has {} free of {}",
         human(bytes), plan, m.prop.name, human(fr), human(total));
}

uint64_t CudaBackend::device_memory_bytes() const { return impl_->prop.totalGlobalMem; }

std::string CudaBackend::memory_report() const {
  const Impl& m = *impl_;
  size_t fr = 0, total = 0;
  cudaMemGetInfo(&fr, &total);
  cudaGetLastError();
  std::string s = fmt::format("cuda memory on {}:", m.prop.name);
  {
    std::lock_guard<std::mutex> lock(m.pool->mu);
    for (int k = 0; k < kKinds; ++k) s += fmt::format(" {} {};", kind_name(k), human(m.pool->by_kind[k]));
  }
  auto st = m.pool->alloc.stats();
  s += fmt::format(" allocator: in use {}, cached {}, peak {}, {} cudaMalloc calls, {} reuses;",
                   human(st.in_use), human(st.cached), human(st.peak), st.mallocs, st.reuses);
  s += fmt::format(" GPU: {} free of {}", human(fr), human(total));
  return s;
}

CudaBackend::Stats CudaBackend::stats() const { return impl_->stats; }

std::unique_ptr<DeviceMemory> CudaBackend::allocate_host(size_t bytes, const std::string& what) {
  void* p = nullptr;
  BMSYS_CUDA(cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocDefault),
             fmt::format("pinned host memory ({}) for {}", human(bytes), what));
  return std::make_unique<DeviceMemory>(p, bytes, [](void* q) { cudaFreeHost(q); });
}

void CudaBackend::swap_in(int slot, void* dst, const void* src, size_t bytes) {
  Impl& m = *impl_;
  if (slot < 0 || slot > 1) fail("cuda backend: swap slot {} (0 or 1)", slot);
  m.flush();
  if (!m.swap) {
    BMSYS_CUDA(cudaStreamCreateWithFlags(&m.swap, cudaStreamNonBlocking), "creating the swap stream");
    for (int k = 0; k < 2; ++k) {
      BMSYS_CUDA(cudaEventCreateWithFlags(&m.slot_ready[k], cudaEventDisableTiming), "swap events");
      BMSYS_CUDA(cudaEventCreateWithFlags(&m.slot_free[k], cudaEventDisableTiming), "swap events");
    }
    if (m.tracer) m.tracer->set_track(3, "swap stream");
    // One flush per swapped layer would fill and churn the graph cache; a scheduled run
    // is bound by the host link anyway.
    m.use_graphs = false;
  }
  if (m.slot_released[slot]) {
    BMSYS_CUDA(cudaStreamWaitEvent(m.swap, m.slot_free[slot], 0), "swap-in");
  } else {  // first copy into fresh memory: after everything queued so far
    BMSYS_CUDA(cudaEventRecord(m.ev_compute, m.compute), "swap-in");
    BMSYS_CUDA(cudaStreamWaitEvent(m.swap, m.ev_compute, 0), "swap-in");
  }
  if (m.tracer) m.tracer->begin(m.swap);
  BMSYS_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, m.swap), "swap-in");
  if (m.tracer) m.tracer->end(m.swap, fmt::format("swap-in slot {} ({})", slot, human(bytes)), "copy", 3, "");
  BMSYS_CUDA(cudaEventRecord(m.slot_ready[slot], m.swap), "swap-in");
  m.slot_loaded[slot] = true;
}

void CudaBackend::acquire_slot(int slot) {
  Impl& m = *impl_;
  if (slot < 0 || slot > 1 || !m.slot_loaded[slot]) return;
  m.flush();
  BMSYS_CUDA(cudaStreamWaitEvent(m.compute, m.slot_ready[slot], 0), "acquiring a swap slot");
}

void CudaBackend::release_slot(int slot) {
  Impl& m = *impl_;
  if (slot < 0 || slot > 1 || !m.swap) return;
  m.flush();
  BMSYS_CUDA(cudaEventRecord(m.slot_free[slot], m.compute), "releasing a swap slot");
  m.slot_released[slot] = true;
}

uint64_t CudaBackend::queue_pick(const void* x, DType dtype, int64_t rows, int64_t V, int64_t stride, void* dst,
                                 const PickOptions& pick, const std::vector<double>& uniforms) {
  Impl& m = *impl_;
  check_pick(dtype, rows, pick, uniforms);
  m.flush();
  if (rows > m.pick_cap) {  // grow the ring: wait for the copies into the old one, keep them
    BMSYS_CUDA(cudaStreamSynchronize(m.compute), "argmax ids");
    const int64_t cap = std::max<int64_t>(rows, 64);
    int64_t* ring = nullptr;
    BMSYS_CUDA(cudaHostAlloc(reinterpret_cast<void**>(&ring), Backend::kPickTickets * cap * sizeof(int64_t),
                             cudaHostAllocDefault),
               "allocating the argmax ids");
    if (m.pick_host) {
      for (size_t k = 0; k < Backend::kPickTickets; ++k)
        std::memcpy(ring + k * cap, m.pick_host + k * m.pick_cap, m.pick_rows[k] * sizeof(int64_t));
      cudaFreeHost(m.pick_host);
    }
    m.pick_host = ring;
    m.pick_cap = cap;
    for (cudaEvent_t& e : m.pick_ev)
      if (!e) BMSYS_CUDA(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "creating events");
  }
  const uint64_t ticket = ++pick_issued_;
  const size_t slot = ticket % Backend::kPickTickets;
  m.pick_rows[slot] = rows;
  if (rows > 0) {
    cuda::pick_rows(m.launch_cfg(-1), dtype, static_cast<int64_t*>(dst), x, rows, V, stride, pick, uniforms.data(),
                    m.pick_scratch(cuda::pick_scratch_bytes(rows, V, pick)));
    BMSYS_CUDA(cudaMemcpyAsync(m.pick_host + slot * m.pick_cap, dst, rows * sizeof(int64_t),
                               cudaMemcpyDeviceToHost, m.compute),
               "copying the argmax ids");
  }
  BMSYS_CUDA(cudaEventRecord(m.pick_ev[slot], m.compute), "argmax ids");
  return ticket;
}

std::vector<int64_t> CudaBackend::picked_ids(uint64_t ticket) {
  Impl& m = *impl_;
  check_pick_ticket(ticket);
  const size_t slot = ticket % Backend::kPickTickets;
  cudaError_t e = cudaEventSynchronize(m.pick_ev[slot]);
  if (e != cudaSuccess) {
    m.check_stream(m.compute, "argmax ids");  // names the failing kernel or copy
    fail("cuda backend: waiting for the argmax ids: {}", cudaGetErrorString(e));
  }
  m.check_device_error();
  const int64_t* p = m.pick_host + slot * m.pick_cap;
  return std::vector<int64_t>(p, p + m.pick_rows[slot]);
}

void CudaBackend::argmax_rows(const TensorView& x, int64_t* host_out) {
  Impl& m = *impl_;
  m.flush();
  int64_t V = x.shape.empty() ? 1 : x.shape.back();
  int64_t rows = V ? x.numel() / V : 0;
  if (rows == 0) return;
  void* d = m.device_alloc(rows * sizeof(int64_t), "argmax output", kOther);
  try {
    cuda::argmax_rows(m.launch_cfg(-1), x.dtype, static_cast<int64_t*>(d), x.data, rows, V, V);
    copy_to_host(host_out, d, rows * sizeof(int64_t));
  } catch (...) {
    m.pool->release(d);
    throw;
  }
  m.pool->release(d);
}

void CudaBackend::set_trace(const std::string& path) {
  Impl& m = *impl_;
  m.flush();
  if (m.tracer) {
    cudaStreamSynchronize(m.compute);
    cudaStreamSynchronize(m.copy);
    m.tracer.reset();
  }
  if (path.empty()) return;
  m.tracer = std::make_unique<Tracer>(path);
  m.tracer->set_track(1, "compute stream");
  m.tracer->set_track(2, "copy stream");
  m.tracer->set_track(3, "collective stream");
  m.tracer->set_track(5, "pipeline channels (send/recv)");
}

std::unique_ptr<Backend> create_cuda_backend(const BackendOptions& opts) {
  return std::make_unique<CudaBackend>(opts);
}

}  // namespace bmsys::rt

namespace bmsys::rt {

// NCCL between the GPUs of the ranks (nccl_communicator.h), on this backend's device.
std::shared_ptr<Communicator> CudaBackend::create_communicator(const DistributedEnv& env,
                                                               std::shared_ptr<RendezvousStore> store) {
  Impl& m = *impl_;
  m.flush();
  auto c = std::make_shared<NcclCommunicator>(env, std::move(store), m.device);
  m.nccl = c;
  return c;
}

}  // namespace bmsys::rt
