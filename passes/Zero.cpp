//===- Zero.cpp - bmsys-zero ----------------------------------------------===//
//
// Rewrites a training step (after bmsys-optimizer) for data parallelism. The
// updates (bmsys.adamw / bmsys.sgd) name each trained parameter and its
// gradient; everything this pass inserts is placed relative to those values,
// so the communication of a gradient can start as soon as it exists.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace bmsys {
#define GEN_PASS_DEF_BMSYSZERO
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace {
RankedTensorType shardType(Type full, int64_t ranks) {
  auto t = cast<RankedTensorType>(full);
  return RankedTensorType::get({(t.getNumElements() + ranks - 1) / ranks}, t.getElementType());
}

struct Zero : bmsys::impl::BmsysZeroBase<Zero> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (stage < 0 || stage > 3 || ranks < 1) {
      module.emitError() << "bmsys-zero: stage must be 0..3 and ranks positive, got stage "
                         << static_cast<int64_t>(stage) << ", ranks "
                         << static_cast<int64_t>(ranks);
      return signalPassFailure();
    }
    auto step = module.lookupSymbol<func::FuncOp>("train_step");
    if (!step) {
      module.emitError("bmsys-zero: no 'train_step' (run bmsys-autodiff and bmsys-optimizer first)");
      return signalPassFailure();
    }
    if (failed(rewrite(module, step)))
      return signalPassFailure();
    module->setAttr("bmsys.data_parallel",
                    IntegerAttr::get(IntegerType::get(&getContext(), 64), ranks));
  }

  LogicalResult rewrite(ModuleOp module, func::FuncOp step) {
    OpBuilder b(module.getContext());
    SymbolTable symbols(module);
    SmallVector<Operation *> updates;
    step.walk([&](Operation *op) {
      if (isa<AdamWOp, SGDOp>(op))
        updates.push_back(op);
    });
    if (updates.empty())
      return step.emitError("bmsys-zero: 'train_step' updates no parameter");
    auto norm = updates.front()->getOperand(1).getDefiningOp<GlobalNormOp>();
    if (!norm)
      return step.emitError("bmsys-zero: the updates must share one bmsys.global_norm");
    IntegerAttr ranksAttr = b.getI64IntegerAttr(ranks);
    StringAttr mean = b.getStringAttr("mean");

    // Gradients: averaged (stage 0) or reduce-scattered (stages 1-3), right
    // after they are computed (stages 0, 2, 3) or at the end (stage 1).
    DenseMap<Value, Value> reduced;
    for (Operation *update : updates) {
      Value grad = update->getOperand(0);
      if (reduced.count(grad))
        continue;
      if (stage == 1)
        b.setInsertionPoint(norm);
      else
        b.setInsertionPointAfterValue(grad);
      Location loc = grad.getLoc();
      Value r = stage == 0
                    ? Value(AllReduceOp::create(b, loc, grad.getType(), grad, ranksAttr, mean))
                    : Value(ReduceScatterOp::create(b, loc, shardType(grad.getType(), ranks),
                                                    grad, ranksAttr, mean));
      reduced[grad] = r;
    }
    for (OpOperand &operand : norm->getOpOperands())
      operand.set(reduced.lookup(operand.get()));
    if (stage > 0)
      norm.setRanksAttr(ranksAttr);

    for (Operation *update : updates) {
      update->setOperand(0, reduced.lookup(update->getOperand(0)));
      if (stage == 0)
        continue;
      update->setAttr("zero_ranks", ranksAttr);
      auto param = update->getAttrOfType<FlatSymbolRefAttr>("param");
      for (Attribute s : update->getAttrOfType<ArrayAttr>("state")) {
        auto state = symbols.lookup<OptimizerStateOp>(cast<FlatSymbolRefAttr>(s).getValue());
        state.setType(shardType(state.getType(), ranks));
        state->setAttr("bmsys.full_type",
                      TypeAttr::get(symbols.lookup<ParamOp>(param.getValue()).getType()));
      }
      if (stage == 3) {
        update->setAttr("param_sharded", b.getUnitAttr());
      } else {
        b.setInsertionPointAfter(update);
        SyncParamOp::create(b, update->getLoc(), param, ranksAttr);
      }
    }

    if (stage == 3 && failed(shardParameters(module, step, b)))
      return failure();

    // The reported loss is the mean over the ranks.
    auto ret = cast<func::ReturnOp>(step.getBody().front().getTerminator());
    b.setInsertionPoint(ret);
    Value loss = ret.getOperand(0);
    ret.setOperand(0, AllReduceOp::create(b, ret.getLoc(), loss.getType(), loss, ranksAttr, mean));
    return success();
  }

  /// ZeRO-3: parameters are stored as shards; each read gathers them. Reads by
  /// the backward pass (after the seed, bmsys.cross_entropy_grad) get their own
  /// gather, so the forward's gathered copy dies within the forward pass.
  LogicalResult shardParameters(ModuleOp module, func::FuncOp step, OpBuilder &b) {
    IntegerAttr ranksAttr = b.getI64IntegerAttr(ranks);
    for (auto param : module.getOps<ParamOp>())
      param->setAttr("zero_shards", ranksAttr);
    Operation *seed = nullptr;
    step.walk([&](CrossEntropyGradOp op) { seed = op; });
    if (!seed)
      return step.emitError("bmsys-zero: stage 3 needs the backward seed bmsys.cross_entropy_grad");

    // Other functions (forward, for generation) gather every parameter once.
    for (auto func : module.getOps<func::FuncOp>()) {
      // Walk, not getOps: in `forward` the weights still sit inside blocks.
      SmallVector<WeightOp> weights;
      func.walk([&](WeightOp w) { weights.push_back(w); });
      for (WeightOp weight : weights) {
        auto type = cast<RankedTensorType>(weight.getType());
        SmallVector<OpOperand *> forwardUses, backwardUses;
        for (OpOperand &use : weight->getUses()) {
          bool backward = func == step && use.getOwner()->getBlock() == seed->getBlock() &&
                          seed->isBeforeInBlock(use.getOwner());
          (backward ? backwardUses : forwardUses).push_back(&use);
        }
        auto gather = [&](ArrayRef<OpOperand *> uses, Operation *before) {
          if (uses.empty())
            return;
          b.setInsertionPoint(before);
          Value shard = WeightShardOp::create(b, weight.getLoc(), shardType(type, ranks),
                                              weight.getParamAttr());
          Value full = AllGatherOp::create(b, weight.getLoc(), type, shard, ranksAttr);
          for (OpOperand *use : uses)
            use->set(full);
        };
        gather(forwardUses, weight);
        if (!backwardUses.empty()) {
          Operation *first = backwardUses.front()->getOwner();
          for (OpOperand *use : backwardUses)
            if (use->getOwner()->isBeforeInBlock(first))
              first = use->getOwner();
          gather(backwardUses, first);
        }
        weight.erase();
      }
    }
    return success();
  }
};
} // namespace
