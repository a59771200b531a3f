//===- MixedPrecision.cpp - bmsys-mixed-precision -------------------------===//
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace bmsys {
#define GEN_PASS_DEF_BMSYSMIXEDPRECISION
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace {

bool isF32Tensor(Type type) {
  auto t = dyn_cast<RankedTensorType>(type);
  return t && t.getElementType().isF32();
}

struct MixedPrecision : bmsys::impl::BmsysMixedPrecisionBase<MixedPrecision> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    Builder types(module.getContext());
    Type compute;
    if (dtype == "bf16")
      compute = types.getBF16Type();
    else if (dtype == "f16")
      compute = types.getF16Type();
    else if (dtype == "f32")
      compute = types.getF32Type();
    else {
      module.emitError() << "bmsys-mixed-precision: dtype must be bf16, f16 or f32, got '"
                         << dtype << "'";
      return signalPassFailure();
    }
    if (lossScaling != "auto" && lossScaling != "dynamic" && lossScaling != "none") {
      module.emitError() << "bmsys-mixed-precision: loss-scaling must be auto, dynamic or "
                            "none, got '" << lossScaling << "'";
      return signalPassFailure();
    }
    auto forward = module.lookupSymbol<func::FuncOp>("forward");
    if (!forward) {
      module.emitError("bmsys-mixed-precision: no function 'forward'");
      return signalPassFailure();
    }

    OpBuilder b(module.getContext());
    bool dynamic = lossScaling == "dynamic" || (lossScaling == "auto" && dtype == "f16");
    if (dynamic)
      module->setAttr("bmsys.loss_scaling", b.getStringAttr("dynamic"));
    if (compute.isF32())
      return; // float32 compute: only loss scaling, if asked for
    // Retype every computed float32 value (inside blocks too); parameters are
    // cast where they are read.
    forward.walk([&](Operation *op) {
      if (auto weight = dyn_cast<WeightOp>(op)) {
        b.setInsertionPointAfter(weight);
        auto cast = CastOp::create(b, weight.getLoc(), withElementType(weight.getType(), compute),
                                   weight);
        weight.getResult().replaceAllUsesExcept(cast, cast);
        return;
      }
      if (isa<CastOp>(op))
        return;
      for (Value r : op->getResults())
        if (isF32Tensor(r.getType()) && !isa<CrossEntropyOp>(op))
          r.setType(withElementType(r.getType(), compute));
      for (Region &region : op->getRegions())
        for (Block &block : region)
          for (BlockArgument arg : block.getArguments())
            if (isF32Tensor(arg.getType()))
              arg.setType(withElementType(arg.getType(), compute));
    });
    // Results go back to float32, as the signature says.
    auto ret = cast<func::ReturnOp>(forward.getBody().front().getTerminator());
    b.setInsertionPoint(ret);
    for (OpOperand &operand : ret->getOpOperands()) {
      Type want = forward.getResultTypes()[operand.getOperandNumber()];
      if (operand.get().getType() != want)
        operand.set(CastOp::create(b, ret.getLoc(), want, operand.get()));
    }
    module->setAttr("bmsys.compute_dtype", TypeAttr::get(compute));
  }
};
} // namespace
