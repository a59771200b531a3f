#include "runtime/backends/cpu/cpu_pipeline.h"

#include <cstring>

#include "runtime/collectives/communicator.h"
#include "runtime/core/error.h"

namespace bmsys::rt::cpu {

namespace {
// One message per (micro-batch, boundary channel); the direction is implied by
// the pair of ranks. Gloo matches a receive to a send by peer and slot.
uint64_t message_tag(const Attrs& a) {
  return (static_cast<uint64_t>(a.get_int("channel")) << 24) | static_cast<uint64_t>(a.get_int("micro_batch"));
}
}  // namespace

void pipeline_kernel(const KernelLaunch& l) {
  const Attrs& a = *l.attrs;
  switch (l.kernel) {
    case KernelId::PpSend:
    case KernelId::PpRecv: {
      const bool send = l.kernel == KernelId::PpSend;
      const int peer = static_cast<int>(a.get_int("peer"));
      const TensorView& t = send ? l.inputs[0] : l.outputs[0];
      try {
        if (send)
          l.ctx.pp_comm->send(t.data, t.bytes(), peer, message_tag(a));
        else
          l.ctx.pp_comm->recv(t.data, t.bytes(), peer, message_tag(a));
      } catch (const Error& e) {
        // Name the stage: the communicator knows only ranks of the pipeline group.
        fail("pipeline stage {}: {} micro-batch {} (channel {}) {} stage {} failed: {}", l.ctx.pp_rank,
             send ? "sending" : "receiving", a.get_int("micro_batch"), a.get_int("channel"), send ? "to" : "from",
             peer, e.what());
      }
      return;
    }
    case KernelId::PpBroadcast: {
      const TensorView& y = l.outputs[0];
      if (!l.inputs.empty()) std::memcpy(y.data, l.inputs[0].data, y.bytes());
      const int root = static_cast<int>(a.get_int("root"));
      try {
        l.ctx.pp_comm->broadcast(y.data, y.dtype, y.numel(), root);
      } catch (const Error& e) {
        fail("pipeline stage {}: the loss broadcast from stage {} failed: {}", l.ctx.pp_rank, root, e.what());
      }
      return;
    }
    case KernelId::PpMean: {
      const float inv = 1.0f / static_cast<float>(a.get_int("micro_batches"));
      const float* x = l.inputs[0].as<float>();
      float* y = l.outputs[0].as<float>();
      for (int64_t i = 0, n = l.inputs[0].numel(); i < n; ++i) y[i] = x[i] * inv;
      return;
    }
    default:
      fail("internal error: {} is not a pipeline kernel", kernel_name(l.kernel));
  }
}

}  // namespace bmsys::rt::cpu
