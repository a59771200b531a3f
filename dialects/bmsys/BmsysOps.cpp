//===- BmsysOps.cpp - verifiers and builders of bmsys ops -----------------===//
//
// Verifiers check shapes where they are known: a dynamic dimension (`?`) is
// compatible with anything, so partially known shapes verify and the rest is
// checked at run time against the bound sizes.
//
//===----------------------------------------------------------------------===//
#include "dialects/bmsys/BmsysDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace bmsys;

namespace {
bool dimsCompatible(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

RankedTensorType ranked(Value v) { return cast<RankedTensorType>(v.getType()); }

/// Checks that `result` has the leading dims of `x` and the given last dim.
LogicalResult verifyLeadingDims(Operation *op, RankedTensorType x, RankedTensorType result,
                                int64_t lastDim) {
  if (x.getRank() != result.getRank())
    return op->emitOpError() << "result rank " << result.getRank()
                             << " differs from input rank " << x.getRank();
  for (int64_t i = 0; i + 1 < x.getRank(); ++i)
    if (!dimsCompatible(x.getDimSize(i), result.getDimSize(i)))
      return op->emitOpError() << "result dimension " << i << " (" << result.getDimSize(i)
                               << ") differs from the input's (" << x.getDimSize(i) << ")";
  if (!dimsCompatible(result.getShape().back(), lastDim))
    return op->emitOpError() << "result last dimension is " << result.getShape().back()
                             << ", expected " << lastDim;
  return success();
}

LogicalResult verifyVector(Operation *op, StringRef what, RankedTensorType t, int64_t size) {
  if (t.getRank() != 1 || !dimsCompatible(t.getDimSize(0), size))
    return op->emitOpError() << what << " must be a vector of " << size << " elements, got "
                             << t;
  return success();
}
} // namespace

//===----------------------------------------------------------------------===//
// Module-level ops
//===----------------------------------------------------------------------===//

LogicalResult ParamOp::verify() {
  auto type = cast<RankedTensorType>(getType());
  if (!type.hasStaticShape())
    return emitOpError() << "parameter '" << getSymName() << "' must have a static shape, got "
                         << type;
  if (getKey().empty())
    return emitOpError() << "parameter '" << getSymName() << "' has an empty tensor key";
  return success();
}

LogicalResult KVCacheOp::verify() {
  for (auto [name, value] :
       {std::pair<StringRef, int64_t>{"max_batch", getMaxBatch()}, {"max_seq", getMaxSeq()},
        {"num_kv_heads", getNumKvHeads()}, {"head_dim", getHeadDim()}})
    if (value <= 0)
      return emitOpError() << name << " must be positive, got " << value;
  return success();
}

LogicalResult WeightOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  auto param = symbolTable.lookupNearestSymbolFrom<ParamOp>(*this, getParamAttr());
  if (!param)
    return emitOpError() << "'" << getParam() << "' does not name a bmsys.param";
  if (param.getType() != getType())
    return emitOpError() << "result type " << getType() << " differs from parameter '"
                         << getParam() << "' of type " << param.getType();
  return success();
}

//===----------------------------------------------------------------------===//
// Block
//===----------------------------------------------------------------------===//

void BlockOp::build(OpBuilder &builder, OperationState &state, StringRef name,
                    ValueRange inputs, TypeRange resultTypes) {
  state.addAttribute(getNameAttrName(state.name), builder.getStringAttr(name));
  state.addOperands(inputs);
  state.addTypes(resultTypes);
  Region *body = state.addRegion();
  Block *block = new Block();
  for (Value v : inputs)
    block->addArgument(v.getType(), state.location);
  body->push_back(block);
}

LogicalResult BlockOp::verify() {
  Block &body = getBody().front();
  if (body.getNumArguments() != getInputs().size())
    return emitOpError() << "body has " << body.getNumArguments() << " arguments for "
                         << getInputs().size() << " inputs";
  for (auto [arg, input] : llvm::zip(body.getArguments(), getInputs()))
    if (arg.getType() != input.getType())
      return emitOpError() << "body argument type " << arg.getType()
                           << " differs from input type " << input.getType();
  auto yield = cast<YieldOp>(body.getTerminator());
  if (yield.getValues().getTypes() != getResultTypes())
    return emitOpError() << "yielded types differ from the block's result types";
  return success();
}

//===----------------------------------------------------------------------===//
// Transformer ops
//===----------------------------------------------------------------------===//

LogicalResult PositionsOp::verify() {
  if (ranked(getIds()).getShape() != ranked(getResult()).getShape() ||
      ranked(getIds()).getRank() != 2)
    return emitOpError() << "expects [batch, seq] ids and a result of the same shape";
  return success();
}

LogicalResult EmbeddingOp::verify() {
  auto ids = ranked(getIds()), table = ranked(getTable()), result = ranked(getResult());
  if (table.getRank() != 2)
    return emitOpError() << "table must be [vocab, hidden], got " << table;
  if (result.getRank() != ids.getRank() + 1)
    return emitOpError() << "result must have rank " << ids.getRank() + 1;
  for (int64_t i = 0; i < ids.getRank(); ++i)
    if (!dimsCompatible(ids.getDimSize(i), result.getDimSize(i)))
      return emitOpError() << "result dimension " << i << " differs from the ids'";
  if (!dimsCompatible(result.getShape().back(), table.getDimSize(1)))
    return emitOpError() << "result width " << result.getShape().back()
                         << " differs from the table's " << table.getDimSize(1);
  return success();
}

LogicalResult LinearOp::verify() {
  auto x = ranked(getX()), w = ranked(getWeight()), result = ranked(getResult());
  if (w.getRank() != 2)
    return emitOpError() << "weight must be a matrix, got " << w;
  int64_t in = getWeightTransposed() ? w.getDimSize(0) : w.getDimSize(1);
  int64_t out = getWeightTransposed() ? w.getDimSize(1) : w.getDimSize(0);
  if (x.getRank() < 1 || !dimsCompatible(x.getShape().back(), in))
    return emitOpError() << "input width " << (x.getRank() ? x.getShape().back() : 0)
                         << " differs from the weight's input size " << in << " (weight "
                         << w << (getWeightTransposed() ? ", [in, out]" : ", [out, in]") << ")";
  if (getBias())
    if (failed(verifyVector(*this, "bias", ranked(getBias()), out)))
      return failure();
  return verifyLeadingDims(*this, x, result, out);
}

LogicalResult LinearInt8Op::verify() {
  auto x = ranked(getX()), w = ranked(getWeight()), result = ranked(getResult());
  if (w.getRank() != 2)
    return emitOpError() << "weight must be an [out, in] matrix, got " << w;
  int64_t out = w.getDimSize(0), in = w.getDimSize(1);
  if (x.getRank() < 1 || !dimsCompatible(x.getShape().back(), in))
    return emitOpError() << "input width differs from the weight's input size " << in;
  if (failed(verifyVector(*this, "scale", ranked(getScale()), out)))
    return failure();
  if (getBias() && failed(verifyVector(*this, "bias", ranked(getBias()), out)))
    return failure();
  if (getActivations() != "float" && getActivations() != "int8")
    return emitOpError() << "activations must be \"float\" or \"int8\", got \""
                         << getActivations() << "\"";
  return verifyLeadingDims(*this, x, result, out);
}

LogicalResult SliceOp::verify() {
  auto x = ranked(getX());
  int64_t width = x.getShape().back();
  if (getOffset() < 0 || getSize() <= 0 ||
      (!ShapedType::isDynamic(width) && getOffset() + getSize() > width))
    return emitOpError() << "range [" << getOffset() << ", " << getOffset() + getSize()
                         << ") is outside the last dimension of size " << width;
  return verifyLeadingDims(*this, x, ranked(getResult()), getSize());
}

LogicalResult LayerNormOp::verify() {
  auto x = ranked(getX());
  int64_t h = x.getShape().back();
  if (failed(verifyVector(*this, "gamma", ranked(getGamma()), h)) ||
      failed(verifyVector(*this, "beta", ranked(getBeta()), h)))
    return failure();
  if (getEps().convertToDouble() <= 0)
    return emitOpError() << "eps must be positive";
  return verifyLeadingDims(*this, x, ranked(getResult()), h);
}

LogicalResult RMSNormOp::verify() {
  auto x = ranked(getX());
  int64_t h = x.getShape().back();
  if (failed(verifyVector(*this, "gamma", ranked(getGamma()), h)))
    return failure();
  if (getEps().convertToDouble() <= 0)
    return emitOpError() << "eps must be positive";
  return verifyLeadingDims(*this, x, ranked(getResult()), h);
}

LogicalResult RopeOp::verify() {
  auto x = ranked(getX());
  if (x.getRank() != 3)
    return emitOpError() << "expects x of shape [batch, seq, heads * head_dim], got " << x;
  if (getHeadDim() <= 0 || getHeadDim() % 2)
    return emitOpError() << "head_dim must be positive and even, got " << getHeadDim();
  int64_t width = x.getShape().back();
  if (!ShapedType::isDynamic(width) && width % getHeadDim())
    return emitOpError() << "width " << width << " is not a multiple of head_dim "
                         << getHeadDim();
  if (ranked(getPositions()).getRank() != 2)
    return emitOpError() << "positions must be [batch, seq]";
  if (x.getShape() != ranked(getResult()).getShape())
    return emitOpError() << "result shape differs from the input's";
  return success();
}

LogicalResult bmsys::verifyAttentionOperands(Operation *op, Value q, Value k, Value v, Value result,
                                             int64_t heads, int64_t kvHeads, int64_t d) {
  if (heads <= 0 || kvHeads <= 0 || d <= 0)
    return op->emitOpError() << "num_heads, num_kv_heads and head_dim must be positive";
  if (heads % kvHeads)
    return op->emitOpError() << "num_heads (" << heads << ") must be a multiple of num_kv_heads ("
                             << kvHeads << ")";
  auto check = [&](StringRef what, Value x, int64_t width) -> LogicalResult {
    auto t = ranked(x);
    if (t.getRank() != 3 || !dimsCompatible(t.getShape().back(), width))
      return op->emitOpError() << what << " must be [batch, seq, " << width << "], got " << t;
    return success();
  };
  if (failed(check("q", q, heads * d)) || failed(check("k", k, kvHeads * d)) ||
      failed(check("v", v, kvHeads * d)) || failed(check("result", result, heads * d)))
    return failure();
  return success();
}

LogicalResult bmsys::verifyAttentionCache(Operation *op, SymbolTableCollection &symbolTable,
                                          FlatSymbolRefAttr cacheRef, int64_t kvHeads, int64_t d) {
  if (!cacheRef)
    return success();
  auto cache = symbolTable.lookupNearestSymbolFrom<KVCacheOp>(op, cacheRef);
  if (!cache)
    return op->emitOpError() << "'" << cacheRef.getValue() << "' does not name a bmsys.kv_cache";
  if (cache.getNumKvHeads() != kvHeads || cache.getHeadDim() != d)
    return op->emitOpError() << "cache '" << cacheRef.getValue() << "' holds " << cache.getNumKvHeads()
                             << " heads of " << cache.getHeadDim() << ", attention needs "
                             << kvHeads << " of " << d;
  return success();
}

LogicalResult AttentionOp::verify() {
  return verifyAttentionOperands(*this, getQ(), getK(), getV(), getResult(), getNumHeads(),
                                 getNumKvHeads(), getHeadDim());
}

LogicalResult AttentionOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  return verifyAttentionCache(*this, symbolTable, getCacheAttr(), getNumKvHeads(), getHeadDim());
}

void AttentionOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>> &effects) {
  // Without a cache the op is a pure function of its operands.
  if (getCache()) {
    effects.emplace_back(MemoryEffects::Read::get());
    effects.emplace_back(MemoryEffects::Write::get());
  }
}

LogicalResult GeluOp::verify() {
  if (getApproximate() != "tanh" && getApproximate() != "none")
    return emitOpError() << "approximate must be \"tanh\" or \"none\", got \""
                         << getApproximate() << "\"";
  return success();
}

LogicalResult CastOp::verify() {
  auto from = ranked(getX()), to = ranked(getResult());
  if (from.getShape() != to.getShape())
    return emitOpError() << "changes the shape from " << from << " to " << to;
  return success();
}

LogicalResult CrossEntropyOp::verify() {
  auto logits = ranked(getLogits()), labels = ranked(getLabels());
  if (logits.getRank() != 3 || labels.getRank() != 2)
    return emitOpError() << "expects logits [batch, seq, vocab] and labels [batch, seq]";
  for (int i = 0; i < 2; ++i)
    if (!dimsCompatible(logits.getDimSize(i), labels.getDimSize(i)))
      return emitOpError() << "logits and labels differ in dimension " << i;
  if (ranked(getResult()).getRank() != 0)
    return emitOpError() << "result must be a scalar tensor<f32>";
  return success();
}

#define GET_OP_CLASSES
#include "dialects/bmsys/BmsysOps.cpp.inc"

//===----------------------------------------------------------------------===//
// Collectives
//===----------------------------------------------------------------------===//

namespace {
/// Elements of one rank's flat shard of `type` over `ranks` ranks.
int64_t shardElements(RankedTensorType type, int64_t ranks) {
  return (type.getNumElements() + ranks - 1) / ranks;
}

LogicalResult verifyRanks(Operation *op, int64_t ranks) {
  if (ranks < 1)
    return op->emitOpError() << "ranks must be positive, got " << ranks;
  return success();
}

LogicalResult verifyShard(Operation *op, RankedTensorType full, RankedTensorType shard,
                          int64_t ranks) {
  if (!full.hasStaticShape())
    return op->emitOpError() << "needs a statically shaped tensor, got " << full;
  int64_t want = shardElements(full, ranks);
  if (shard.getRank() != 1 || shard.getDimSize(0) != want)
    return op->emitOpError() << "shard of " << full << " over " << ranks << " ranks must be "
                             << "tensor<" << want << "x" << full.getElementType() << ">, got "
                             << shard;
  return success();
}
} // namespace

LogicalResult AllReduceOp::verify() {
  if (getReduction() != "sum" && getReduction() != "mean")
    return emitOpError() << "reduction must be sum or mean, got '" << getReduction() << "'";
  return verifyRanks(*this, getRanks());
}

LogicalResult ReduceScatterOp::verify() {
  if (getReduction() != "sum" && getReduction() != "mean")
    return emitOpError() << "reduction must be sum or mean, got '" << getReduction() << "'";
  if (failed(verifyRanks(*this, getRanks())))
    return failure();
  return verifyShard(*this, ranked(getX()), ranked(getResult()), getRanks());
}

LogicalResult TpCopyOp::verify() { return verifyRanks(*this, getRanks()); }

LogicalResult TpAllReduceOp::verify() { return verifyRanks(*this, getRanks()); }

LogicalResult AllGatherOp::verify() {
  if (failed(verifyRanks(*this, getRanks())))
    return failure();
  return verifyShard(*this, ranked(getResult()), ranked(getShard()), getRanks());
}

LogicalResult WeightShardOp::verifySymbolUses(SymbolTableCollection &symbols) {
  auto param = symbols.lookupNearestSymbolFrom<ParamOp>(*this, getParamAttr());
  if (!param)
    return emitOpError() << "'" << getParam() << "' does not name a bmsys.param";
  auto ranks = param->getAttrOfType<IntegerAttr>("zero_shards");
  if (!ranks)
    return emitOpError() << "parameter '" << getParam() << "' is not stored sharded";
  return verifyShard(*this, cast<RankedTensorType>(param.getType()), ranked(getResult()),
                     ranks.getInt());
}

LogicalResult SyncParamOp::verifySymbolUses(SymbolTableCollection &symbols) {
  if (!symbols.lookupNearestSymbolFrom<ParamOp>(*this, getParamAttr()))
    return emitOpError() << "'" << getParam() << "' does not name a bmsys.param";
  return verifyRanks(*this, getRanks());
}
