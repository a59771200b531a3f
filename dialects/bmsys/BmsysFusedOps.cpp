//===- BmsysFusedOps.cpp - verifiers of the fused ops ---------------------===//
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

// rope_attention: attention's checks (shared with bmsys.attention, BmsysOps.cpp), and
// rope's: an even head_dim and positions [batch, seq] of the queries' batch and seq.
LogicalResult RopeAttentionOp::verify() {
  if (failed(verifyAttentionOperands(*this, getQ(), getK(), getV(), getResult(), getNumHeads(),
                                     getNumKvHeads(), getHeadDim())))
    return failure();
  if (getHeadDim() % 2)
    return emitOpError() << "head_dim must be even (rope rotates pairs), got " << getHeadDim();
  auto q = cast<RankedTensorType>(getQ().getType());
  auto pos = cast<RankedTensorType>(getPositions().getType());
  if (pos.getRank() != 2)
    return emitOpError() << "positions must be [batch, seq], got " << pos;
  for (int i = 0; i < 2; ++i) {
    int64_t a = pos.getDimSize(i), b = q.getDimSize(i);
    if (!ShapedType::isDynamic(a) && !ShapedType::isDynamic(b) && a != b)
      return emitOpError() << "positions " << pos << " differ from q " << q << " in dimension " << i;
  }
  return success();
}

LogicalResult RopeAttentionOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  return verifyAttentionCache(*this, symbolTable, getCacheAttr(), getNumKvHeads(), getHeadDim());
}

void RopeAttentionOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>> &effects) {
  // As bmsys.attention: a pure function of its operands unless it writes a cache.
  if (getCache()) {
    effects.emplace_back(MemoryEffects::Read::get());
    effects.emplace_back(MemoryEffects::Write::get());
  }
}
