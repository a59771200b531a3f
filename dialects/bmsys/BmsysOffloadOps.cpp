//===- BmsysOffloadOps.cpp - verifiers of the offload ops -----------------===//
#include "dialects/bmsys/BmsysDialect.h"

using namespace mlir;
using namespace bmsys;

namespace bmsys {
/// The type of the host master of `param`: float32 in the parameter's shape, or
/// this rank's flat shard [ceil(n/R)] with `shardRanks` = R > 1.
RankedTensorType hostMasterType(ParamOp param, std::optional<int64_t> shardRanks) {
  auto t = cast<RankedTensorType>(param.getType());
  Type f32 = Float32Type::get(param.getContext());
  if (shardRanks && *shardRanks > 1)
    return RankedTensorType::get({(t.getNumElements() + *shardRanks - 1) / *shardRanks}, f32);
  return RankedTensorType::get(t.getShape(), f32);
}
} // namespace bmsys

LogicalResult HostMasterOp::verify() {
  if (auto r = getShardRanks(); r && *r < 1)
    return emitOpError() << "shard_ranks must be positive, got " << *r;
  if (!cast<RankedTensorType>(getType()).getElementType().isF32())
    return emitOpError() << "master weights are float32, got " << getType();
  return success();
}

LogicalResult HostMasterOp::verifySymbolUses(SymbolTableCollection &symbols) {
  auto param = symbols.lookupNearestSymbolFrom<ParamOp>(*this, getParamAttr());
  if (!param)
    return emitOpError() << "'" << getParam() << "' does not name a bmsys.param";
  RankedTensorType want = hostMasterType(param, getShardRanks());
  if (getType() != want)
    return emitOpError() << "has type " << getType() << ", the master of '" << getParam()
                         << "' " << (getShardRanks() ? "sharded over " + std::to_string(*getShardRanks()) +
                                                             " ranks "
                                                       : std::string())
                         << "is " << want;
  return success();
}

LogicalResult ToHostOp::verify() {
  if (getBuffer().empty())
    return emitOpError("needs the name of its host buffer");
  return success();
}

LogicalResult UploadMasterOp::verifySymbolUses(SymbolTableCollection &symbols) {
  auto master = symbols.lookupNearestSymbolFrom<HostMasterOp>(*this, getMasterAttr());
  if (!master)
    return emitOpError() << "'" << getMaster() << "' does not name a bmsys.host_master";
  int64_t masterRanks = master.getShardRanks().value_or(1);
  int64_t zero = getZeroRanks().value_or(1);
  if (masterRanks != zero)
    return emitOpError() << "zero_ranks " << zero << " differs from the master's shard_ranks "
                         << masterRanks;
  if (getParamSharded()) {
    auto param = symbols.lookupNearestSymbolFrom<ParamOp>(*this, master.getParamAttr());
    auto shards = param ? param->getAttrOfType<IntegerAttr>("zero_shards") : IntegerAttr();
    if (!shards || shards.getInt() != zero)
      return emitOpError() << "param_sharded, but '" << master.getParam()
                           << "' is not stored sharded over " << zero << " ranks";
  }
  return success();
}
