//===- PlanMemory.cpp - bmsys-plan-memory ---------------------------------===//
//
// Lifetimes are intervals over the straight-line body of a bmsys_rt.func: an
// alloc is live from its definition to its last use (function outputs to the
// end). Offsets are chosen in program order with a best-fit search among the
// gaps between live buffers, the classic offline approach to static tensor
// memory planning; each function's peak is the pool it needs, and the module
// records the largest.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/IR/Builders.h"

#include <map>

namespace bmsys {
#define GEN_PASS_DEF_BMSYSPLANMEMORY
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace {
int64_t alignUp(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

struct PlanMemory : bmsys::impl::BmsysPlanMemoryBase<PlanMemory> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto maxBatch = module->getAttrOfType<IntegerAttr>("bmsys_rt.max_batch");
    auto maxSeq = module->getAttrOfType<IntegerAttr>("bmsys_rt.max_seq");
    if (!maxBatch || !maxSeq) {
      module.emitError("bmsys-plan-memory: expects a module lowered by bmsys-lower-to-rt "
                       "(no bmsys_rt.max_batch / bmsys_rt.max_seq)");
      return signalPassFailure();
    }
    // At most 1 MiB: the runtime's loader allows a pool that much padding past
    // its last buffer (kMaxPoolAlignment in runtime/core/artifact.h).
    if (alignment <= 0 || (alignment & (alignment - 1)) || alignment > (int64_t(1) << 20)) {
      module.emitError() << "bmsys-plan-memory: alignment must be a power of two of at most "
                            "1048576 (1 MiB), got "
                         << static_cast<int64_t>(alignment);
      return signalPassFailure();
    }
    int64_t pool = 0;
    for (auto func : module.getOps<rt::FuncOp>())
      pool = std::max(pool, plan(func, maxBatch.getInt(), maxSeq.getInt()));
    module->setAttr("bmsys_rt.activation_bytes",
                    IntegerAttr::get(IntegerType::get(module.getContext(), 64), pool));
  }

  int64_t plan(rt::FuncOp func, int64_t maxBatch, int64_t maxSeq) {
    Block &body = func.getBody().front();
    // Re-planning starts from scratch.
    for (auto dealloc : llvm::to_vector(body.getOps<rt::DeallocOp>()))
      dealloc.erase();

    DenseMap<Operation *, int64_t> position;
    for (auto [i, op] : llvm::enumerate(body))
      position[&op] = i;

    OpBuilder b(func.getContext());
    // Frees scheduled after each position: (position, offset).
    std::multimap<int64_t, rt::AllocOp> endsAt;
    for (auto alloc : body.getOps<rt::AllocOp>()) {
      Operation *lastUser = alloc;
      bool isOutput = false;
      for (Operation *user : alloc.getBuffer().getUsers()) {
        if (position[user] > position[lastUser])
          lastUser = user;
        isOutput |= isa<rt::OutputOp>(user);
      }
      if (isOutput)
        continue; // lives to the end of the function
      endsAt.emplace(position[lastUser], alloc);
      b.setInsertionPointAfter(lastUser);
      rt::DeallocOp::create(b, alloc.getLoc(), alloc.getBuffer());
    }

    // Live buffers by offset -> end offset.
    std::map<int64_t, int64_t> live;
    int64_t peak = 0;
    for (auto [i, op] : llvm::enumerate(body)) {
      if (auto alloc = dyn_cast<rt::AllocOp>(op)) {
        int64_t bytes = rt::maxBytes(alloc.getDtype(), alloc.getShape(), maxBatch, maxSeq);
        int64_t size = alignUp(std::max<int64_t>(bytes, 1), alignment);
        // Best fit: the smallest gap that holds `size`; else the end.
        int64_t bestOffset = -1, bestGap = INT64_MAX, cursor = 0;
        for (auto [start, end] : live) {
          int64_t gap = start - cursor;
          if (gap >= size && gap < bestGap) {
            bestGap = gap;
            bestOffset = cursor;
          }
          cursor = std::max(cursor, end);
        }
        if (bestOffset < 0)
          bestOffset = cursor;
        live[bestOffset] = bestOffset + size;
        peak = std::max(peak, bestOffset + size);
        alloc.setOffsetAttr(b.getI64IntegerAttr(bestOffset));
        alloc.setBytesAttr(b.getI64IntegerAttr(bytes));
      }
      // Original positions are stable: deallocs were inserted after `position`
      // was computed, so look the op up only when it is an original one.
      auto it = position.find(&op);
      if (it == position.end())
        continue;
      auto [from, to] = endsAt.equal_range(it->second);
      for (auto e = from; e != to; ++e)
        live.erase(static_cast<int64_t>(*e->second.getOffset()));
    }
    return peak;
  }
};
} // namespace
