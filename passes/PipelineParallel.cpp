//===- PipelineParallel.cpp - bmsys-pipeline-parallel ---------------------===//
//
// Cuts `forward` into `stages` pipeline stages of consecutive layers, before
// bmsys-autodiff. Blocks (layers) are split evenly: block k of L runs on stage
// k / (L / stages). Every other op runs on the latest stage among its
// operands' (the embedding, before the first block, on stage 0; the final
// norm, the output projection and the loss on the last one); a parameter runs
// where it is read. Each use of a value on a later stage goes through a
// bmsys.pp_boundary per stage crossed, whose gradient rule marks the backward
// pass the same way. Values computed from the token ids alone (positions) are
// left unmarked: every stage recomputes them (bmsys-pipeline-schedule).
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace bmsys {
#define GEN_PASS_DEF_BMSYSPIPELINEPARALLEL
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

bool bmsys::replicableAcrossStages(Operation *op) {
  if (isa<WeightOp>(op) || op->getNumRegions() != 0 || !isPure(op) || op->getNumOperands() == 0)
    return false;
  return llvm::all_of(op->getOperands(), [](Value v) { return isa<BlockArgument>(v); });
}

namespace {

struct PipelineParallel : bmsys::impl::BmsysPipelineParallelBase<PipelineParallel> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (stages < 1 || microBatches < 1) {
      module.emitError() << "bmsys-pipeline-parallel: stages and micro-batches must be positive, "
                            "got stages="
                         << static_cast<int64_t>(stages)
                         << " micro-batches=" << static_cast<int64_t>(microBatches);
      return signalPassFailure();
    }
    if (module.lookupSymbol("train_step")) {
      module.emitError("bmsys-pipeline-parallel: run it before bmsys-autodiff (the module already "
                       "has a 'train_step')");
      return signalPassFailure();
    }
    if (module->hasAttr("bmsys.tensor_parallel")) {
      module.emitError("bmsys-pipeline-parallel: tensor parallelism (bmsys-tensor-parallel) and "
                       "pipeline parallelism together are not supported");
      return signalPassFailure();
    }
    auto forward = module.lookupSymbol<func::FuncOp>("forward");
    if (!forward) {
      module.emitError("bmsys-pipeline-parallel: no function 'forward'");
      return signalPassFailure();
    }
    if (failed(rewrite(module, forward)))
      return signalPassFailure();
    auto i64 = IntegerType::get(&getContext(), 64);
    module->setAttr("bmsys.pipeline_stages", IntegerAttr::get(i64, stages));
    module->setAttr("bmsys.pipeline_micro_batches", IntegerAttr::get(i64, microBatches));
  }

  LogicalResult rewrite(ModuleOp module, func::FuncOp forward) {
    Block &entry = forward.getBody().front();
    SmallVector<BlockOp> blocks(entry.getOps<BlockOp>());
    const int64_t S = stages, L = blocks.size();
    if (L == 0)
      return forward.emitError("bmsys-pipeline-parallel: 'forward' has no bmsys.block (layers)");
    if (S > L || L % S != 0)
      return forward.emitError() << "bmsys-pipeline-parallel: stages=" << S
                                 << " does not divide the " << L
                                 << " layers (bmsys.block) of 'forward' evenly";
    OpBuilder b(module.getContext());
    DenseMap<Operation *, int64_t> stageOf;
    for (auto [k, block] : llvm::enumerate(blocks)) {
      int64_t s = static_cast<int64_t>(k) / (L / S);
      stageOf[block] = s;
      block->setAttr("bmsys.pp_stage", b.getI64IntegerAttr(s));
    }

    // Every other op: the latest stage among its operands; before the first
    // block at least stage 0 (nothing to wait for), after it at least the
    // stage of the block before it.
    int64_t floor = 0;
    for (Operation &op : entry.without_terminator()) {
      if (auto block = dyn_cast<BlockOp>(op)) {
        floor = stageOf[block];
        continue;
      }
      if (isa<WeightOp>(op) || replicableAcrossStages(&op))
        continue;
      int64_t s = floor;
      for (Value v : op.getOperands())
        if (Operation *def = v.getDefiningOp(); def && stageOf.count(def))
          s = std::max(s, stageOf[def]);
      stageOf[&op] = s;
    }

    // Parameters (and the weights outside blocks) run where they are read.
    DenseMap<StringAttr, int64_t> paramStage;
    auto note = [&](WeightOp w, int64_t s) -> LogicalResult {
      auto [it, inserted] = paramStage.try_emplace(w.getParamAttr().getAttr(), s);
      if (!inserted && it->second != s)
        return w.emitOpError() << "bmsys-pipeline-parallel: parameter '" << w.getParam()
                               << "' is read on stages " << it->second << " and " << s
                               << " (tied weights across stages are not supported)";
      return success();
    };
    for (Operation &op : entry.without_terminator()) {
      if (auto block = dyn_cast<BlockOp>(op)) {
        WalkResult r = block.walk([&](WeightOp w) {
          return failed(note(w, stageOf[block])) ? WalkResult::interrupt() : WalkResult::advance();
        });
        if (r.wasInterrupted())
          return failure();
      } else if (auto w = dyn_cast<WeightOp>(op)) {
        for (Operation *user : w->getUsers()) {
          if (!stageOf.count(user))
            return w.emitOpError("bmsys-pipeline-parallel: a weight read by an op of no stage");
          if (failed(note(w, stageOf[user])))
            return failure();
        }
        if (!w->use_empty())
          stageOf[w] = paramStage.lookup(w.getParamAttr().getAttr());
      }
    }
    for (auto param : module.getOps<ParamOp>())
      if (auto it = paramStage.find(param.getSymNameAttr()); it != paramStage.end())
        param->setAttr("pp_stage", b.getI64IntegerAttr(it->second));

    // Boundaries: one chain of bmsys.pp_boundary per value and later stage.
    int64_t channel = 0;
    DenseMap<std::pair<Value, int64_t>, Value> crossed;
    auto on = [&](Value v, int64_t from, int64_t to, Operation *before) {
      Value cur = v;
      for (int64_t s = from; s < to; ++s) {
        Value &slot = crossed[{v, s + 1}];
        if (!slot) {
          b.setInsertionPoint(before);
          slot = PpBoundaryOp::create(b, v.getLoc(), cur, b.getI64IntegerAttr(s),
                                      b.getI64IntegerAttr(s + 1), b.getI64IntegerAttr(channel++));
        }
        cur = slot;
      }
      return cur;
    };
    for (Operation &op : llvm::make_early_inc_range(entry)) {
      auto user = stageOf.find(&op);
      int64_t to = user != stageOf.end() ? user->second
                   : isa<func::ReturnOp>(op) ? S - 1
                                              : -1;
      if (to < 0)
        continue;
      for (OpOperand &use : op.getOpOperands()) {
        Operation *def = use.get().getDefiningOp();
        if (!def || !stageOf.count(def) || stageOf[def] >= to)
          continue;
        use.set(on(use.get(), stageOf[def], to, &op));
      }
    }
    return success();
  }
};
} // namespace
