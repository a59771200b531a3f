#include "runtime/core/swap_schedule.h"

#include <fmt/format.h>

#include <algorithm>

#include "runtime/core/error.h"

namespace bmsys::rt {

namespace {
constexpr uint64_t kAlign = 256;
uint64_t align_up(uint64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

std::string mib(uint64_t b) { return fmt::format("{:.1f} MiB", b / double(1 << 20)); }
}  // namespace

SwapSchedule::SwapSchedule(const Artifact& a, Backend& backend) : art_(a), backend_(backend) {
  const MemoryScheduleDesc& s = a.schedule;
  groups_.resize(s.groups.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    groups_[g].layer = s.groups[g];
    groups_[g].slot = static_cast<int>(g % 2);
  }
  group_.assign(a.buffers.size(), -1);
  offset_.assign(a.buffers.size(), 0);
  for (size_t i = 0; i < a.buffers.size(); ++i) {
    const BufferDesc& b = a.buffers[i];
    if (b.swap_group < 0) continue;
    if (b.kind != BufferKind::Weight || b.sharded())
      fail("{}: buffer '{}' is marked for swapping (group {}) but is not a whole weight", a.path, b.name,
           b.swap_group);
    if (static_cast<size_t>(b.swap_group) >= groups_.size())
      fail("{}: buffer '{}' names swap group {}, the memory schedule has {}", a.path, b.name, b.swap_group,
           groups_.size());
    Group& g = groups_[b.swap_group];
    group_[i] = b.swap_group;
    offset_[i] = g.bytes;
    // Sizes in the buffer's dtype as this run has it (--dtype may have narrowed it).
    g.bytes += align_up(static_cast<uint64_t>(shape_numel(b.resolve(0, 0))) * dtype_size(b.dtype));
  }
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (groups_[g].bytes == 0)
      fail("{}: swap group {} (layer {}) has no weights", a.path, g, groups_[g].layer);
    slot_bytes_ = std::max(slot_bytes_, groups_[g].bytes);
  }
  // A swapped weight must never be written: its slot is overwritten by the next layer.
  for (const FunctionDesc& f : a.functions)
    for (size_t i = 0; i < f.instructions.size(); ++i)
      for (uint32_t o : f.instructions[i].outputs)
        if (swapped(o))
          fail("{}: function '{}': {} writes the swapped weight '{}'; a memory schedule is for inference", a.path,
               f.name, Artifact::describe(i, f.instructions[i]), a.buffers[o].name);
  for (Group& g : groups_)
    g.host = backend_.allocate_host(g.bytes, fmt::format("the weights of swapped layer {}", g.layer));
  const int nslots = groups_.size() > 1 ? 2 : 1;
  for (int k = 0; k < nslots; ++k) slot_[k] = backend_.allocate(slot_bytes_, fmt::format("swap slot {}", k));
}

SwapSchedule::~SwapSchedule() {
  try {
    for (int k = 0; k < 2; ++k)
      if (slot_[k] && content_[k] >= 0) backend_.acquire_slot(k);
    backend_.synchronize();
  } catch (...) {
  }
}

void* SwapSchedule::address(uint32_t buffer) const {
  const Group& g = groups_[group_[buffer]];
  return static_cast<uint8_t*>(slot_[g.slot]->data()) + offset_[buffer];
}

void* SwapSchedule::host_address(uint32_t buffer) const {
  return static_cast<uint8_t*>(groups_[group_[buffer]].host->data()) + offset_[buffer];
}

const SwapSchedule::Plan& SwapSchedule::plan(const FunctionDesc& f) {
  auto it = plans_.find(&f);
  if (it != plans_.end()) return it->second;
  Plan p;
  std::vector<Span> spans(groups_.size());
  std::vector<char> used(groups_.size(), 0);
  for (size_t i = 0; i < f.instructions.size(); ++i)
    for (uint32_t in : f.instructions[i].inputs) {
      if (!swapped(in)) continue;
      const int g = group_[in];
      if (!used[g]) spans[g] = {i, i, g};
      used[g] = 1;
      spans[g].last = i;
    }
  for (size_t g = 0; g < groups_.size(); ++g)
    if (used[g]) p.spans.push_back(spans[g]);
  std::sort(p.spans.begin(), p.spans.end(), [](const Span& x, const Span& y) { return x.first < y.first; });
  // Spans of one slot follow each other (the slot is overwritten between them).
  for (size_t k = 0; k < p.spans.size(); ++k)
    for (size_t j = k + 1; j < p.spans.size(); ++j)
      if (groups_[p.spans[j].group].slot == groups_[p.spans[k].group].slot &&
          p.spans[j].first <= p.spans[k].last)
        fail("{}: function '{}': swapped layers {} and {} share slot {} but their instructions interleave "
             "({}..{} and {}..{}); the memory schedule needs each layer's instructions together",
             art_.path, f.name, groups_[p.spans[k].group].layer, groups_[p.spans[j].group].layer,
             groups_[p.spans[k].group].slot, p.spans[k].first, p.spans[k].last, p.spans[j].first, p.spans[j].last);
  p.starts.assign(f.instructions.size(), -1);
  p.ends.assign(f.instructions.size(), -1);
  for (size_t k = 0; k < p.spans.size(); ++k) {
    p.starts[p.spans[k].first] = static_cast<int>(k);
    p.ends[p.spans[k].last] = static_cast<int>(k);
  }
  return plans_.emplace(&f, std::move(p)).first->second;
}

// Copies group g into its slot unless the slot already holds it (or receives it).
void SwapSchedule::ensure(int g) {
  Group& grp = groups_[g];
  if (content_[grp.slot] == g) return;
  backend_.swap_in(grp.slot, slot_[grp.slot]->data(), grp.host->data(), grp.bytes);
  content_[grp.slot] = g;
  stats_.copies++;
  stats_.bytes += grp.bytes;
}

void SwapSchedule::before(const FunctionDesc& f, size_t i) {
  const Plan& p = plan(f);
  const int k = p.starts[i];
  if (k < 0) return;
  if (k == 0) {
    // The first layer of each slot in this function (later ones are prefetched).
    bool seen[2] = {false, false};
    for (const Span& sp : p.spans) {
      const int slot = groups_[sp.group].slot;
      if (!seen[slot]) ensure(sp.group);
      seen[slot] = true;
    }
  }
  const int g = p.spans[k].group;
  ensure(g);
  backend_.acquire_slot(groups_[g].slot);
}

void SwapSchedule::after(const FunctionDesc& f, size_t i) {
  const Plan& p = plan(f);
  const int k = p.ends[i];
  if (k < 0) return;
  const int slot = groups_[p.spans[k].group].slot;
  backend_.release_slot(slot);
  // The next layer of this slot, wrapping around to the next call of the function.
  const size_t n = p.spans.size();
  for (size_t d = 1; d <= n; ++d) {
    const int g = p.spans[(k + d) % n].group;
    if (groups_[g].slot == slot) {
      ensure(g);
      break;
    }
  }
}

std::string SwapSchedule::describe() const {
  std::string layers;
  for (size_t g = 0; g < groups_.size(); ++g) layers += fmt::format("{}{}", g ? ", " : "", groups_[g].layer);
  uint64_t host = 0;
  for (const Group& g : groups_) host += g.bytes;
  return fmt::format("memory schedule: {} swapped layers ({}) in {} slots of {}; {} in host memory", groups_.size(),
                     layers, groups_.size() > 1 ? 2 : 1, mib(slot_bytes_), mib(host));
}

}  // namespace bmsys::rt
