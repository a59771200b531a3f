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

/// Registers the named pipelines (`bmsys-infer-pipeline`, ...).
void registerPipelines();

/// Writes a planned bmsys_rt module as a FlatBuffers artifact
/// (runtime/schemas/artifact.fbs).
mlir::LogicalResult serializeArtifact(mlir::ModuleOp module, llvm::raw_ostream &os);
} // namespace bmsys

#endif // BMSYS_PASSES_H
