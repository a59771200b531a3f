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
    if (prefetch < 0) {
      module.emitError() << "bmsys-zero: prefetch must be >= 0, got "
                         << static_cast<int64_t>(prefetch);
      return signalPassFailure();
    }
    if (stage < 0 || stage > 3 || ranks < 1) {
      module.emitError() << "bmsys-zero: stage must be 0..3 and ranks positive, got stage "
                         << static_cast<int64_t>(stage) << ", ranks "
                         << static_cast<int64_t>(ranks);
      return signalPassFailure();
    }
    // Pipeline parallelism (bmsys-pipeline-schedule): each stage's function is a
    // training step of its own, over the data-parallel ranks of that stage.
    SmallVector<func::FuncOp> steps;
    for (auto func : module.getOps<func::FuncOp>())
      if (func.getSymName() == "train_step" || func->hasAttr("bmsys.pipeline_stage"))
        steps.push_back(func);
    if (steps.empty()) {
      module.emitError("bmsys-zero: no 'train_step' (run bmsys-autodiff and bmsys-optimizer first)");
      return signalPassFailure();
    }
    if (stage == 3 && module->hasAttr("bmsys.pipeline_stages")) {
      module.emitError("bmsys-zero: stage 3 with pipeline parallelism is not supported (use "
                       "stage 1 or 2)");
      return signalPassFailure();
    }
    for (func::FuncOp step : steps)
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
      return step.emitError() << "bmsys-zero: '" << step.getSymName() << "' updates no parameter";
    for (Operation *u : updates)
      if (u->hasAttr("offload"))
        return u->emitOpError("is offloaded: run bmsys-zero before bmsys-offload");
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
    if (stage == 3 && prefetch > 0)
      prefetchGathers(step);

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
          // Mixed precision: when every use casts the parameter to one compute type
          // (bmsys-mixed-precision), the shard is cast and gathered in that type
          // (half the bytes of float32) and the casts go away. Casting commutes with
          // gathering, and the zero padding stays zero.
          Type castTo;
          for (OpOperand *use : uses) {
            auto c = dyn_cast<CastOp>(use->getOwner());
            Type t = c ? cast<RankedTensorType>(c.getType()).getElementType() : Type();
            if (!c || (castTo && t != castTo)) {
              castTo = Type();
              break;
            }
            castTo = t;
          }
          if (castTo) {
            auto shardT = cast<RankedTensorType>(shard.getType());
            Value cshard = CastOp::create(
                b, weight.getLoc(), RankedTensorType::get(shardT.getShape(), castTo), shard);
            Value full = AllGatherOp::create(
                b, weight.getLoc(), RankedTensorType::get(type.getShape(), castTo), cshard, ranksAttr);
            SmallVector<Operation *> casts;
            for (OpOperand *use : uses)
              casts.push_back(use->getOwner());
            for (Operation *c : casts) {
              c->getResult(0).replaceAllUsesWith(full);
              c->erase();
            }
            return;
          }
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

  /// ZeRO-3 prefetch: the k-th all-gather of train_step (with its weight_shard) moves
  /// up to just before the first use of the (k - prefetch)-th gathered parameter, so
  /// it runs on the collective stream while that parameter's consumers compute, and
  /// at most `prefetch` gathered parameters wait ahead of their use. Gathers only
  /// move earlier; their result lives longer, which the memory plan then accounts for.
  void prefetchGathers(func::FuncOp step) {
    // The gathers of parameters: all_gather(weight_shard) or, with mixed precision,
    // all_gather(cast(weight_shard)); the producers move with the gather.
    auto producers = [](AllGatherOp g) {
      SmallVector<Operation *> chain;
      Operation *p = g.getShard().getDefiningOp();
      if (auto c = dyn_cast_or_null<CastOp>(p)) {
        chain.push_back(c);
        p = c.getX().getDefiningOp();
      }
      if (!isa_and_nonnull<WeightShardOp>(p))
        return SmallVector<Operation *>();
      chain.insert(chain.begin(), p);
      return chain;
    };
    SmallVector<AllGatherOp> gathers;
    step.walk([&](AllGatherOp g) {
      if (!producers(g).empty())
        gathers.push_back(g);
    });
    // First uses are taken before anything moves (moving only gathers keeps them).
    Block *body = &step.getBody().front();
    SmallVector<Operation *> firstUse;
    for (AllGatherOp g : gathers) {
      Operation *first = nullptr;
      for (Operation *user : g->getUsers()) {
        Operation *top = body->findAncestorOpInBlock(*user);
        if (top && (!first || top->isBeforeInBlock(first)))
          first = top;
      }
      firstUse.push_back(first);
    }
    for (size_t k = static_cast<size_t>(prefetch); k < gathers.size(); ++k) {
      Operation *target = firstUse[k - static_cast<size_t>(prefetch)];
      AllGatherOp g = gathers[k];
      if (!target || g->getBlock() != body || !target->isBeforeInBlock(g))
        continue;
      for (Operation *p : producers(g))
        p->moveBefore(target);
      g->moveBefore(target);
    }
  }
};
} // namespace
