//===- PlanMemory.cpp - bmsys-plan-memory ---------------------------------===//
//
// Lifetimes are intervals over the straight-line body of a bmsys_rt.func: an
// alloc is live from its definition to its last use (function outputs to the
// end). Offsets are chosen in program order with a best-fit search among the
// gaps between live buffers, the classic offline approach to static tensor
// memory planning; each function's peak is the pool it needs, and the module
// records the largest.
//
// Pipeline parallelism: a rank runs only its stage's function (train_step.stage<s>),
// so buffers of different stages never share a rank. Each stage gets pools of its
// own: its activation pool is its functions' largest peak, and its state pool
// holds only the states its function references, laid out from offset 0 (so the
// stages' offsets overlap). States of no stage's function (the KV cache of
// `forward`, which a pipelined artifact does not run) are in no stage's pool. The
// module-wide sizes stay the largest of all, which every offset fits.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringMap.h"

#include <map>
#include <optional>

namespace bmsys {
#define GEN_PASS_DEF_BMSYSPLANMEMORY
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace {
int64_t alignUp(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

// The state pool's alignment, as bmsys-lower-to-rt lays the states out.
constexpr int64_t kStateAlignment = 256;

bool onHost(Operation *op) {
  auto p = op->getAttrOfType<StringAttr>("placement");
  return p && p.getValue() == "host";
}

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
    auto stagesAttr = module->getAttrOfType<IntegerAttr>("bmsys_rt.pipeline_stages");
    const int64_t stages = stagesAttr ? stagesAttr.getInt() : 0;
    int64_t pool = 0;
    SmallVector<int64_t> stagePools(std::max<int64_t>(stages, 0), 0);
    for (auto func : module.getOps<rt::FuncOp>()) {
      int64_t peak = plan(func, maxBatch.getInt(), maxSeq.getInt());
      pool = std::max(pool, peak);
      if (std::optional<int64_t> s = stageOf(func); s && stages > 1) {
        if (*s < 0 || *s >= stages) {
          func.emitError() << "bmsys-plan-memory: pipeline stage " << *s << " outside the module's "
                           << stages << " stages (bmsys_rt.pipeline_stages)";
          return signalPassFailure();
        }
        stagePools[*s] = std::max(stagePools[*s], peak);
      }
    }
    module->setAttr("bmsys_rt.activation_bytes",
                    IntegerAttr::get(IntegerType::get(module.getContext(), 64), pool));
    if (stages > 1) {
      if (failed(planStageStates(module, stages)))
        return signalPassFailure();
      module->setAttr("bmsys_rt.stage_activation_bytes",
                      DenseI64ArrayAttr::get(module.getContext(), stagePools));
    }
  }

  static std::optional<int64_t> stageOf(rt::FuncOp func) {
    if (auto s = func->getAttrOfType<IntegerAttr>("bmsys_rt.pipeline_stage"))
      return s.getInt();
    return std::nullopt;
  }

  /// Pipeline parallelism: each state goes to the pool of the stage whose function
  /// references it (`pp_stage` on the bmsys_rt.state), each stage's laid out from
  /// 0 in declaration order; `bmsys_rt.stage_state_bytes` records the stages'
  /// sizes and `bmsys_rt.state_bytes` the largest extent of any layout.
  LogicalResult planStageStates(ModuleOp module, int64_t stages) {
    llvm::StringMap<int64_t> stageOfState;
    WalkResult walk = module.walk([&](rt::StateRefOp ref) {
      auto func = ref->getParentOfType<rt::FuncOp>();
      std::optional<int64_t> s = func ? stageOf(func) : std::nullopt;
      if (!s)
        return WalkResult::advance();
      auto [it, inserted] = stageOfState.try_emplace(ref.getState(), *s);
      if (!inserted && it->second != *s) {
        ref.emitError() << "bmsys-plan-memory: state '" << ref.getState()
                        << "' is used by pipeline stages " << it->second << " and " << *s
                        << "; a state belongs to one stage's ranks";
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return failure();
    OpBuilder b(module.getContext());
    // Next free offset of each stage's pool; index `stages`: states of no stage.
    SmallVector<int64_t> end(stages + 1, 0);
    int64_t whole = 0;
    for (auto state : module.getOps<rt::StateOp>()) {
      auto it = stageOfState.find(state.getSymName());
      int64_t s = it == stageOfState.end() ? stages : it->second;
      if (s < stages)
        state->setAttr("pp_stage", b.getI64IntegerAttr(s));
      else
        state->removeAttr("pp_stage");
      if (onHost(state))
        continue; // bmsys-offload: memory of its own, not in a pool
      state.setOffset(end[s]);
      end[s] = alignUp(end[s] + state.getBytes(), kStateAlignment);
      whole = std::max(whole, end[s]);
    }
    module->setAttr("bmsys_rt.state_bytes", b.getI64IntegerAttr(whole));
    module->setAttr("bmsys_rt.stage_state_bytes",
                    b.getDenseI64ArrayAttr(ArrayRef<int64_t>(end).take_front(stages)));
    return success();
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
