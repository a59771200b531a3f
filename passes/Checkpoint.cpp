//===- Checkpoint.cpp - bmsys-checkpoint ----------------------------------===//
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace bmsys {
#define GEN_PASS_DEF_BMSYSCHECKPOINT
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace {
struct Checkpoint : bmsys::impl::BmsysCheckpointBase<Checkpoint> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (policy != "none" && policy != "every" && policy != "every-k") {
      module.emitError() << "bmsys-checkpoint: policy must be none, every or every-k, got '"
                         << policy << "'";
      return signalPassFailure();
    }
    if (policy == "every-k" && k <= 0) {
      module.emitError() << "bmsys-checkpoint: k must be positive, got " << static_cast<int64_t>(k);
      return signalPassFailure();
    }
    UnitAttr mark = UnitAttr::get(module.getContext());
    for (auto func : module.getOps<func::FuncOp>()) {
      int64_t index = 0;
      func.walk([&](BlockOp block) {
        bool chosen = policy == "every" || (policy == "every-k" && index % k == 0);
        if (chosen)
          block->setAttr("bmsys.checkpoint", mark);
        else
          block->removeAttr("bmsys.checkpoint");
        ++index;
      });
    }
  }
};
} // namespace
