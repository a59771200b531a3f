//===- BmsysDialect.h - the bmsys dialect ---------------------------------===//
#ifndef BMSYS_DIALECT_H
#define BMSYS_DIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"

#include "dialects/bmsys/BmsysDialect.h.inc"
#include "dialects/bmsys/BmsysInterfaces.h.inc"

#define GET_OP_CLASSES
#include "dialects/bmsys/BmsysOps.h.inc"

namespace bmsys {
/// bmsys-offload: the type of the host master of `param` (BmsysOffloadOps.td):
/// float32 in its shape, or this rank's flat shard with shard_ranks = R > 1.
mlir::RankedTensorType hostMasterType(ParamOp param, std::optional<int64_t> shardRanks);

/// bmsys.attention's checks, shared with bmsys.rope_attention: positive head
/// counts and head_dim, num_heads a multiple of num_kv_heads, q and the result
/// [batch, seq, num_heads * head_dim], k and v [batch, seq, num_kv_heads * head_dim].
mlir::LogicalResult verifyAttentionOperands(mlir::Operation *op, mlir::Value q, mlir::Value k,
                                            mlir::Value v, mlir::Value result, int64_t numHeads,
                                            int64_t numKvHeads, int64_t headDim);
/// An attention's `cache` names a bmsys.kv_cache of its kv heads and head_dim.
mlir::LogicalResult verifyAttentionCache(mlir::Operation *op, mlir::SymbolTableCollection &symbols,
                                         mlir::FlatSymbolRefAttr cache, int64_t numKvHeads,
                                         int64_t headDim);
} // namespace bmsys

#endif // BMSYS_DIALECT_H
