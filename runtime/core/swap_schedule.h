// The runtime side of bmsys-memory-schedule (docs/inference.md, "Memory schedule"):
// layers whose weights do not fit the device budget live in host memory (pinned on
// CUDA) and run from one of two swap slots in device memory.
//
// The artifact names the swapped layers (Artifact::schedule.groups, in execution order;
// group g uses slot g % 2) and marks each of their weight buffers with its group
// (BufferDesc::swap_group). Here each group's weights are laid out contiguously (256-byte
// aligned, in buffer order) in one host block and, at the same offsets, in its slot, so
// moving a layer is one host -> device copy and its weights always have the same device
// addresses (launch records and CUDA graphs stay valid).
//
// Per function, group g's span is the first to the last instruction reading any of its
// weights. Before a span starts, its slot is acquired (the backend orders the following
// launches after the copy); when it ends, the slot is released and the next group of
// that slot (in execution order, wrapping to the next call) is copied in at once, so
// the copy of one swapped layer overlaps the computation of the layers before it. A
// slot that already holds (or is receiving) the group it needs is not copied again:
// with at most two swapped layers nothing moves after the first call.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/backends/backend.h"
#include "runtime/core/artifact.h"

namespace bmsys::rt {

class SwapSchedule {
 public:
  // Lays out the groups and allocates their host blocks and the two device slots.
  // Throws naming the artifact when the plan is inconsistent (a group's span overlaps
  // another group of its slot, a swapped weight is written by an instruction).
  SwapSchedule(const Artifact& a, Backend& backend);
  // Waits for copies in flight (they write the slots and read the host blocks).
  ~SwapSchedule();

  bool swapped(uint32_t buffer) const { return buffer < group_.size() && group_[buffer] >= 0; }
  // Device address of a swapped weight (in its group's slot).
  void* address(uint32_t buffer) const;
  // Its host copy (weights are loaded here once).
  void* host_address(uint32_t buffer) const;

  // Around instruction i of function f (the executor calls both for every instruction).
  void before(const FunctionDesc& f, size_t i);
  void after(const FunctionDesc& f, size_t i);

  struct Stats {
    int64_t copies = 0;
    uint64_t bytes = 0;
  };
  Stats stats() const { return stats_; }
  // "memory schedule: 8 swapped layers (3, 7, ...) in 2 slots of 193.2 MiB; 24 resident;
  //  host copies 1.55 GiB"
  std::string describe() const;

 private:
  struct Group {
    int64_t layer = 0;
    int slot = 0;
    uint64_t bytes = 0;
    std::unique_ptr<DeviceMemory> host;
  };
  struct Span {
    size_t first = 0, last = 0;
    int group = 0;
  };
  struct Plan {
    std::vector<Span> spans;                 // by first instruction
    std::vector<int> starts, ends;           // per instruction: span index starting/ending there, or -1
  };
  const Plan& plan(const FunctionDesc& f);
  void ensure(int group);

  const Artifact& art_;
  Backend& backend_;
  std::vector<Group> groups_;
  std::vector<int32_t> group_;    // per buffer: its group or -1
  std::vector<uint64_t> offset_;  // per buffer: offset in its group
  std::unique_ptr<DeviceMemory> slot_[2];
  uint64_t slot_bytes_ = 0;
  int content_[2] = {-1, -1};  // group held by (or being copied into) each slot
  std::unordered_map<const FunctionDesc*, Plan> plans_;
  Stats stats_;
};

}  // namespace bmsys::rt
