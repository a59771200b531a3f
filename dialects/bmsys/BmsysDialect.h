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
} // namespace bmsys

#endif // BMSYS_DIALECT_H
