//===- BmsysDialect.cpp - the bmsys dialect -------------------------------===//
#include "dialects/bmsys/BmsysDialect.h"

using namespace mlir;
using namespace bmsys;

#include "dialects/bmsys/BmsysDialect.cpp.inc"
#include "dialects/bmsys/BmsysInterfaces.cpp.inc"

void BmsysDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/bmsys/BmsysOps.cpp.inc"
      >();
}
