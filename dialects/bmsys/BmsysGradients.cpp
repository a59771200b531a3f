//===- BmsysGradients.cpp - gradient rules of the bmsys ops ---------------===//
//
// One rule per differentiable op (DifferentiableOpInterface), emitting the
// backward ops of BmsysGradOps.td. Rules take the primal operands and results
// as arguments instead of reading them from the op, so that bmsys-autodiff can
// apply them to a recomputed copy (activation checkpointing).
//
//===----------------------------------------------------------------------===//
#include "dialects/bmsys/BmsysDialect.h"

#include "mlir/IR/Builders.h"

using namespace mlir;
using namespace bmsys;

LogicalResult EmbeddingOp::buildGradients(OpBuilder &b, ValueRange operands, ValueRange results,
                                          ValueRange grads, SmallVectorImpl<Value> &out) {
  Value table = operands[1];
  out.push_back(Value()); // token ids
  out.push_back(EmbeddingGradOp::create(b, getLoc(), table.getType(), operands[0], grads[0],
                                        getVocabShardsAttr()));
  return success();
}

// Tensor parallelism (Megatron's f and g): the all-reduce moves to the other pass.
LogicalResult TpCopyOp::buildGradients(OpBuilder &b, ValueRange operands, ValueRange results,
                                       ValueRange grads, SmallVectorImpl<Value> &out) {
  out.push_back(TpAllReduceOp::create(b, getLoc(), grads[0], getRanksAttr()));
  return success();
}

LogicalResult TpAllReduceOp::buildGradients(OpBuilder &b, ValueRange operands, ValueRange results,
                                            ValueRange grads, SmallVectorImpl<Value> &out) {
  out.push_back(grads[0]);
  return success();
}

LogicalResult LinearOp::buildGradients(OpBuilder &b, ValueRange operands, ValueRange results,
                                       ValueRange grads, SmallVectorImpl<Value> &out) {
  Value x = operands[0], w = operands[1], dy = grads[0];
  bool transposed = getWeightTransposed();
  out.push_back(
      LinearGradInputOp::create(b, getLoc(), x.getType(), dy, w, transposed).getResult());
  out.push_back(
      LinearGradWeightOp::create(b, getLoc(), w.getType(), dy, x, transposed).getResult());
  if (operands.size() > 2)
    out.push_back(SumRowsOp::create(b, getLoc(), operands[2].getType(), dy));
  return success();
}

LogicalResult SliceOp::buildGradients(OpBuilder &b, ValueRange operands, ValueRange results,
                                      ValueRange grads, SmallVectorImpl<Value> &out) {
  auto type = cast<RankedTensorType>(operands[0].getType());
  if (ShapedType::isDynamic(type.getShape().back()))
    return emitOpError("needs a static last dimension to be differentiated");
  out.push_back(SliceGradOp::create(b, getLoc(), type, grads[0], getOffset(),
                                    type.getShape().back()));
  return success();
}

LogicalResult LayerNormOp::buildGradients(OpBuilder &b, ValueRange operands, ValueRange results,
                                          ValueRange grads, SmallVectorImpl<Value> &out) {
  auto op = LayerNormGradOp::create(b, getLoc(), operands[0].getType(), operands[1].getType(),
                                    operands[2].getType(), operands[0], operands[1], grads[0],
                                    getEpsAttr());
  out.append({Value(op.getDx()), Value(op.getDgamma()), Value(op.getDbeta())});
  return success();
}

LogicalResult RMSNormOp::buildGradients(OpBuilder &b, ValueRange operands, ValueRange results,
                                        ValueRange grads, SmallVectorImpl<Value> &out) {
  auto op = RMSNormGradOp::create(b, getLoc(), operands[0].getType(), operands[1].getType(),
                                  operands[0], operands[1], grads[0], getEpsAttr());
  out.append({Value(op.getDx()), Value(op.getDgamma())});
  return success();
}

LogicalResult RopeOp::buildGradients(OpBuilder &b, ValueRange operands, ValueRange results,
                                     ValueRange grads, SmallVectorImpl<Value> &out) {
  out.push_back(RopeGradOp::create(b, getLoc(), operands[0].getType(), grads[0], operands[1],
                                   getHeadDimAttr(), getThetaAttr()));
  out.push_back(Value()); // positions
  return success();
}

LogicalResult AttentionOp::buildGradients(OpBuilder &b, ValueRange operands, ValueRange results,
                                          ValueRange grads, SmallVectorImpl<Value> &out) {
  if (getCache())
    return emitOpError("with a KV cache cannot be differentiated; differentiate before "
                       "bmsys-add-kv-cache");
  auto op = AttentionGradOp::create(
      b, getLoc(), operands[0].getType(), operands[1].getType(), operands[2].getType(),
      operands[0], operands[1], operands[2], grads[0], getNumHeadsAttr(), getNumKvHeadsAttr(),
      getHeadDimAttr(), getScaleAttr(), getCausalAttr());
  out.append({Value(op.getDq()), Value(op.getDk()), Value(op.getDv())});
  return success();
}

LogicalResult GeluOp::buildGradients(OpBuilder &b, ValueRange operands, ValueRange results,
                                     ValueRange grads, SmallVectorImpl<Value> &out) {
  out.push_back(GeluGradOp::create(b, getLoc(), operands[0].getType(), operands[0], grads[0],
                                   getApproximateAttr()));
  return success();
}

LogicalResult SiluOp::buildGradients(OpBuilder &b, ValueRange operands, ValueRange results,
                                     ValueRange grads, SmallVectorImpl<Value> &out) {
  out.push_back(SiluGradOp::create(b, getLoc(), operands[0].getType(), operands[0], grads[0]));
  return success();
}

LogicalResult CastOp::buildGradients(OpBuilder &b, ValueRange operands, ValueRange results,
                                     ValueRange grads, SmallVectorImpl<Value> &out) {
  out.push_back(CastOp::create(b, getLoc(), operands[0].getType(), grads[0]));
  return success();
}

LogicalResult FakeQuantOp::buildGradients(OpBuilder &b, ValueRange operands, ValueRange results,
                                          ValueRange grads, SmallVectorImpl<Value> &out) {
  out.push_back(grads[0]); // straight-through estimator
  return success();
}

LogicalResult AddOp::buildGradients(OpBuilder &b, ValueRange operands, ValueRange results,
                                    ValueRange grads, SmallVectorImpl<Value> &out) {
  out.append({Value(grads[0]), Value(grads[0])});
  return success();
}

LogicalResult MulOp::buildGradients(OpBuilder &b, ValueRange operands, ValueRange results,
                                    ValueRange grads, SmallVectorImpl<Value> &out) {
  out.push_back(MulOp::create(b, getLoc(), grads[0], operands[1]));
  out.push_back(MulOp::create(b, getLoc(), grads[0], operands[0]));
  return success();
}

//===----------------------------------------------------------------------===//
// Optimizer ops
//===----------------------------------------------------------------------===//

namespace {
LogicalResult verifySchedule(Operation *op, StringRef schedule, int64_t warmup, int64_t total,
                             double lr) {
  if (schedule != "constant" && schedule != "cosine" && schedule != "linear")
    return op->emitOpError() << "schedule must be constant, cosine or linear, got '" << schedule
                             << "'";
  if (warmup < 0 || total < 0)
    return op->emitOpError("warmup_steps and total_steps must not be negative");
  if (schedule != "constant" && total <= warmup)
    return op->emitOpError() << "a " << schedule << " schedule needs total_steps (" << total
                             << ") > warmup_steps (" << warmup << ")";
  if (lr <= 0)
    return op->emitOpError("lr must be positive");
  return success();
}

LogicalResult verifyStates(Operation *op, SymbolTableCollection &symbols, FlatSymbolRefAttr param,
                           ArrayAttr states, Type gradType, std::optional<int64_t> zeroRanks,
                           bool offload = false) {
  if (offload) {
    // bmsys-offload: the update's parameter is a host master, whose type the
    // gradient and the states have (this rank's shard with zero_ranks).
    auto master = symbols.lookupNearestSymbolFrom<HostMasterOp>(op, param);
    if (!master)
      return op->emitOpError() << "'" << param.getValue()
                               << "' does not name a bmsys.host_master (offload)";
    if (master.getShardRanks().value_or(1) != zeroRanks.value_or(1))
      return op->emitOpError() << "zero_ranks " << zeroRanks.value_or(1)
                               << " differs from the master's shard_ranks "
                               << master.getShardRanks().value_or(1);
    if (master.getType() != gradType)
      return op->emitOpError() << "gradient type " << gradType << " differs from the master's "
                               << master.getType();
    for (Attribute s : states) {
      auto state = symbols.lookupNearestSymbolFrom<OptimizerStateOp>(op, cast<SymbolRefAttr>(s));
      if (!state)
        return op->emitOpError() << s << " does not name a bmsys.optimizer_state";
      if (state.getType() != gradType)
        return op->emitOpError() << "state " << s << " has type " << state.getType()
                                 << ", the master " << gradType;
    }
    return success();
  }
  auto p = symbols.lookupNearestSymbolFrom<ParamOp>(op, param);
  if (!p)
    return op->emitOpError() << "'" << param.getValue() << "' does not name a bmsys.param";
  Type want = p.getType();
  if (zeroRanks) {
    auto full = cast<RankedTensorType>(p.getType());
    want = RankedTensorType::get({(full.getNumElements() + *zeroRanks - 1) / *zeroRanks},
                                 full.getElementType());
  }
  if (want != gradType)
    return op->emitOpError() << "gradient type " << gradType << " differs from " << want
                             << (zeroRanks ? ", the parameter's shard" : ", the parameter's type");
  for (Attribute s : states) {
    auto state = symbols.lookupNearestSymbolFrom<OptimizerStateOp>(op, cast<SymbolRefAttr>(s));
    if (!state)
      return op->emitOpError() << s << " does not name a bmsys.optimizer_state";
    if (state.getType() != gradType)
      return op->emitOpError() << "state " << s << " has type " << state.getType()
                               << ", the parameter " << gradType;
  }
  return success();
}
} // namespace

LogicalResult AdamWOp::verify() {
  if (getState().size() != 2)
    return emitOpError("needs two states: exp_avg and exp_avg_sq");
  double b1 = getBeta1().convertToDouble(), b2 = getBeta2().convertToDouble();
  if (b1 < 0 || b1 >= 1 || b2 < 0 || b2 >= 1)
    return emitOpError("betas must be in [0, 1)");
  return verifySchedule(*this, getSchedule(), getWarmupSteps(), getTotalSteps(),
                        getLr().convertToDouble());
}

LogicalResult AdamWOp::verifySymbolUses(SymbolTableCollection &symbols) {
  return verifyStates(*this, symbols, getParamAttr(), getState(), getGrad().getType(),
                      getZeroRanks(), getOffload());
}

LogicalResult SGDOp::verify() {
  if (getState().size() != 1)
    return emitOpError("needs one state: momentum_buffer");
  return verifySchedule(*this, getSchedule(), getWarmupSteps(), getTotalSteps(),
                        getLr().convertToDouble());
}

LogicalResult SGDOp::verifySymbolUses(SymbolTableCollection &symbols) {
  return verifyStates(*this, symbols, getParamAttr(), getState(), getGrad().getType(),
                      getZeroRanks());
}
