//===- Autodiff.cpp - bmsys-autodiff --------------------------------------===//
//
// Reverse-mode differentiation of a straight-line function. `forward` is
// cloned into `train_step`; its blocks are inlined while remembering which
// ops each held. The backward walks the forward ops in reverse, asking each
// op's DifferentiableOpInterface for its operands' gradients and summing
// gradients of values with several uses. For a checkpointed block, the
// backward first re-emits the block's ops (a recomputation from the block's
// inputs) and applies the gradient rules to those copies, so the originals
// are dead after the forward pass.
//
//===----------------------------------------------------------------------===//
#include "passes/MemoryAnalysis.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/MapVector.h"

namespace bmsys {
#define GEN_PASS_DEF_BMSYSAUTODIFF
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace {
struct InlinedBlock {
  std::string name;
  bool checkpoint = false;
  SmallVector<Operation *> ops;
};

/// Inlines every block of `func`, returning their ops; `owner` maps each op to
/// the index of the block it came from.
SmallVector<InlinedBlock> inlineBlocks(func::FuncOp func, DenseMap<Operation *, int> &owner) {
  SmallVector<InlinedBlock> blocks;
  SmallVector<BlockOp> ops;
  func.walk([&](BlockOp op) { ops.push_back(op); });
  for (BlockOp op : ops) {
    InlinedBlock info{op.getName().str(), op->hasAttr("bmsys.checkpoint"), {}};
    info.ops = inlineBlock(op);
    for (Operation *inner : info.ops)
      owner[inner] = blocks.size();
    blocks.push_back(std::move(info));
  }
  return blocks;
}

struct Autodiff : bmsys::impl::BmsysAutodiffBase<Autodiff> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    // bmsys-distill points at its joined student+teacher function.
    auto trainFunction = module->getAttrOfType<StringAttr>("bmsys.train_function");
    StringRef fnName = trainFunction ? trainFunction.getValue() : "forward";
    auto forward = module.lookupSymbol<func::FuncOp>(fnName);
    if (!forward) {
      module.emitError() << "bmsys-autodiff: no function '" << fnName << "' to differentiate";
      return signalPassFailure();
    }
    if (module.lookupSymbol("train_step")) {
      module.emitError("bmsys-autodiff: the module already has a 'train_step'");
      return signalPassFailure();
    }
    if (failed(build(module, forward)))
      signalPassFailure();
  }

  LogicalResult build(ModuleOp module, func::FuncOp forward) {
    const int logitsIndex = resultIndex(forward, "logits");
    if (logitsIndex < 0)
      return forward.emitError("bmsys-autodiff: 'forward' has no result named \"logits\"");
    if (forward.getNumArguments() != 1)
      return forward.emitError("bmsys-autodiff: 'forward' must take only the token ids");

    OpBuilder b(module.getContext());
    b.setInsertionPointAfter(forward);
    auto step = cast<func::FuncOp>(b.clone(*forward));
    step.setSymName("train_step");

    DenseMap<Operation *, int> owner;
    SmallVector<InlinedBlock> blocks = inlineBlocks(step, owner);

    Block &body = step.getBody().front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    Value ids = body.getArgument(0);
    Value logits = ret.getOperand(logitsIndex);
    SmallVector<Operation *> forwardOps;
    for (Operation &op : body.without_terminator())
      forwardOps.push_back(&op);

    b.setInsertionPoint(ret);
    Location loc = ret.getLoc();
    auto scalar = RankedTensorType::get({}, b.getF32Type());
    // Vocab-parallel logits (bmsys-tensor-parallel): the loss and its gradient
    // are normalized over the whole vocabulary across the tensor-parallel ranks.
    auto vocabShards = forward.getResultAttrOfType<IntegerAttr>(logitsIndex, "bmsys.vocab_shards");
    Value loss = CrossEntropyOp::create(b, loc, scalar, logits, ids, /*shift=*/true, vocabShards);
    bool lossScaling = module->hasAttr("bmsys.loss_scaling");
    Value seed = CrossEntropyGradOp::create(b, loc, logits.getType(), logits, ids,
                                            b.getUnitAttr(), lossScaling ? b.getUnitAttr() : UnitAttr(),
                                            vocabShards);

    DenseMap<Value, Value> grads;
    auto accumulate = [&](Value of, Value g) {
      Value &slot = grads[of];
      slot = slot ? Value(AddOp::create(b, loc, slot, g)) : g;
    };
    grads[logits] = seed;
    // Distillation terms (bmsys-distill) add to the loss and seed the student's
    // values with their gradients (the teacher's get none: it is frozen).
    for (Operation *op : forwardOps) {
      Value g;
      if (auto soft = dyn_cast<DistillSoftCEOp>(op))
        g = DistillSoftCEGradOp::create(b, loc, soft.getStudent().getType(), soft.getStudent(),
                                        soft.getTeacher(), soft.getTemperatureAttr(),
                                        soft.getScaleAttr());
      else if (auto mse = dyn_cast<DistillHiddenMSEOp>(op))
        g = DistillHiddenMSEGradOp::create(b, loc, mse.getStudent().getType(), mse.getStudent(),
                                           mse.getTeacher(), mse.getEpsAttr(), mse.getScaleAttr());
      if (!g)
        continue;
      if (lossScaling)
        return op->emitOpError("distillation with dynamic loss scaling is not supported");
      loss = AddOp::create(b, loc, loss, op->getResult(0));
      accumulate(op->getOperand(0), g);
    }
    llvm::MapVector<StringAttr, Value> paramGrads;
    SmallVector<std::optional<IRMapping>> recomputed(blocks.size());

    for (Operation *op : llvm::reverse(forwardOps)) {
      SmallVector<Value> resultGrads;
      bool any = false;
      for (Value r : op->getResults()) {
        resultGrads.push_back(grads.lookup(r));
        any |= bool(resultGrads.back());
      }
      if (!any)
        continue;
      if (auto weight = dyn_cast<WeightOp>(op)) {
        Value &slot = paramGrads[weight.getParamAttr().getAttr()];
        slot = slot ? Value(AddOp::create(b, loc, slot, resultGrads[0])) : resultGrads[0];
        continue;
      }
      auto rule = dyn_cast<DifferentiableOpInterface>(op);
      if (!rule)
        return op->emitOpError("has no gradient rule (DifferentiableOpInterface)");
      if (llvm::any_of(resultGrads, [](Value g) { return !g; }))
        return op->emitOpError("only some of its results reach the loss; not supported");

      SmallVector<Value> operands(op->getOperands()), results(op->getResults());
      auto it = owner.find(op);
      if (it != owner.end() && blocks[it->second].checkpoint) {
        std::optional<IRMapping> &map = recomputed[it->second];
        if (!map) {
          map.emplace();
          for (Operation *original : blocks[it->second].ops) {
            Operation *copy = b.clone(*original, *map);
            copy->setAttr("bmsys.recompute", b.getUnitAttr());
            // Kept through lowering, where attributes are not: the memory
            // report tells recomputed buffers from the backward's own.
            copy->setLoc(tagRecomputeLocation(copy->getLoc()));
          }
        }
        for (Value &v : operands)
          v = map->lookupOrDefault(v);
        for (Value &v : results)
          v = map->lookup(v);
      }

      SmallVector<Value> operandGrads;
      if (failed(rule.buildGradients(b, operands, results, resultGrads, operandGrads)))
        return failure();
      for (auto [operand, g] : llvm::zip(op->getOperands(), operandGrads))
        if (g)
          accumulate(operand, g);
    }

    // Markers (and optional results) in the order parameters are declared.
    SmallVector<Value> returned{loss};
    SmallVector<std::string> names{"loss"};
    for (auto param : module.getOps<ParamOp>()) {
      auto it = paramGrads.find(param.getSymNameAttr());
      if (it == paramGrads.end() || param->hasAttr("bmsys.frozen"))
        continue; // not reached by the loss, or not trained (pruning masks)
      GradOp::create(b, loc, FlatSymbolRefAttr::get(param.getSymNameAttr()), it->second);
      if (returnGrads) {
        returned.push_back(it->second);
        names.push_back(("grad." + param.getKey()).str());
      }
    }
    func::ReturnOp::create(b, loc, returned);
    ret.erase();

    step.setType(b.getFunctionType(step.getArgumentTypes(), ValueRange(returned).getTypes()));
    for (auto [i, name] : llvm::enumerate(names))
      step.setResultAttrs(i, b.getDictionaryAttr(
                                 {b.getNamedAttr("bmsys.name", b.getStringAttr(name))}));

    // Drop the forward values nothing needs any more (hidden states, ...).
    for (Operation &op : llvm::make_early_inc_range(llvm::reverse(body)))
      if (isOpTriviallyDead(&op))
        op.erase();
    return success();
  }
};
} // namespace
