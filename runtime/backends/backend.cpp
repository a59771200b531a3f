// The host-side defaults of Backend (backend.h): the next ids picked through host copies.
#include "runtime/backends/backend.h"

#include <cmath>

#include "runtime/core/error.h"
#include "runtime/core/tensor.h"

namespace bmsys::rt {

uint64_t Backend::queue_pick(const void* x, DType dtype, int64_t rows, int64_t V, int64_t stride, void* dst,
                             const PickOptions& pick, const std::vector<double>& uniforms) {
  check_pick(dtype, rows, pick, uniforms);
  std::vector<int64_t> ids(static_cast<size_t>(rows), 0);
  HostTensor row(dtype, {V});
  const size_t es = dtype_size(dtype);
  for (int64_t r = 0; r < rows; ++r) {
    copy_to_host(row.data.data(), static_cast<const uint8_t*>(x) + static_cast<size_t>(r * stride) * es,
                 row.data.size());
    const std::vector<float> v = row.to_f32();
    pick_row_.resize(v.size());
    for (size_t i = 0; i < v.size(); ++i) pick_row_[i] = std::isnan(v[i]) ? -INFINITY : v[i];
    ids[static_cast<size_t>(r)] =
        pick_token(pick_row_, pick, pick.greedy() ? 0 : uniforms[static_cast<size_t>(r)], pick_scratch_);
  }
  upload(dst, DType::I64, ids.data(), DType::I64, rows);
  const uint64_t ticket = ++pick_issued_;
  pick_done_[ticket % kPickTickets] = std::move(ids);
  return ticket;
}

void Backend::check_pick(DType dtype, int64_t rows, const PickOptions& pick,
                         const std::vector<double>& uniforms) const {
  if (!dtype_is_float(dtype)) fail("pick: the logits are {}, not a float dtype", dtype_name(dtype));
  if (pick.greedy()) return;
  if (static_cast<int64_t>(uniforms.size()) != rows)
    fail("pick: {} uniforms for {} rows (one draw a row)", uniforms.size(), rows);
  for (double u : uniforms)
    if (!(u >= 0 && u < 1)) fail("pick: a uniform of {}, not in [0, 1)", u);
  if (pick.top_k < 0 || !(pick.top_p > 0 && pick.top_p <= 1))
    fail("pick: top_k {} and top_p {} (want top_k >= 0, top_p in (0, 1])", pick.top_k, pick.top_p);
}

std::vector<int64_t> Backend::picked_ids(uint64_t ticket) {
  check_pick_ticket(ticket);
  return pick_done_[ticket % kPickTickets];
}

void Backend::check_pick_ticket(uint64_t ticket) const {
  if (ticket == 0 || ticket > pick_issued_)
    fail("picked_ids: ticket {} was never issued (the last is {})", ticket, pick_issued_);
  if (ticket + kPickTickets <= pick_issued_)
    fail("picked_ids: ticket {} is no longer readable: {} argmaxes were queued after it (at most {})", ticket,
         pick_issued_ - ticket, kPickTickets - 1);
}

}  // namespace bmsys::rt
