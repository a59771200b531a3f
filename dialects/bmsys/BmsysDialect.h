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

#endif // BMSYS_DIALECT_H
