//===- PipelineSchedule.cpp - bmsys-pipeline-schedule ---------------------===//
//
// Splits the training step of a pipelined module (bmsys-pipeline-parallel,
// bmsys-autodiff, bmsys-optimizer) into one function per stage,
// `train_step.stage<s>`, that runs the stage's part of the forward (F) and
// backward (B) pass of each of M micro-batches in the order of the 1F1B
// schedule (PipeDream-flush, as Megatron-LM runs it): stage s first runs
// min(S - 1 - s, M) forwards, then alternates one forward and one backward,
// then runs the remaining backwards. Each pp_boundary becomes a pp_send on the
// stage it leaves and a pp_recv on the stage it enters, per micro-batch.
//
// Which stage runs an op: the boundaries and the parameters pin it. Ops joined
// by a value that does not cross a boundary run on the same stage (a union of
// def-use edges, each set pinned by the parameters it reads or updates and the
// boundaries it feeds or reads). An op is in B when it depends on the loss
// seed (cross_entropy_grad) or on a gradient received from the next stage, or
// is a checkpointed block's recomputation (bmsys.recompute, from bmsys-autodiff):
// it runs in its micro-batch's backward, just before the gradients that read
// it, so a micro-batch in flight keeps only the checkpointed blocks' inputs.
//
// Gradient accumulation: each parameter's gradient is summed over the
// micro-batches as their backward passes complete and divided by M
// (bmsys.pp_mean), the loss likewise; the global norm sums its squares over
// the stages (`pp_stages`), and the last stage broadcasts the loss.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/EquivalenceClasses.h"

namespace bmsys {
#define GEN_PASS_DEF_BMSYSPIPELINESCHEDULE
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace {

/// The 1F1B order of stage `s` of `S` over `M` micro-batches: (backward?, m).
SmallVector<std::pair<bool, int64_t>> schedule(int64_t s, int64_t S, int64_t M) {
  SmallVector<std::pair<bool, int64_t>> order;
  int64_t warmup = std::min(S - 1 - s, M), f = 0, bwd = 0;
  for (; f < warmup; ++f)
    order.push_back({false, f});
  for (; f < M; ++f, ++bwd) {
    order.push_back({false, f});
    order.push_back({true, bwd});
  }
  for (; bwd < M; ++bwd)
    order.push_back({true, bwd});
  return order;
}

struct PipelineSchedule : bmsys::impl::BmsysPipelineScheduleBase<PipelineSchedule> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto stagesAttr = module->getAttrOfType<IntegerAttr>("bmsys.pipeline_stages");
    auto mbAttr = module->getAttrOfType<IntegerAttr>("bmsys.pipeline_micro_batches");
    if (!stagesAttr || !mbAttr) {
      module.emitError("bmsys-pipeline-schedule: the module is not pipelined (run "
                       "bmsys-pipeline-parallel before bmsys-autodiff)");
      return signalPassFailure();
    }
    auto step = module.lookupSymbol<func::FuncOp>("train_step");
    if (!step) {
      module.emitError("bmsys-pipeline-schedule: no 'train_step' (run bmsys-autodiff and "
                       "bmsys-optimizer first)");
      return signalPassFailure();
    }
    if (failed(rewrite(module, step, stagesAttr.getInt(), mbAttr.getInt())))
      return signalPassFailure();
  }

  LogicalResult rewrite(ModuleOp module, func::FuncOp step, int64_t S, int64_t M) {
    Block &body = step.getBody().front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    if (ret.getNumOperands() != 2)
      return step.emitError("bmsys-pipeline-schedule: 'train_step' must return only the loss and "
                            "the gradient norm (not the gradients)");
    if (step.getNumArguments() != 1)
      return step.emitError("bmsys-pipeline-schedule: 'train_step' must take only the token ids");
    SymbolTable symbols(module);
    SmallVector<Operation *> updates;
    GlobalNormOp norm;
    for (Operation &op : body.without_terminator()) {
      if (isa<AdamWOp, SGDOp>(op))
        updates.push_back(&op);
      else if (auto n = dyn_cast<GlobalNormOp>(op))
        norm = n;
    }
    if (updates.empty() || !norm || ret.getOperand(1) != norm.getResult())
      return step.emitError("bmsys-pipeline-schedule: 'train_step' must end with one "
                            "bmsys.global_norm and the updates (run bmsys-optimizer first)");
    auto paramStage = [&](FlatSymbolRefAttr ref) -> int64_t {
      auto param = symbols.lookup<ParamOp>(ref.getValue());
      auto s = param ? param->getAttrOfType<IntegerAttr>("pp_stage") : IntegerAttr();
      return s ? s.getInt() : -1;
    };

    // --- Stages: sets of ops joined by values, pinned by parameters and boundaries.
    llvm::EquivalenceClasses<Operation *> sets;
    DenseMap<Operation *, int64_t> pinned; // leader -> stage, filled after the union
    SmallVector<std::pair<Operation *, int64_t>> pins;
    auto special = [&](Operation *op) {
      return isa<PpBoundaryOp, GlobalNormOp, AdamWOp, SGDOp, func::ReturnOp>(op) || replicableAcrossStages(op);
    };
    for (Operation &op : body) {
      if (special(&op))
        continue;
      sets.insert(&op);
      for (Value v : op.getOperands())
        if (Operation *def = v.getDefiningOp(); def && !special(def))
          sets.unionSets(&op, def);
      if (auto w = dyn_cast<WeightOp>(op)) {
        int64_t s = paramStage(w.getParamAttr());
        if (s < 0)
          return w.emitOpError() << "bmsys-pipeline-schedule: parameter '" << w.getParam()
                                 << "' has no stage (pp_stage)";
        pins.push_back({&op, s});
      }
    }
    for (Operation &op : body) {
      if (auto bnd = dyn_cast<PpBoundaryOp>(op)) {
        if (Operation *def = bnd.getX().getDefiningOp(); def && !special(def))
          pins.push_back({def, bnd.getFrom()});
        for (Operation *user : bnd->getUsers())
          if (!special(user))
            pins.push_back({user, bnd.getTo()});
      } else if (isa<AdamWOp, SGDOp>(op)) {
        if (Operation *def = op.getOperand(0).getDefiningOp(); def && !special(def))
          pins.push_back({def, paramStage(op.getAttrOfType<FlatSymbolRefAttr>("param"))});
      }
    }
    if (Operation *def = ret.getOperand(0).getDefiningOp(); def && !special(def))
      pins.push_back({def, S - 1}); // the loss
    for (auto [op, s] : pins) {
      Operation *leader = sets.getLeaderValue(op);
      auto [it, inserted] = pinned.try_emplace(leader, s);
      if (!inserted && it->second != s)
        return op->emitOpError() << "bmsys-pipeline-schedule: this op would run on stages "
                                 << it->second << " and " << s
                                 << " (a value crosses stages without a bmsys.pp_boundary)";
    }
    DenseMap<Operation *, int64_t> stageOf;
    for (Operation &op : body) {
      if (special(&op))
        continue;
      auto it = pinned.find(sets.getLeaderValue(&op));
      if (it == pinned.end())
        return op.emitOpError("bmsys-pipeline-schedule: cannot tell which stage runs this op (it "
                              "reads no parameter and no boundary)");
      stageOf[&op] = it->second;
    }

    // --- Phases: B depends on the loss seed or on a gradient from the next stage,
    // or recomputes a checkpointed block (in F it would keep every activation of
    // every micro-batch in flight alive, and run twice for nothing).
    DenseSet<Operation *> backward;
    for (Operation &op : body) {
      bool b = isa<CrossEntropyGradOp>(op) || op.hasAttr("bmsys.recompute");
      if (auto bnd = dyn_cast<PpBoundaryOp>(op))
        b = bnd.getFrom() > bnd.getTo();
      for (Value v : op.getOperands())
        if (Operation *def = v.getDefiningOp(); def && backward.contains(def))
          b = true;
      if (b && !isa<GlobalNormOp, AdamWOp, SGDOp, func::ReturnOp>(op))
        backward.insert(&op);
    }

    // --- One function per stage.
    OpBuilder b(module.getContext());
    auto idsType = step.getArgumentTypes()[0];
    SmallVector<Type> argTypes(M, idsType);
    Value loss = ret.getOperand(0);
    for (int64_t s = 0; s < S; ++s) {
      b.setInsertionPoint(step);
      auto func = func::FuncOp::create(b, step.getLoc(), ("train_step.stage" + Twine(s)).str(),
                                       b.getFunctionType(argTypes, step.getResultTypes()));
      func->setAttr("bmsys.pipeline_stage", b.getI64IntegerAttr(s));
      for (int64_t m = 0; m < M; ++m)
        func.setArgAttrs(m, b.getDictionaryAttr({b.getNamedAttr(
                                "bmsys.name", b.getStringAttr("input_ids.mb" + Twine(m)))}));
      for (unsigned i = 0; i < step.getNumResults(); ++i)
        func.setResultAttrs(i, step.getResultAttrDict(i));
      Block *entry = func.addEntryBlock();
      b.setInsertionPointToEnd(entry);

      // Weights once, shared by every micro-batch.
      IRMapping weights;
      for (Operation &op : body)
        if (isa<WeightOp>(op) && stageOf.lookup(&op) == s)
          b.clone(op, weights);

      SmallVector<IRMapping> maps(M, weights);
      for (int64_t m = 0; m < M; ++m)
        maps[m].map(body.getArgument(0), entry->getArgument(m));
      DenseMap<Value, Value> accumulated; // gradient (or loss) -> running sum
      auto accumulate = [&](Value of, Value v) {
        Value &slot = accumulated[of];
        slot = slot ? Value(AddOp::create(b, v.getLoc(), slot, v)) : v;
      };

      for (auto [isBackward, m] : schedule(s, S, M)) {
        IRMapping &map = maps[m];
        for (Operation &op : body.without_terminator()) {
          if (isa<WeightOp, GlobalNormOp, AdamWOp, SGDOp>(op) || backward.contains(&op) != isBackward)
            continue;
          if (auto bnd = dyn_cast<PpBoundaryOp>(op)) {
            if (static_cast<int64_t>(bnd.getFrom()) == s)
              PpSendOp::create(b, bnd.getLoc(), map.lookup(bnd.getX()), bnd.getToAttr(),
                               b.getI64IntegerAttr(m), bnd.getChannelAttr());
            else if (static_cast<int64_t>(bnd.getTo()) == s)
              map.map(bnd.getResult(),
                      PpRecvOp::create(b, bnd.getLoc(), bnd.getType(), bnd.getFromAttr(),
                                       b.getI64IntegerAttr(m), bnd.getChannelAttr()));
            continue;
          }
          if (replicableAcrossStages(&op)) {
            if (!map.contains(op.getResult(0)))
              b.clone(op, map);
            continue;
          }
          if (stageOf.lookup(&op) != s)
            continue;
          // Replicated values this op reads and that this micro-batch has not made yet.
          for (Value v : op.getOperands())
            if (Operation *def = v.getDefiningOp(); def && replicableAcrossStages(def) && !map.contains(v))
              b.clone(*def, map);
          b.clone(op, map);
        }
        // Gradient accumulation, as each micro-batch's backward completes.
        if (isBackward) {
          for (Operation *u : updates)
            if (paramStage(u->getAttrOfType<FlatSymbolRefAttr>("param")) == s)
              accumulate(u->getOperand(0), map.lookup(u->getOperand(0)));
        } else if (s == S - 1) {
          accumulate(loss, map.lookup(loss));
        }
      }

      // Means, the global norm over every stage, the updates, the loss.
      IRMapping tail;
      SmallVector<Value> grads;
      DenseMap<Value, Value> means;
      auto mb = b.getI64IntegerAttr(M);
      for (Operation *u : updates) {
        if (paramStage(u->getAttrOfType<FlatSymbolRefAttr>("param")) != s)
          continue;
        Value g = u->getOperand(0);
        Value &mean = means[g];
        if (!mean) {
          mean = PpMeanOp::create(b, g.getLoc(), accumulated.lookup(g), mb);
          grads.push_back(mean);
        }
        tail.map(g, mean);
      }
      auto newNorm = cast<GlobalNormOp>(b.clone(*norm));
      newNorm->setOperands(grads);
      newNorm.setPpStagesAttr(b.getI64IntegerAttr(S));
      tail.map(norm.getResult(), newNorm.getResult());
      for (Operation *u : updates)
        if (paramStage(u->getAttrOfType<FlatSymbolRefAttr>("param")) == s)
          b.clone(*u, tail);
      Value stageLoss;
      if (s == S - 1)
        stageLoss = PpMeanOp::create(b, loss.getLoc(), accumulated.lookup(loss), mb);
      Value all = PpBroadcastOp::create(b, ret.getLoc(), loss.getType(), stageLoss,
                                        b.getI64IntegerAttr(S - 1));
      func::ReturnOp::create(b, ret.getLoc(), ValueRange{all, newNorm.getResult()});

      // Replicated values a micro-batch made but no op of this stage read.
      for (Operation &op : llvm::make_early_inc_range(llvm::reverse(*entry)))
        if (isOpTriviallyDead(&op))
          op.erase();
    }
    step.erase();
    return success();
  }
};
} // namespace
