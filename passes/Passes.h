//===- Passes.h - bmsys passes and pipelines ------------------------------===//
#ifndef BMSYS_PASSES_H
#define BMSYS_PASSES_H

#include "dialects/bmsys/BmsysDialect.h"
#include "dialects/bmsys_rt/BmsysRtDialect.h"
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

/// Writes a planned bmsys_rt module as a FlatBuffers artifact
/// (runtime/schemas/artifact.fbs).
mlir::LogicalResult serializeArtifact(mlir::ModuleOp module, llvm::raw_ostream &os);
} // namespace bmsys

#endif // BMSYS_PASSES_H
