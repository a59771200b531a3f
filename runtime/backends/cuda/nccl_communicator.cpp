#include "runtime/backends/cuda/nccl_communicator.h"

#include <nccl.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "runtime/backends/cuda/cuda_common.h"
#include "runtime/core/error.h"

namespace bmsys::rt {

using Clock = std::chrono::steady_clock;

namespace {

// Under the communicator's prefix ("bmsys-nccl/", or "bmsys-nccl/group/<name>/").
constexpr const char* kIdKey = "unique-id";
constexpr const char* kJoinKey = "joined/";
constexpr const char* kStuckKey = "stuck/";

ncclComm_t C(void* p) { return static_cast<ncclComm_t>(p); }

void sleep_briefly() { std::this_thread::sleep_for(std::chrono::microseconds(50)); }

// More hardware work queues than streams (compute, copy, the collective stream, a
// channel per peer and direction, NCCL's own): with the default 8, two streams may
// share a queue, and a send blocked until the peer receives would then hold back the
// receive behind it that the peer waits for (a false dependency, a deadlock across
// ranks). Read when the CUDA context is created, so set before any CUDA call; a value
// the user set is kept.
const bool kMaxConnectionsSet = [] {
  ::setenv("CUDA_DEVICE_MAX_CONNECTIONS", "32", 0);
  return true;
}();

// Aborts `comms` (ncclComm_t of GPU `device`) all at once and waits for them at most
// `limit`; returns whether every abort finished. ncclCommAbort sets its communicator's
// abort flag and then frees its resources, which waits for the GPU (a device-wide
// synchronization): a kernel of another communicator that is not aborted yet (a
// collective of a group, a receive on a channel, waiting for a peer that hangs) never
// finishes, so aborting one after the other would block in the first abort forever.
// On threads of their own, every flag is set at once and every kernel stops.
bool abort_all(const std::vector<void*>& comms, int device, std::chrono::duration<double> limit) {
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    size_t left = 0;
  };
  auto st = std::make_shared<State>();
  st->left = comms.size();
  for (void* c : comms)
    std::thread([st, c, device] {
      cudaSetDevice(device);
      ncclCommAbort(C(c));
      cudaGetLastError();
      std::lock_guard<std::mutex> lock(st->mu);
      --st->left;
      st->cv.notify_all();
    }).detach();
  std::unique_lock<std::mutex> lock(st->mu);
  return st->cv.wait_for(lock, limit, [&] { return st->left == 0; });
}

}  // namespace

// The communicators of one process (the world's and its groups) and the stream they
// share; the stream goes with the last of them.
struct NcclCommunicator::Family {
  cudaStream_t stream = nullptr;
  std::vector<NcclCommunicator*> members;
  uint64_t tickets = 0;  // the order of collectives on the stream, over the members
  ~Family() {
    if (stream) cudaStreamDestroy(stream);
    cudaGetLastError();
  }
};

std::string NcclCommunicator::me() const {
  if (members_.empty()) return fmt::format("rank {}", rank_);
  return fmt::format("rank {} (group '{}', rank {} of {})", world_rank_of(rank_), group_name_, rank_, world_);
}

void NcclCommunicator::check(int result, const char* call, const std::string& what) {
  auto r = static_cast<ncclResult_t>(result);
  // A nonblocking communicator may answer ncclInProgress: the call completes in the
  // background and must finish before the next NCCL call (polled, bounded).
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s_);
  while (r == ncclInProgress) {
    if (Clock::now() > deadline)
      abort_and_fail(fmt::format("{}: {} ({}) did not complete within {}s", me(), call, what, timeout_s_));
    sleep_briefly();
    ncclCommGetAsyncError(C(comm_), &r);
  }
  if (r != ncclSuccess)
    abort_and_fail(fmt::format("{}: {} ({}) failed: {} ({})", me(), call, what, ncclGetErrorString(r),
                               ncclGetLastError(C(comm_))));
}

NcclCommunicator::NcclCommunicator(const DistributedEnv& env, std::shared_ptr<RendezvousStore> store, int device)
    : rank_(env.rank), world_(env.world_size), device_(device), timeout_s_(env.timeout_s), store_(std::move(store)) {
  BMSYS_CUDA(cudaSetDevice(device_), fmt::format("rank {}: selecting GPU {}", rank_, device_));
  family_ = std::make_shared<Family>();
  int lo = 0, hi = 0;
  BMSYS_CUDA(cudaDeviceGetStreamPriorityRange(&lo, &hi), "stream priorities");
  BMSYS_CUDA(cudaStreamCreateWithPriority(&family_->stream, cudaStreamNonBlocking, hi),
             "creating the collective stream");
  stream_ = family_->stream;
  connect();
  family_->members.push_back(this);
}

NcclCommunicator::NcclCommunicator(const NcclCommunicator& parent, const std::string& name,
                                   const std::vector<int>& members, int rank)
    : rank_(rank),
      world_(static_cast<int>(members.size())),
      device_(parent.device_),
      timeout_s_(parent.timeout_s_),
      store_(parent.store_),
      stream_(parent.stream_),
      prefix_("bmsys-nccl/group/" + name + "/"),
      group_name_(name),
      members_(members),
      family_(parent.family_) {
  BMSYS_CUDA(cudaSetDevice(device_), fmt::format("{}: selecting GPU {}", me(), device_));
  connect();
  family_->members.push_back(this);
}

std::shared_ptr<Communicator> NcclCommunicator::group(const std::string& name, const std::vector<int>& members) {
  check_alive();
  // Members are world ranks: a group is made from the world communicator.
  if (!members_.empty()) fail("{}: group '{}' must be made from the world communicator", me(), name);
  int index = -1;
  for (size_t i = 0; i < members.size(); ++i) {
    if (members[i] < 0 || members[i] >= world_)
      fail("{}: group '{}' names rank {}, outside the world of {}", me(), name, members[i], world_);
    if (members[i] == rank_) index = static_cast<int>(i);
  }
  if (index < 0) fail("{}: group '{}' does not contain this rank", me(), name);
  if (members.size() == 1) return std::make_shared<SingleRankCommunicator>();
  // Everything enqueued so far (on the shared stream) before NCCL sets up the group.
  wait_stream(stream_, "forming a group");
  return std::shared_ptr<NcclCommunicator>(new NcclCommunicator(*this, name, members, index));
}

void NcclCommunicator::connect() {
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s_ * 1000));
  ncclUniqueId id;
  if (rank_ == 0) {
    ncclResult_t r = ncclGetUniqueId(&id);
    if (r != ncclSuccess)
      fail("{}: ncclGetUniqueId failed: {} ({})", me(), ncclGetErrorString(r), ncclGetLastError(nullptr));
    store_->set(prefix_ + kIdKey, std::vector<char>(id.internal, id.internal + sizeof id.internal));
  } else {
    std::vector<char> v = store_->get(prefix_ + kIdKey, timeout);
    if (v.size() != sizeof id.internal)
      fail("{}: the NCCL unique id in the rendezvous store has {} bytes, not {}", me(), v.size(),
           sizeof id.internal);
    std::memcpy(id.internal, v.data(), sizeof id.internal);
  }
  store_->set(prefix_ + kJoinKey + std::to_string(rank_), {'1'});

  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = nullptr;
  ncclResult_t r = ncclCommInitRankConfig(&comm, world_, id, rank_, &config);
  comm_ = comm;
  const auto deadline = Clock::now() + timeout;
  while (r == ncclInProgress && comm) {
    if (Clock::now() > deadline) {
      std::string missing;
      for (int q = 0; q < world_; ++q)
        if (!store_->check(prefix_ + kJoinKey + std::to_string(q)))
          missing += fmt::format("{}{}", missing.empty() ? "" : ", ", world_rank_of(q));
      // With the rest of the family: a group or channel may be set up while others'
      // kernels are in flight (abort_all).
      abort_and_fail(fmt::format("{}: NCCL initialization did not complete within {}s ({})", me(), timeout_s_,
                                 missing.empty() ? std::string("every rank joined; a GPU or transport problem?")
                                                 : "rank(s) " + missing + " never joined: did every rank start?"));
    }
    sleep_briefly();
    ncclCommGetAsyncError(comm, &r);
  }
  if (r != ncclSuccess) {
    std::string msg = fmt::format("{}: ncclCommInitRankConfig (GPU {}, {} ranks) failed: {} ({})", me(), device_,
                                  world_, ncclGetErrorString(r), ncclGetLastError(comm));
    if (!comm) throw Error(msg);
    abort_and_fail(msg);
  }
}

NcclCommunicator::~NcclCommunicator() {
  if (comm_) {
    if (aborted_.empty()) {
      // Finish what was enqueued, then release NCCL's resources (bounded: a failure
      // here turns into an abort, never a hang).
      try {
        wait_stream(stream_, "shutdown");
        ncclResult_t r = ncclCommFinalize(C(comm_));
        const auto deadline = Clock::now() + std::chrono::duration<double>(std::min(timeout_s_, 10.0));
        while (r == ncclInProgress && Clock::now() < deadline) {
          sleep_briefly();
          ncclCommGetAsyncError(C(comm_), &r);
        }
        if (r == ncclSuccess)
          ncclCommDestroy(C(comm_));
        else
          abort_all({comm_}, device_, std::chrono::seconds(10));  // bounded (abort_all)
      } catch (...) {
      }
    }
    comm_ = nullptr;
  }
  for (auto& f : inflight_) event_pool_.push_back(f.done);
  for (cudaEvent_t e : event_pool_) cudaEventDestroy(e);
  if (scratch_) cudaFree(scratch_);
  // The stream is the family's (destroyed with the last communicator).
  if (family_) {
    auto& m = family_->members;
    m.erase(std::remove(m.begin(), m.end(), this), m.end());
  }
  cudaGetLastError();
}

void NcclCommunicator::check_alive() const {
  if (!aborted_.empty()) throw Error(aborted_);
}

int NcclCommunicator::nccl_type(DType t, const char* what) const {
  switch (t) {
    case DType::F32: return ncclFloat32;
    case DType::F16: return ncclFloat16;
    case DType::BF16: return ncclBfloat16;
    case DType::F64: return ncclFloat64;
    case DType::I64: return ncclInt64;
    case DType::I32: return ncclInt32;
    case DType::I8: return ncclInt8;
    case DType::U8: return ncclUint8;
  }
  fail("{}: collective {}: dtype {} has no NCCL type", me(), what, dtype_name(t));
}

void* NcclCommunicator::scratch(size_t bytes) {
  if (bytes <= scratch_bytes_) return scratch_;
  // Stream-ordered: the old buffer is freed after the collectives that use it.
  if (scratch_) BMSYS_CUDA(cudaFreeAsync(scratch_, stream_), "nccl scratch");
  scratch_bytes_ = std::max(bytes, scratch_bytes_ * 2);
  BMSYS_CUDA(cudaMallocAsync(&scratch_, scratch_bytes_, stream_), "nccl scratch");
  return scratch_;
}

void NcclCommunicator::record(const std::string& what) {
  cudaEvent_t e;
  if (!event_pool_.empty()) {
    e = event_pool_.back();
    event_pool_.pop_back();
  } else {
    BMSYS_CUDA(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "nccl events");
  }
  BMSYS_CUDA(cudaEventRecord(e, stream_), "nccl events");
  inflight_.push_back({++seq_, what, e});
  if (family_) inflight_.back().ticket = ++family_->tickets;
}

int NcclCommunicator::progress() {
  int n = 0;
  while (!inflight_.empty()) {
    cudaError_t q = cudaEventQuery(inflight_.front().done);
    if (q == cudaErrorNotReady) break;
    if (q != cudaSuccess) {
      cudaGetLastError();
      abort_and_fail(fmt::format("{}: collective {} (#{}) failed on the GPU: {}", me(),
                                 inflight_.front().what, inflight_.front().seq, cudaGetErrorString(q)));
    }
    event_pool_.push_back(inflight_.front().done);
    inflight_.pop_front();
    ++n;
  }
  return n;
}

void NcclCommunicator::enqueue_all_reduce(const void* in, void* out, DType dtype, int64_t count, ReduceOp op) {
  check_alive();
  if (count <= 0) return;
  const bool mean = op == ReduceOp::Mean;
  if (mean && !dtype_is_float(dtype)) fail("{}: all_reduce mean of {}", me(), dtype_name(dtype));
  const ncclRedOp_t red = mean ? ncclAvg : op == ReduceOp::Max ? ncclMax : ncclSum;
  check(ncclAllReduce(in, out, static_cast<size_t>(count), static_cast<ncclDataType_t>(nccl_type(dtype, "all_reduce")),
                      red, C(comm_), stream_),
        "ncclAllReduce", "all_reduce");
  record("all_reduce");
}

void NcclCommunicator::enqueue_reduce_scatter(const void* in, DType dtype, int64_t count, void* shard, ReduceOp op) {
  check_alive();
  const int64_t S = shard_size(count, world_);
  if (S <= 0) return;
  const size_t es = dtype_size(dtype);
  const auto t = static_cast<ncclDataType_t>(nccl_type(dtype, "reduce_scatter"));
  const bool mean = op == ReduceOp::Mean;
  const void* src = in;
  if (S * world_ != count) {
    // NCCL reduces R equal shards: pad the input with zeros (so the padding of the
    // last shard comes out zero, as the shard layout requires).
    char* p = static_cast<char*>(scratch(static_cast<size_t>(S * world_) * es));
    BMSYS_CUDA(cudaMemcpyAsync(p, in, static_cast<size_t>(count) * es, cudaMemcpyDeviceToDevice, stream_),
               "reduce_scatter padding");
    BMSYS_CUDA(cudaMemsetAsync(p + count * es, 0, static_cast<size_t>(S * world_ - count) * es, stream_),
               "reduce_scatter padding");
    src = p;
  }
  check(ncclReduceScatter(src, shard, static_cast<size_t>(S), t, mean ? ncclAvg : ncclSum, C(comm_), stream_),
        "ncclReduceScatter", "reduce_scatter");
  record("reduce_scatter");
}

void NcclCommunicator::enqueue_all_gather(const void* shard, DType dtype, void* out, int64_t count) {
  check_alive();
  const int64_t S = shard_size(count, world_);
  if (S <= 0) return;
  const size_t es = dtype_size(dtype);
  const auto t = static_cast<ncclDataType_t>(nccl_type(dtype, "all_gather"));
  if (S * world_ == count) {
    check(ncclAllGather(shard, out, static_cast<size_t>(S), t, C(comm_), stream_), "ncclAllGather", "all_gather");
  } else {
    // Gather the padded shards, keep the first `count` elements.
    void* p = scratch(static_cast<size_t>(S * world_) * es);
    check(ncclAllGather(shard, p, static_cast<size_t>(S), t, C(comm_), stream_), "ncclAllGather", "all_gather");
    BMSYS_CUDA(cudaMemcpyAsync(out, p, static_cast<size_t>(count) * es, cudaMemcpyDeviceToDevice, stream_),
               "all_gather unpadding");
  }
  record("all_gather");
}

void NcclCommunicator::enqueue_sync_param(void* param, DType dtype, int64_t n) {
  check_alive();
  const int64_t S = shard_size(n, world_);
  if (S <= 0) return;
  const size_t es = dtype_size(dtype);
  const auto t = static_cast<ncclDataType_t>(nccl_type(dtype, "sync_param"));
  char* base = static_cast<char*>(param);
  if (S * world_ == n) {
    // In place: this rank's slice is already where the gather puts it.
    check(ncclAllGather(base + rank_ * S * es, param, static_cast<size_t>(S), t, C(comm_), stream_),
          "ncclAllGather", "sync_param");
  } else {
    char* p = static_cast<char*>(scratch(static_cast<size_t>(S * (world_ + 1)) * es));
    char* mine = p + S * world_ * es;  // this rank's slice, zero-padded to S
    const int64_t off = std::min(n, rank_ * S), len = std::min(S, n - off);
    BMSYS_CUDA(cudaMemsetAsync(mine, 0, static_cast<size_t>(S) * es, stream_), "sync_param");
    if (len > 0)
      BMSYS_CUDA(cudaMemcpyAsync(mine, base + off * es, static_cast<size_t>(len) * es, cudaMemcpyDeviceToDevice,
                                 stream_),
                 "sync_param");
    check(ncclAllGather(mine, p, static_cast<size_t>(S), t, C(comm_), stream_), "ncclAllGather", "sync_param");
    BMSYS_CUDA(cudaMemcpyAsync(param, p, static_cast<size_t>(n) * es, cudaMemcpyDeviceToDevice, stream_),
               "sync_param");
  }
  record("sync_param");
}

// --- synchronous API ----------------------------------------------------------------

void NcclCommunicator::all_reduce(void* data, DType dtype, int64_t count, ReduceOp op) {
  enqueue_all_reduce(data, data, dtype, count, op);
  wait_stream(stream_, "all_reduce");
}

void NcclCommunicator::all_reduce_host_f64(double* data, int64_t count) {
  check_alive();
  if (count <= 0) return;
  void* p = scratch(static_cast<size_t>(count) * sizeof(double));
  BMSYS_CUDA(cudaMemcpyAsync(p, data, count * sizeof(double), cudaMemcpyHostToDevice, stream_), "all_reduce_host_f64");
  enqueue_all_reduce(p, p, DType::F64, count, ReduceOp::Sum);
  BMSYS_CUDA(cudaMemcpyAsync(data, p, count * sizeof(double), cudaMemcpyDeviceToHost, stream_), "all_reduce_host_f64");
  wait_stream(stream_, "all_reduce_host_f64");
}

void NcclCommunicator::reduce_scatter(const void* in, DType dtype, int64_t count, void* shard, ReduceOp op) {
  enqueue_reduce_scatter(in, dtype, count, shard, op);
  wait_stream(stream_, "reduce_scatter");
}

void NcclCommunicator::all_gather(const void* shard, DType dtype, void* out, int64_t count) {
  enqueue_all_gather(shard, dtype, out, count);
  wait_stream(stream_, "all_gather");
}

void NcclCommunicator::broadcast(void* data, DType dtype, int64_t count, int root) {
  check_alive();
  if (count > 0) {
    check(ncclBroadcast(data, data, static_cast<size_t>(count),
                        static_cast<ncclDataType_t>(nccl_type(dtype, "broadcast")), root, C(comm_), stream_),
          "ncclBroadcast", "broadcast");
    record("broadcast");
  }
  wait_stream(stream_, "broadcast");
}

void NcclCommunicator::barrier() {
  check_alive();
  // NCCL has no barrier: an all-reduce of one value that every rank must enter.
  void* p = scratch(sizeof(float));
  BMSYS_CUDA(cudaMemsetAsync(p, 0, sizeof(float), stream_), "barrier");
  check(ncclAllReduce(p, p, 1, ncclFloat32, ncclSum, C(comm_), stream_), "ncclAllReduce", "barrier");
  record("barrier");
  wait_stream(stream_, "barrier");
}

// --- waiting, failures ----------------------------------------------------------------

void NcclCommunicator::wait_stream(cudaStream_t s, const char* what) { wait_until(s, nullptr, what); }

void NcclCommunicator::wait_event(cudaEvent_t e, const char* what) { wait_until(nullptr, e, what); }

// Polls the stream `s`, or the event `e` when given, and every communicator of the
// process (they share the stream: a collective of any of them may be what it waits on).
void NcclCommunicator::wait_until(cudaStream_t s, cudaEvent_t e, const char* what) {
  check_alive();
  const auto timeout = std::chrono::duration<double>(timeout_s_);
  auto last_progress = Clock::now();
  const auto start = last_progress;
  const std::vector<NcclCommunicator*> all =
      family_ && !family_->members.empty() ? family_->members : std::vector<NcclCommunicator*>{this};
  for (;;) {
    cudaError_t q = e ? cudaEventQuery(e) : cudaStreamQuery(s);
    if (q == cudaSuccess) {
      for (NcclCommunicator* m : all)
        if (m->comm_) m->progress();
      return;
    }
    if (q != cudaErrorNotReady) {
      cudaGetLastError();
      throw Error(fmt::format("{}: {}: the GPU reported {} ({})", me(), what, cudaGetErrorString(q),
                              cudaGetErrorName(q)));
    }
    int moved = 0;
    NcclCommunicator* oldest = nullptr;  // the first collective in flight on the stream
    for (NcclCommunicator* m : all) {
      if (!m->comm_) continue;
      ncclResult_t r = ncclSuccess;
      ncclCommGetAsyncError(C(m->comm_), &r);
      if (r != ncclSuccess && r != ncclInProgress)
        m->abort_and_fail(fmt::format("{}: collective {} (#{}) failed: {} ({})", m->me(),
                                      m->inflight_.empty() ? std::string("?") : m->inflight_.front().what,
                                      m->inflight_.empty() ? m->seq_ : m->inflight_.front().seq,
                                      ncclGetErrorString(r), ncclGetLastError(C(m->comm_))));
      moved += m->progress();
      if (!m->inflight_.empty() && (!oldest || m->inflight_.front().ticket < oldest->inflight_.front().ticket))
        oldest = m;
    }
    if (moved > 0) last_progress = Clock::now();
    // Only collectives can wait on other ranks: without one in flight, the stream is
    // computing, which is not bounded by the communication timeout.
    if (!oldest) last_progress = Clock::now();
    if (Clock::now() - last_progress > timeout)
      oldest->fail_timeout(what, std::chrono::duration<double>(Clock::now() - start).count());
    sleep_briefly();
  }
}

std::string NcclCommunicator::diagnose(uint64_t seq, const std::string& what) {
  // Every rank that times out says where it waits; a rank that does not say so within
  // a short grace period died or hangs outside the collectives.
  std::string out;
  try {
    store_->set(prefix_ + kStuckKey + std::to_string(rank_), [&] {
      std::string v = fmt::format("{} {}", seq, what);
      return std::vector<char>(v.begin(), v.end());
    }());
    const auto grace = Clock::now() + std::chrono::duration<double>(std::min(2.0, std::max(0.5, timeout_s_ / 2)));
    std::vector<std::string> said(static_cast<size_t>(world_));
    for (;;) {
      bool all = true;
      for (int q = 0; q < world_; ++q) {
        if (q == rank_ || !said[q].empty()) continue;
        if (store_->check(prefix_ + kStuckKey + std::to_string(q))) {
          auto v = store_->get(prefix_ + kStuckKey + std::to_string(q), std::chrono::milliseconds(100));
          said[q] = std::string(v.begin(), v.end());
        } else {
          all = false;
        }
      }
      if (all || Clock::now() > grace) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::vector<std::string> silent, elsewhere, same;
    for (int q = 0; q < world_; ++q) {
      if (q == rank_) continue;
      // Named by world rank.
      if (said[q].empty())
        silent.push_back(std::to_string(world_rank_of(q)));
      else if (said[q].rfind(std::to_string(seq) + " ", 0) == 0)
        same.push_back(std::to_string(world_rank_of(q)));
      else
        elsewhere.push_back(fmt::format("rank {} waits in #{}", world_rank_of(q), said[q]));
    }
    auto join = [](const std::vector<std::string>& v) {
      std::string s;
      for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
      return s;
    };
    if (!silent.empty())
      out += fmt::format("rank{} {} did not reach it (died, or hangs outside the collectives)",
                         silent.size() > 1 ? "s" : "", join(silent));
    if (!elsewhere.empty()) out += (out.empty() ? "" : "; ") + join(elsewhere) + " (the ranks disagree on the order)";
    if (out.empty()) out = "every rank waits in it (a GPU or NCCL transport problem?)";
  } catch (const Error& e) {
    // The TCP store lives in rank 0: when it is unreachable, rank 0 is gone.
    out = fmt::format("the rendezvous store is unreachable ({}); rank 0 probably died", e.what());
  }
  return out;
}

void NcclCommunicator::fail_timeout(const char* what, double waited_s) {
  const uint64_t seq = inflight_.empty() ? seq_ : inflight_.front().seq;
  const std::string coll = inflight_.empty() ? std::string("?") : inflight_.front().what;
  std::string who = diagnose(seq, coll);
  abort_and_fail(fmt::format("{}: collective {} (#{} of this run) timed out after {:.1f}s (timeout {}s; a peer "
                             "may have died): {} [waiting in {}]",
                             me(), coll, seq, waited_s, timeout_s_, who, what));
}

void NcclCommunicator::abort_and_fail(const std::string& msg) {
  // Should the GPU still not let the process end, end it anyway: never a silent hang.
  // BMSYS_NCCL_EXIT_AFTER_ABORT_S (default 15; 0 = never, for tests that go on). Armed
  // before the aborts, so that it also ends a process whose abort does not return.
  const char* env = std::getenv("BMSYS_NCCL_EXIT_AFTER_ABORT_S");
  const int after = env && *env ? std::atoi(env) : 15;
  if (after > 0)
    std::thread([msg, after] {
      std::this_thread::sleep_for(std::chrono::seconds(after));
      std::fprintf(stderr, "bmsys-run: error: %s (exiting: the GPU did not stop after the NCCL abort)\n",
                   msg.c_str());
      std::fflush(stderr);
      ::_exit(1);
    }).detach();
  // Aborting stops NCCL's kernels, so the streams drain and the process can exit:
  // every communicator of the process (the world, its groups and point-to-point
  // channels, whose kernels share the GPU), all at once (abort_all).
  std::vector<NcclCommunicator*> all = family_ ? family_->members : std::vector<NcclCommunicator*>{};
  if (std::find(all.begin(), all.end(), this) == all.end()) all.push_back(this);
  std::vector<void*> comms;
  for (NcclCommunicator* m : all) {
    if (m->aborted_.empty()) m->aborted_ = msg;
    if (m->comm_) comms.push_back(m->comm_);
    m->comm_ = nullptr;
  }
  // Bounded: an abort that does not return (a GPU that does not stop) must not keep
  // the error from being reported; the watchdog above ends the process.
  const double limit = std::max(10.0, timeout_s_);
  if (!abort_all(comms, device_, std::chrono::duration<double>(limit))) {
    std::fprintf(stderr, "bmsys: %s: the NCCL abort did not finish within %.0fs\n", me().c_str(), limit);
    std::fflush(stderr);
  }
  throw Error(msg);
}

}  // namespace bmsys::rt
