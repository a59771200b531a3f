// The host-side defaults of Backend (backend.h): greedy argmax through host copies.
#include "runtime/backends/backend.h"

#include "runtime/core/error.h"
#include "runtime/core/tensor.h"

namespace bmsys::rt {

uint64_t Backend::queue_argmax(const void* x, DType dtype, int64_t rows, int64_t V, int64_t stride,
                               void* dst) {
  if (!dtype_is_float(dtype)) fail("argmax: the logits are {}, not a float dtype", dtype_name(dtype));
  std::vector<int64_t> ids(static_cast<size_t>(rows), 0);
  HostTensor row(dtype, {V});
  const size_t es = dtype_size(dtype);
  for (int64_t r = 0; r < rows; ++r) {
    copy_to_host(row.data.data(), static_cast<const uint8_t*>(x) + static_cast<size_t>(r * stride) * es,
                 row.data.size());
    std::vector<float> v = row.to_f32();
    int64_t best = 0;
    for (int64_t i = 1; i < V; ++i)
      if (v[static_cast<size_t>(i)] > v[static_cast<size_t>(best)]) best = i;  // first maximum
    ids[static_cast<size_t>(r)] = best;
  }
  upload(dst, DType::I64, ids.data(), DType::I64, rows);
  const uint64_t ticket = ++argmax_issued_;
  argmax_done_[ticket % kArgmaxTickets] = std::move(ids);
  return ticket;
}

std::vector<int64_t> Backend::argmax_ids(uint64_t ticket) {
  check_argmax_ticket(ticket);
  return argmax_done_[ticket % kArgmaxTickets];
}

void Backend::check_argmax_ticket(uint64_t ticket) const {
  if (ticket == 0 || ticket > argmax_issued_)
    fail("argmax_ids: ticket {} was never issued (the last is {})", ticket, argmax_issued_);
  if (ticket + kArgmaxTickets <= argmax_issued_)
    fail("argmax_ids: ticket {} is no longer readable: {} argmaxes were queued after it (at most {})", ticket,
         argmax_issued_ - ticket, kArgmaxTickets - 1);
}

}  // namespace bmsys::rt
