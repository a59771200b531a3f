//===- LowerToRt.cpp - bmsys-lower-to-rt ----------------------------------===//
//
// A one-to-one lowering: each bmsys op becomes one kernel launch whose name is
// the op's mnemonic (docs/kernels.md), with the op's attributes as parameters.
// Symbolic shapes: a function argument's dynamic dimensions are "B" (dim 0) and
// "S" (dim 1); an op result's dynamic dimensions take, in order, the symbolic
// dimensions of its first operand ([B, S, hidden] -> [B, S, vocab]).
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringMap.h"

namespace bmsys {
#define GEN_PASS_DEF_BMSYSLOWERTORT
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace {
constexpr int64_t kStateAlignment = 256;

int64_t alignUp(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

class FunctionLowering {
public:
  FunctionLowering(func::FuncOp func, OpBuilder &builder,
                   const llvm::StringMap<StringAttr> &masterParams)
      : func(func), b(builder), masterParams(masterParams) {}

  LogicalResult lower() {
    rtFunc = rt::FuncOp::create(b, func.getLoc(), func.getSymName());
    if (auto stage = func->getAttrOfType<IntegerAttr>("bmsys.pipeline_stage"))
      rtFunc->setAttr("bmsys_rt.pipeline_stage", stage);
    Block *body = new Block();
    rtFunc.getBody().push_back(body);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToEnd(body);

    for (auto [i, arg] : llvm::enumerate(func.getArguments())) {
      auto type = cast<RankedTensorType>(arg.getType());
      SmallVector<Attribute> shape;
      for (auto [d, size] : llvm::enumerate(type.getShape())) {
        if (!ShapedType::isDynamic(size)) {
          shape.push_back(b.getI64IntegerAttr(size));
        } else if (d < 2) {
          shape.push_back(b.getStringAttr(d == 0 ? rt::kBatchDim : rt::kSeqDim));
        } else {
          return func.emitError() << "argument " << i << " has a dynamic dimension " << d
                                  << "; only dimensions 0 (batch) and 1 (sequence) may be dynamic";
        }
      }
      auto nameAttr = func.getArgAttrOfType<StringAttr>(i, "bmsys.name");
      std::string name = nameAttr ? nameAttr.str() : (i == 0 ? "input_ids" : "arg" + std::to_string(i));
      auto shapeAttr = b.getArrayAttr(shape);
      auto input = rt::InputOp::create(b, arg.getLoc(), bufferType(), b.getStringAttr(name),
                                       TypeAttr::get(type.getElementType()), shapeAttr);
      map(arg, input.getBuffer(), shapeAttr);
    }

    for (Operation &op : func.getBody().front()) {
      if (failed(lowerOp(op)))
        return failure();
    }
    return success();
  }

private:
  Type bufferType() { return rt::BufferType::get(b.getContext()); }

  void map(Value v, Value buffer, ArrayAttr shape) {
    buffers[v] = buffer;
    shapes[v] = shape;
  }

  LogicalResult lowerOp(Operation &op) {
    if (auto shard = dyn_cast<WeightShardOp>(op)) {
      auto type = cast<RankedTensorType>(shard.getType());
      auto ref = rt::WeightRefOp::create(b, op.getLoc(), bufferType(), shard.getParamAttr());
      map(shard, ref.getBuffer(), b.getArrayAttr({b.getI64IntegerAttr(type.getDimSize(0))}));
      return success();
    }
    if (auto sync = dyn_cast<SyncParamOp>(op)) {
      Value weight = rt::WeightRefOp::create(b, op.getLoc(), bufferType(), sync.getParamAttr());
      rt::LaunchOp::create(b, op.getLoc(), "sync_param", ValueRange{weight}, ValueRange{weight},
                           b.getDictionaryAttr(kernelParams(op, {"param"})));
      return success();
    }
    if (auto boundary = dyn_cast<PpBoundaryOp>(op)) {
      // Outside the stage functions (in `forward`) a stage boundary is the identity.
      map(boundary, buffers.lookup(boundary.getX()), shapes.lookup(boundary.getX()));
      return success();
    }
    if (auto recv = dyn_cast<PpRecvOp>(op)) {
      // A received activation or gradient: its dynamic dimensions are the
      // micro-batch's B and S, in order.
      auto type = cast<RankedTensorType>(recv.getType());
      SmallVector<Attribute> shape;
      int dynamic = 0;
      for (int64_t d : type.getShape()) {
        if (!ShapedType::isDynamic(d))
          shape.push_back(b.getI64IntegerAttr(d));
        else if (dynamic < 2)
          shape.push_back(b.getStringAttr(dynamic++ == 0 ? rt::kBatchDim : rt::kSeqDim));
        else
          return op.emitOpError("has more than two dynamic dimensions");
      }
      auto shapeAttr = b.getArrayAttr(shape);
      auto alloc = rt::AllocOp::create(b, op.getLoc(), bufferType(),
                                       TypeAttr::get(type.getElementType()), shapeAttr,
                                       IntegerAttr(), IntegerAttr());
      map(recv, alloc.getBuffer(), shapeAttr);
      rt::LaunchOp::create(b, op.getLoc(), "pp_recv", ValueRange{}, ValueRange{alloc.getBuffer()},
                           b.getDictionaryAttr(kernelParams(op, {})));
      return success();
    }
    if (auto copy = dyn_cast<TpCopyOp>(op)) {
      // The identity in the forward pass; its gradient's all-reduce is a
      // bmsys.tp_all_reduce of its own.
      map(copy, buffers.lookup(copy.getX()), shapes.lookup(copy.getX()));
      return success();
    }
    if (auto weight = dyn_cast<WeightOp>(op)) {
      auto type = cast<RankedTensorType>(weight.getType());
      SmallVector<Attribute> shape;
      for (int64_t d : type.getShape())
        shape.push_back(b.getI64IntegerAttr(d));
      auto ref = rt::WeightRefOp::create(b, op.getLoc(), bufferType(), weight.getParamAttr());
      map(weight, ref.getBuffer(), b.getArrayAttr(shape));
      return success();
    }
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
        auto nameAttr = func.getResultAttrOfType<StringAttr>(i, "bmsys.name");
        std::string name = nameAttr ? nameAttr.str() : "result" + std::to_string(i);
        rt::OutputOp::create(b, op.getLoc(), name, buffers.lookup(v));
      }
      return success();
    }
    if (isa<BlockOp>(op))
      return op.emitOpError("must be inlined before lowering (run bmsys-inline-blocks)");
    if (auto marker = dyn_cast<GradOp>(op))
      return op.emitOpError() << "the gradient of '" << marker.getParam()
                              << "' is never used: add bmsys-optimizer";
    if (isa<AdamWOp, SGDOp>(op))
      return lowerUpdate(op);
    if (auto toHost = dyn_cast<ToHostOp>(op))
      return lowerToHost(toHost);
    if (auto upload = dyn_cast<UploadMasterOp>(op)) {
      // bmsys-offload: the host master into its device parameter.
      auto param = masterParams.lookup(upload.getMaster());
      if (!param)
        return op.emitOpError() << "'" << upload.getMaster() << "' names no bmsys.host_master";
      Value master = rt::WeightRefOp::create(b, op.getLoc(), bufferType(), upload.getMasterAttr());
      Value weight = rt::WeightRefOp::create(b, op.getLoc(), bufferType(), FlatSymbolRefAttr::get(param));
      rt::LaunchOp::create(b, op.getLoc(), "upload_master", ValueRange{master}, ValueRange{weight},
                           b.getDictionaryAttr(kernelParams(op, {"master"})));
      return success();
    }
    if (op.getDialect() != op.getContext()->getLoadedDialect<BmsysDialect>())
      return op.emitOpError("cannot be lowered to bmsys_rt");

    SmallVector<Value> inputs;
    for (Value operand : op.getOperands()) {
      Value buffer = buffers.lookup(operand);
      if (!buffer)
        return op.emitOpError("uses a value that was not lowered");
      inputs.push_back(buffer);
    }

    SmallVector<NamedAttribute> params = kernelParams(op, {"cache"});
    // attention and rope_attention with a KV cache: its key and value states follow
    // the operands (the kernel writes them).
    if (auto cache = op.getAttrOfType<FlatSymbolRefAttr>("cache");
        cache && isa<AttentionOp, RopeAttentionOp>(op)) {
      for (StringRef suffix : {".k", ".v"}) {
        auto ref = rt::StateRefOp::create(b, op.getLoc(), bufferType(),
                                          FlatSymbolRefAttr::get(b.getStringAttr(cache.getValue() + suffix)));
        inputs.push_back(ref.getBuffer());
      }
    }

    SmallVector<Value> outputs;
    for (Value result : op.getResults()) {
      auto type = cast<RankedTensorType>(result.getType());
      ArrayAttr shape = resultShape(op, type);
      if (!shape)
        return op.emitOpError() << "cannot derive the symbolic shape of result " << type;
      auto alloc = rt::AllocOp::create(b, op.getLoc(), bufferType(),
                                       TypeAttr::get(type.getElementType()), shape,
                                       IntegerAttr(), IntegerAttr());
      map(result, alloc.getBuffer(), shape);
      outputs.push_back(alloc.getBuffer());
    }
    StringRef kernel = op.getName().stripDialect();
    rt::LaunchOp::create(b, op.getLoc(), kernel, inputs, outputs,
                         params.empty() ? DictionaryAttr() : b.getDictionaryAttr(params));
    return success();
  }

  /// Kernel parameters: every registered attribute but `skip`; unit
  /// attributes (flags) become 1 and absent ones 0, so kernels read every flag
  /// explicitly.
  SmallVector<NamedAttribute> kernelParams(Operation &op, ArrayRef<StringRef> skip) {
    SmallVector<NamedAttribute> params;
    for (StringAttr name : op.getRegisteredInfo()->getAttributeNames()) {
      if (llvm::is_contained(skip, name.getValue()))
        continue;
      Attribute value = op.getAttr(name);
      if (!value || isa<UnitAttr>(value))
        value = b.getI64IntegerAttr(value ? 1 : 0);
      params.push_back(b.getNamedAttr(name, value));
    }
    return params;
  }

  /// An optimizer update writes its parameter and states in place: they are
  /// both inputs and outputs of the launch.
  LogicalResult lowerUpdate(Operation &op) {
    auto param = op.getAttrOfType<FlatSymbolRefAttr>("param");
    auto states = op.getAttrOfType<ArrayAttr>("state");
    Value weight = rt::WeightRefOp::create(b, op.getLoc(), bufferType(), param);
    SmallVector<Value> stateBuffers;
    for (Attribute s : states)
      stateBuffers.push_back(
          rt::StateRefOp::create(b, op.getLoc(), bufferType(), cast<FlatSymbolRefAttr>(s)));
    SmallVector<Value> inputs{weight, buffers.lookup(op.getOperand(0))};
    inputs.append(stateBuffers);
    inputs.push_back(buffers.lookup(op.getOperand(1))); // the global norm
    SmallVector<Value> outputs{weight};
    outputs.append(stateBuffers);
    rt::LaunchOp::create(b, op.getLoc(), op.getName().stripDialect(), inputs, outputs,
                         b.getDictionaryAttr(kernelParams(op, {"param", "state"})));
    return success();
  }

  /// bmsys-offload: the copy's result is a host buffer of its own (a state kept
  /// across calls, placement "host"), declared beside the function.
  LogicalResult lowerToHost(ToHostOp op) {
    auto type = cast<RankedTensorType>(op.getType());
    if (!type.hasStaticShape())
      return op.emitOpError("copies a tensor of dynamic shape; only gradients (static) go to the host");
    Value x = buffers.lookup(op.getX());
    if (!x)
      return op.emitOpError("uses a value that was not lowered");
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(rtFunc);
      auto module = rtFunc->getParentOfType<ModuleOp>();
      if (module.lookupSymbol(op.getBuffer()))
        return op.emitOpError() << "host buffer '" << op.getBuffer() << "' is declared twice";
      int64_t bytes = rt::elementBytes(type.getElementType()) * type.getNumElements();
      auto state = rt::StateOp::create(b, op.getLoc(), op.getBuffer(), type.getElementType(),
                                       type.getShape(), 0, bytes, "offload", IntegerAttr(),
                                       DenseI64ArrayAttr());
      state->setAttr("placement", b.getStringAttr("host"));
    }
    Value host = rt::StateRefOp::create(b, op.getLoc(), bufferType(),
                                        FlatSymbolRefAttr::get(b.getStringAttr(op.getBuffer())));
    rt::LaunchOp::create(b, op.getLoc(), "to_host", ValueRange{x}, ValueRange{host}, DictionaryAttr());
    SmallVector<Attribute> shape;
    for (int64_t d : type.getShape())
      shape.push_back(b.getI64IntegerAttr(d));
    map(op.getResult(), host, b.getArrayAttr(shape));
    return success();
  }

  ArrayAttr resultShape(Operation &op, RankedTensorType type) {
    SmallVector<Attribute> symbolic;
    if (op.getNumOperands() > 0)
      for (Attribute dim : shapes.lookup(op.getOperand(0)))
        if (isa<StringAttr>(dim))
          symbolic.push_back(dim);
    SmallVector<Attribute> shape;
    size_t next = 0;
    for (int64_t d : type.getShape()) {
      if (!ShapedType::isDynamic(d)) {
        shape.push_back(b.getI64IntegerAttr(d));
      } else {
        if (next >= symbolic.size())
          return {};
        shape.push_back(symbolic[next++]);
      }
    }
    return b.getArrayAttr(shape);
  }

  func::FuncOp func;
  OpBuilder &b;
  const llvm::StringMap<StringAttr> &masterParams;  // host master -> its parameter
  rt::FuncOp rtFunc;
  DenseMap<Value, Value> buffers;
  DenseMap<Value, ArrayAttr> shapes;
};

/// Tensor parallelism: the slice of the stored tensor a weight or optimizer
/// state holds (bmsys-tensor-parallel) stays visible on the bmsys_rt op.
void copyTensorParallel(Operation *from, Operation *to) {
  for (StringRef attr : {"tp_dim", "tp_ranks"})
    if (Attribute a = from->getAttr(attr))
      to->setAttr(attr, a);
}

struct LowerToRt : bmsys::impl::BmsysLowerToRtBase<LowerToRt> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto maxBatch = module->getAttrOfType<IntegerAttr>("bmsys.max_batch");
    auto maxSeq = module->getAttrOfType<IntegerAttr>("bmsys.max_seq");
    if (!maxBatch || !maxSeq) {
      module.emitError("bmsys-lower-to-rt: the module has no shape bounds; run "
                       "bmsys-bound-shapes first");
      return signalPassFailure();
    }
    OpBuilder b(module.getContext());
    b.setInsertionPointToEnd(module.getBody());
    SmallVector<Operation *> erase;
    int64_t stateBytes = 0;
    // KV caches hold keys and values in the compute type (bmsys-mixed-precision).
    Type cacheType = b.getF32Type();
    if (auto compute = module->getAttrOfType<TypeAttr>("bmsys.compute_dtype"))
      cacheType = compute.getValue();

    // bmsys-offload: each host master and the parameter it belongs to.
    llvm::StringMap<StringAttr> masterParams;
    llvm::StringMap<ParamOp> params;
    for (auto param : module.getOps<ParamOp>())
      params[param.getSymName()] = param;
    for (auto master : module.getOps<HostMasterOp>())
      masterParams[master.getSymName()] = master.getParamAttr().getAttr();

    for (Operation &op : module.getBody()->getOperations()) {
      if (auto master = dyn_cast<HostMasterOp>(op)) {
        // The float32 master in host memory: loaded from the parameter's tensor
        // (this rank's flat shard with shard_ranks), saved by checkpoints.
        ParamOp param = params.lookup(master.getParam());
        if (!param) {
          master.emitOpError() << "'" << master.getParam() << "' does not name a bmsys.param";
          return signalPassFailure();
        }
        auto type = cast<RankedTensorType>(master.getType());
        b.setInsertionPoint(&op);
        auto weight = rt::WeightOp::create(b, op.getLoc(), master.getSymName(), type.getElementType(),
                                           type.getShape(), param.getFile(), param.getKey(),
                                           IntegerAttr(), DenseI64ArrayAttr());
        if (auto ranks = master.getShardRanksAttr(); ranks && ranks.getInt() > 1) {
          weight.setShardRanksAttr(ranks);
          weight.setFullShape(cast<RankedTensorType>(param.getType()).getShape());
        }
        weight->setAttr("placement", b.getStringAttr("host"));
        copyTensorParallel(param, weight);
        erase.push_back(&op);
      } else if (auto param = dyn_cast<ParamOp>(op)) {
        auto type = cast<RankedTensorType>(param.getType());
        b.setInsertionPoint(&op);
        auto weight = rt::WeightOp::create(b, op.getLoc(), param.getSymName(),
                                           type.getElementType(), type.getShape(),
                                           param.getFile(), param.getKey(), IntegerAttr(),
                                           DenseI64ArrayAttr());
        if (auto ranks = param->getAttrOfType<IntegerAttr>("zero_shards")) {
          int64_t shard = (type.getNumElements() + ranks.getInt() - 1) / ranks.getInt();
          weight.setShape(ArrayRef<int64_t>{shard});
          weight.setShardRanksAttr(ranks);
          weight.setFullShape(type.getShape());
        }
        copyTensorParallel(param, weight);
        if (auto stage = param->getAttrOfType<IntegerAttr>("pp_stage"))
          weight->setAttr("pp_stage", stage);
        erase.push_back(&op);
      } else if (auto cache = dyn_cast<KVCacheOp>(op)) {
        b.setInsertionPoint(&op);
        SmallVector<int64_t> shape{static_cast<int64_t>(cache.getMaxBatch()), static_cast<int64_t>(cache.getMaxSeq()),
                                   static_cast<int64_t>(cache.getNumKvHeads()),
                                   static_cast<int64_t>(cache.getHeadDim())};
        int64_t bytes = rt::elementBytes(cacheType);
        for (int64_t d : shape)
          bytes *= d;
        for (StringRef suffix : {".k", ".v"}) {
          rt::StateOp::create(b, op.getLoc(), (cache.getSymName() + suffix).str(), cacheType,
                              shape, stateBytes, bytes, "kv_cache", IntegerAttr(),
                              DenseI64ArrayAttr());
          stateBytes = alignUp(stateBytes + bytes, kStateAlignment);
        }
        erase.push_back(&op);
      } else if (auto state = dyn_cast<OptimizerStateOp>(op)) {
        b.setInsertionPoint(&op);
        auto type = cast<RankedTensorType>(state.getType());
        int64_t bytes = rt::elementBytes(type.getElementType()) * type.getNumElements();
        // bmsys-offload: a host state has memory of its own, not in the state pool.
        auto placement = state->getAttrOfType<StringAttr>("placement");
        bool host = placement && placement.getValue() == "host";
        auto rtState = rt::StateOp::create(b, op.getLoc(), state.getSymName(),
                                           type.getElementType(), type.getShape(),
                                           host ? 0 : stateBytes, bytes, "optimizer",
                                           IntegerAttr(), DenseI64ArrayAttr());
        if (host)
          rtState->setAttr("placement", placement);
        if (auto full = state->getAttrOfType<TypeAttr>("bmsys.full_type")) {
          auto fullType = cast<RankedTensorType>(full.getValue());
          rtState.setShardRanksAttr(module->getAttrOfType<IntegerAttr>("bmsys.data_parallel"));
          rtState.setFullShape(fullType.getShape());
        }
        copyTensorParallel(state, rtState);
        if (!host)
          stateBytes = alignUp(stateBytes + bytes, kStateAlignment);
        erase.push_back(&op);
      }
    }

    for (auto func : llvm::to_vector(module.getOps<func::FuncOp>())) {
      b.setInsertionPoint(func);
      FunctionLowering lowering(func, b, masterParams);
      if (failed(lowering.lower()))
        return signalPassFailure();
      erase.push_back(func);
    }
    for (Operation *op : erase)
      op->erase();

    module->setAttr("bmsys_rt.max_batch", maxBatch);
    module->setAttr("bmsys_rt.max_seq", maxSeq);
    module->setAttr("bmsys_rt.state_bytes", b.getI64IntegerAttr(stateBytes));
    if (auto ranks = module->getAttrOfType<IntegerAttr>("bmsys.data_parallel")) {
      module->setAttr("bmsys_rt.data_parallel", ranks);
      module->removeAttr("bmsys.data_parallel");
    }
    if (auto tp = module->getAttrOfType<IntegerAttr>("bmsys.tensor_parallel")) {
      module->setAttr("bmsys_rt.tensor_parallel", tp);
      module->removeAttr("bmsys.tensor_parallel");
    }
    for (StringRef name : {"pipeline_stages", "pipeline_micro_batches"})
      if (auto v = module->getAttrOfType<IntegerAttr>(("bmsys." + name).str())) {
        module->setAttr(("bmsys_rt." + name).str(), v);
        module->removeAttr(("bmsys." + name).str());
      }
    module->removeAttr("bmsys.max_batch");
    module->removeAttr("bmsys.max_seq");
  }
};
} // namespace
