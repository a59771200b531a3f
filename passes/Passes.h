//===- Passes.h - bmsys passes and pipelines ------------------------------===//
#ifndef BMSYS_PASSES_H
#define BMSYS_PASSES_H

#include "dialects/bmsys/BmsysDialect.h"
#include "dialects/bmsys_rt/BmsysRtDialect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace bmsys {
#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

/// Replaces `block` by its body in the enclosing region and returns the ops
/// that were its body, in order (used by bmsys-inline-blocks and by
/// bmsys-autodiff, which needs to know each block's ops).
llvm::SmallVector<mlir::Operation *> inlineBlock(BlockOp block);

/// Registers the named pipelines (`bmsys-infer-pipeline`, ...).
void registerPipelines();

/// The index of `f`'s result named `name` (its `bmsys.name`), or -1.
inline int resultIndex(mlir::func::FuncOp f, llvm::StringRef name) {
  for (unsigned i = 0; i < f.getNumResults(); ++i)
    if (auto n = f.getResultAttrOfType<mlir::StringAttr>(i, "bmsys.name"); n && n.getValue() == name)
      return static_cast<int>(i);
  return -1;
}

/// The ranked tensor type `type` with element type `element` (bmsys-mixed-precision,
/// bmsys-offload).
inline mlir::RankedTensorType withElementType(mlir::Type type, mlir::Type element) {
  return mlir::RankedTensorType::get(mlir::cast<mlir::RankedTensorType>(type).getShape(), element);
}

/// An op every pipeline stage can recompute for itself: pure, no regions, reading only
/// the function's arguments (bmsys.positions of the token ids). bmsys-pipeline-parallel
/// and bmsys-pipeline-schedule copy such ops into each stage instead of passing them.
bool replicableAcrossStages(mlir::Operation *op);

/// Writes a planned bmsys_rt module as a FlatBuffers artifact
/// (runtime/schemas/artifact.fbs).
mlir::LogicalResult serializeArtifact(mlir::ModuleOp module, llvm::raw_ostream &os);
} // namespace bmsys

#endif // BMSYS_PASSES_H
