//===- BmsysRtDialect.h - the bmsys_rt dialect ----------------------------===//
#ifndef BMSYS_RT_DIALECT_H
#define BMSYS_RT_DIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/RegionKindInterface.h"
#include "mlir/IR/SymbolTable.h"

#include "dialects/bmsys_rt/BmsysRtDialect.h.inc"

#define GET_TYPEDEF_CLASSES
#include "dialects/bmsys_rt/BmsysRtTypes.h.inc"

#define GET_OP_CLASSES
#include "dialects/bmsys_rt/BmsysRtOps.h.inc"

namespace bmsys::rt {
/// Symbolic dimensions bound at run time.
inline constexpr llvm::StringLiteral kBatchDim = "B";
inline constexpr llvm::StringLiteral kSeqDim = "S";

/// Bytes of one element of `type` in the runtime's formats.
int64_t elementBytes(mlir::Type type);
/// Size of a buffer of `shape` (see AllocOp) with B and S at their bounds.
int64_t maxBytes(mlir::Type dtype, mlir::ArrayAttr shape, int64_t maxBatch, int64_t maxSeq);
/// Verifies a symbolic shape: each entry an integer >= 0, "B" or "S".
mlir::LogicalResult verifyShape(mlir::Operation *op, mlir::ArrayAttr shape);
} // namespace bmsys::rt

#endif // BMSYS_RT_DIALECT_H
