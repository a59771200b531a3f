// Point-to-point on the NCCL communicator (pipeline parallelism; the channels of
// nccl_communicator.h): a two-rank communicator per peer and direction, each with
// a stream of its own, so that sends and receives progress independently.
#include <nccl.h>

#include <algorithm>

#include "runtime/backends/cuda/cuda_common.h"
#include "runtime/backends/cuda/nccl_communicator.h"
#include "runtime/core/error.h"

namespace bmsys::rt {

namespace {
ncclComm_t C(void* p) { return static_cast<ncclComm_t>(p); }
}  // namespace

NcclCommunicator::Channel::~Channel() {
  comm.reset();  // waits for its work (bounded) and releases NCCL's resources
  if (stream) cudaStreamDestroy(stream);
  cudaGetLastError();
}

NcclCommunicator& NcclCommunicator::channel(int peer, bool send) {
  for (auto& c : channels_)
    if (c->peer == peer && c->send == send) return *c->comm;
  check_alive();
  if (peer < 0 || peer >= world_ || peer == rank_)
    fail("{}: point-to-point with rank {} (of {}): not another rank of the communicator", me(), peer, world_);
  // The pair's two channels: "up" carries the lower rank's sends, "down" the higher's.
  const int lo = std::min(rank_, peer), hi = std::max(rank_, peer);
  const bool up = (rank_ == lo) == send;
  const std::string name = fmt::format("{}.p2p{}-{}.{}", group_name_.empty() ? "world" : group_name_,
                                       world_rank_of(lo), world_rank_of(hi), up ? "up" : "down");
  auto c = std::make_unique<Channel>();
  c->peer = peer;
  c->send = send;
  c->comm.reset(new NcclCommunicator(*this, name, {world_rank_of(lo), world_rank_of(hi)}, rank_ == lo ? 0 : 1));
  // A stream of its own (the constructor gave it the family's): sends and receives
  // must not wait behind each other or behind the collectives.
  int least = 0, greatest = 0;
  BMSYS_CUDA(cudaDeviceGetStreamPriorityRange(&least, &greatest), "stream priorities");
  BMSYS_CUDA(cudaStreamCreateWithPriority(&c->stream, cudaStreamNonBlocking, greatest),
             fmt::format("{}: creating the stream of channel '{}'", me(), name));
  c->comm->stream_ = c->stream;
  NcclCommunicator& ch = *c->comm;
  channels_.push_back(std::move(c));
  // NCCL connects a pair at its first transfer: one byte now, so that the run's first
  // send does not wait for the peer to connect.
  void* byte = ch.scratch(1);
  ch.p2p(send, byte, 1, fmt::format("connecting channel '{}'", name));
  ch.wait_stream(ch.stream_, "connecting a point-to-point channel");
  return ch;
}

void NcclCommunicator::p2p(bool send, void* data, size_t bytes, const std::string& what) {
  check_alive();
  if (bytes == 0) return;
  const int peer = 1 - rank_;  // a channel has two ranks
  if (send)
    check(ncclSend(data, bytes, ncclUint8, peer, C(comm_), stream_), "ncclSend", what);
  else
    check(ncclRecv(data, bytes, ncclUint8, peer, C(comm_), stream_), "ncclRecv", what);
  record(what);
}

void NcclCommunicator::connect_peers(const std::vector<int>& peers) {
  std::vector<int> p = peers;
  std::sort(p.begin(), p.end());
  p.erase(std::unique(p.begin(), p.end()), p.end());
  // Every rank connects its pairs in ascending order of (lower, higher) rank, each
  // pair "up" then "down": no two ranks wait for each other in opposite orders.
  for (int q : p) {
    const bool lower = rank_ < q;
    channel(q, lower);   // up: the lower rank sends
    channel(q, !lower);  // down
  }
}

void NcclCommunicator::enqueue_send(const void* data, size_t bytes, int peer, const std::string& what) {
  channel(peer, true).p2p(true, const_cast<void*>(data), bytes, what);
}

void NcclCommunicator::enqueue_recv(void* data, size_t bytes, int peer, const std::string& what) {
  channel(peer, false).p2p(false, data, bytes, what);
}

cudaStream_t NcclCommunicator::p2p_stream(int peer, bool send) { return channel(peer, send).stream_; }

void NcclCommunicator::send(const void* data, size_t bytes, int peer, uint64_t tag) {
  enqueue_send(data, bytes, peer, fmt::format("send of {} bytes to rank {} (tag {})", bytes, world_rank_of(peer), tag));
}

void NcclCommunicator::recv(void* data, size_t bytes, int peer, uint64_t tag) {
  NcclCommunicator& ch = channel(peer, false);
  ch.p2p(false, data, bytes,
         fmt::format("receive of {} bytes from rank {} (tag {})", bytes, world_rank_of(peer), tag));
  ch.wait_stream(ch.stream_, "recv");
}

void NcclCommunicator::wait_sends() {
  for (auto& c : channels_)
    if (c->send) c->comm->wait_stream(c->stream, "wait_sends");
}

void NcclCommunicator::enqueue_broadcast(const void* in, void* out, DType dtype, int64_t count, int root) {
  check_alive();
  if (count <= 0) return;
  if (root < 0 || root >= world_) fail("{}: broadcast from rank {} of {}", me(), root, world_);
  check(ncclBroadcast(rank_ == root ? in : out, out, static_cast<size_t>(count),
                      static_cast<ncclDataType_t>(nccl_type(dtype, "broadcast")), root, C(comm_), stream_),
        "ncclBroadcast", "broadcast");
  record("broadcast");
}

}  // namespace bmsys::rt
