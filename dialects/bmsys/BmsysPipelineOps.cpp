//===- BmsysPipelineOps.cpp - pipeline-parallel ops -----------------------===//
#include "dialects/bmsys/BmsysDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

using namespace mlir;
using namespace bmsys;

namespace {
/// The stage of the function around `op` (bmsys-pipeline-schedule's
/// `bmsys.pipeline_stage`), or -1 outside a stage function.
int64_t stageOf(Operation *op) {
  auto func = op->getParentOfType<func::FuncOp>();
  if (!func)
    return -1;
  auto stage = func->getAttrOfType<IntegerAttr>("bmsys.pipeline_stage");
  return stage ? stage.getInt() : -1;
}

LogicalResult verifyPeer(Operation *op, int64_t peer, int64_t microBatch, int64_t channel) {
  if (peer < 0 || microBatch < 0 || channel < 0)
    return op->emitOpError() << "peer, micro_batch and channel must be >= 0, got " << peer << ", "
                             << microBatch << ", " << channel;
  int64_t stage = stageOf(op);
  if (stage >= 0 && peer != stage - 1 && peer != stage + 1)
    return op->emitOpError() << "on stage " << stage << " can only talk to stage " << stage - 1
                             << " or " << stage + 1 << ", not " << peer;
  return success();
}
} // namespace

LogicalResult PpBoundaryOp::verify() {
  if (getFrom() < 0 || getTo() < 0 || (getTo() != getFrom() + 1 && getTo() != getFrom() - 1))
    return emitOpError() << "must join neighbouring stages, got from " << getFrom() << " to "
                         << getTo();
  if (getChannel() < 0)
    return emitOpError() << "channel must be >= 0, got " << getChannel();
  return success();
}

LogicalResult PpBoundaryOp::buildGradients(OpBuilder &b, ValueRange operands, ValueRange results,
                                           ValueRange grads, SmallVectorImpl<Value> &out) {
  // The gradient travels back: from the stage that used the value to the one
  // that computed it, on the same channel.
  out.push_back(PpBoundaryOp::create(b, getLoc(), grads[0], getToAttr(), getFromAttr(),
                                     getChannelAttr()));
  return success();
}

LogicalResult PpSendOp::verify() {
  return verifyPeer(*this, getPeer(), getMicroBatch(), getChannel());
}

LogicalResult PpRecvOp::verify() {
  return verifyPeer(*this, getPeer(), getMicroBatch(), getChannel());
}

LogicalResult PpBroadcastOp::verify() {
  if (getRoot() < 0)
    return emitOpError() << "root must be >= 0, got " << getRoot();
  if (getX() && getX().getType() != getResult().getType())
    return emitOpError() << "operand type " << getX().getType() << " differs from the result's "
                         << getResult().getType();
  int64_t stage = stageOf(*this);
  if (stage >= 0 && (stage == getRoot()) != bool(getX()))
    return emitOpError() << "on stage " << stage << " must " << (stage == getRoot() ? "" : "not ")
                         << "have an operand (root " << getRoot() << ")";
  return success();
}

LogicalResult PpMeanOp::verify() {
  if (getMicroBatches() < 1)
    return emitOpError() << "micro_batches must be positive, got " << getMicroBatches();
  return success();
}
