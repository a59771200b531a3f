//===- BmsysRtDialect.cpp - the bmsys_rt dialect --------------------------===//
#include "dialects/bmsys_rt/BmsysRtDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace bmsys::rt;

#include "dialects/bmsys_rt/BmsysRtDialect.cpp.inc"
#define GET_TYPEDEF_CLASSES
#include "dialects/bmsys_rt/BmsysRtTypes.cpp.inc"

void BmsysRtDialect::initialize() {
  addTypes<
#define GET_TYPEDEF_LIST
#include "dialects/bmsys_rt/BmsysRtTypes.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "dialects/bmsys_rt/BmsysRtOps.cpp.inc"
      >();
}

int64_t bmsys::rt::elementBytes(Type type) {
  if (type.isF32() || type.isInteger(32))
    return 4;
  if (type.isF16() || type.isBF16())
    return 2;
  if (type.isInteger(64))
    return 8;
  if (type.isInteger(8))
    return 1;
  return 0;
}

int64_t bmsys::rt::maxBytes(Type dtype, ArrayAttr shape, int64_t maxBatch, int64_t maxSeq) {
  int64_t n = elementBytes(dtype);
  for (Attribute dim : shape) {
    if (auto i = dyn_cast<IntegerAttr>(dim))
      n *= i.getInt();
    else
      n *= cast<StringAttr>(dim).getValue() == kBatchDim ? maxBatch : maxSeq;
  }
  return n;
}

LogicalResult bmsys::rt::verifyShape(Operation *op, ArrayAttr shape) {
  for (Attribute dim : shape) {
    if (auto i = dyn_cast<IntegerAttr>(dim)) {
      if (i.getInt() < 0)
        return op->emitOpError() << "has a negative dimension " << i.getInt();
      continue;
    }
    auto s = dyn_cast<StringAttr>(dim);
    if (!s || (s.getValue() != kBatchDim && s.getValue() != kSeqDim))
      return op->emitOpError() << "shape entries must be integers, \"B\" or \"S\", got "
                               << dim;
  }
  return success();
}

//===----------------------------------------------------------------------===//

LogicalResult InputOp::verify() {
  if (elementBytes(getDtype()) == 0)
    return emitOpError() << "unsupported element type " << getDtype();
  return verifyShape(*this, getShape());
}

LogicalResult AllocOp::verify() {
  if (elementBytes(getDtype()) == 0)
    return emitOpError() << "unsupported element type " << getDtype();
  if (getOffset() && *getOffset() < 0)
    return emitOpError() << "negative offset";
  return verifyShape(*this, getShape());
}

LogicalResult WeightRefOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  if (!symbolTable.lookupNearestSymbolFrom<WeightOp>(*this, getWeightAttr()))
    return emitOpError() << "'" << getWeight() << "' does not name a bmsys_rt.weight";
  return success();
}

LogicalResult StateRefOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  if (!symbolTable.lookupNearestSymbolFrom<StateOp>(*this, getStateAttr()))
    return emitOpError() << "'" << getState() << "' does not name a bmsys_rt.state";
  return success();
}

LogicalResult LaunchOp::verify() {
  if (getKernel().empty())
    return emitOpError() << "needs a kernel name";
  // pp_send (pipeline parallelism) is the one kernel whose effect is outside the
  // buffers: it hands its input to another stage.
  if (getOutputs().empty() && getKernel() != "pp_send")
    return emitOpError() << "kernel '" << getKernel() << "' writes no output";
  for (Value out : getOutputs())
    if (!out.getDefiningOp<AllocOp>() && !out.getDefiningOp<StateRefOp>() &&
        !out.getDefiningOp<WeightRefOp>())
      return emitOpError() << "kernel '" << getKernel()
                           << "' writes a buffer that is not an alloc, state or weight";
  return success();
}

#define GET_OP_CLASSES
#include "dialects/bmsys_rt/BmsysRtOps.cpp.inc"
