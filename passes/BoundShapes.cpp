//===- BoundShapes.cpp - bmsys-bound-shapes -------------------------------===//
#include "passes/Passes.h"

#include "mlir/IR/Builders.h"

namespace bmsys {
#define GEN_PASS_DEF_BMSYSBOUNDSHAPES
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;

namespace {
struct BoundShapes : bmsys::impl::BmsysBoundShapesBase<BoundShapes> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    int64_t seq = maxSeq;
    if (seq == 0) {
      auto positions = module->getAttrOfType<IntegerAttr>("bmsys.max_positions");
      if (!positions) {
        module.emitError("bmsys-bound-shapes: max-seq=0 needs the module attribute "
                         "bmsys.max_positions; give max-seq explicitly");
        return signalPassFailure();
      }
      seq = positions.getInt();
    }
    if (maxBatch <= 0 || seq <= 0) {
      module.emitError() << "bmsys-bound-shapes: max-batch (" << static_cast<int64_t>(maxBatch) << ") and max-seq ("
                         << seq << ") must be positive";
      return signalPassFailure();
    }
    Builder b(module.getContext());
    module->setAttr("bmsys.max_batch", b.getI64IntegerAttr(maxBatch));
    module->setAttr("bmsys.max_seq", b.getI64IntegerAttr(seq));
  }
};
} // namespace
