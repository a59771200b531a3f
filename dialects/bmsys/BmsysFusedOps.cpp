//===- BmsysFusedOps.cpp - verifiers of the fused elementwise ops ---------===//
#include "dialects/bmsys/BmsysDialect.h"

using namespace mlir;
using namespace bmsys;

namespace {
/// gamma is a vector of the element type of x, as long as x's last dimension
/// (when both are static); eps is >= 0 and finite.
LogicalResult verifyNormOperands(Operation *op, Value x, Value gamma, double eps) {
  auto xt = cast<RankedTensorType>(x.getType()), gt = cast<RankedTensorType>(gamma.getType());
  if (xt.getRank() < 1)
    return op->emitOpError() << "expects a tensor of rank >= 1 to normalize, got " << xt;
  if (gt.getRank() != 1 || gt.getElementType() != xt.getElementType())
    return op->emitOpError() << "expects gamma to be a vector of " << xt.getElementType() << ", got " << gt;
  int64_t h = xt.getShape().back(), g = gt.getDimSize(0);
  if (!ShapedType::isDynamic(h) && !ShapedType::isDynamic(g) && h != g)
    return op->emitOpError() << "gamma has " << g << " elements but the last dimension is " << h;
  if (!(eps >= 0) || eps > 1e30)
    return op->emitOpError() << "eps must be a finite number >= 0, got " << eps;
  return success();
}
} // namespace

LogicalResult AddRmsNormOp::verify() {
  return verifyNormOperands(*this, getA(), getGamma(), getEps().convertToDouble());
}

LogicalResult RmsNormGradAddOp::verify() {
  return verifyNormOperands(*this, getX(), getGamma(), getEps().convertToDouble());
}
