//===- Offload.cpp - bmsys-offload ----------------------------------------===//
//
// Moves the optimizer step to the host (docs/distributed.md "Optimizer
// offload"). The updates (bmsys.adamw) name each trained parameter, its
// gradient and the global norm; everything this pass inserts is placed
// relative to those values: the device -> host copy of a gradient right after
// the gradient (or its ZeRO reduction) exists, the host -> device copy of the
// updated master right after its update.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace bmsys {
#define GEN_PASS_DEF_BMSYSOFFLOAD
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace {

struct Offload : bmsys::impl::BmsysOffloadBase<Offload> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    Builder types(module.getContext());
    Type device;
    if (paramDtype == "auto") {
      auto compute = module->getAttrOfType<TypeAttr>("bmsys.compute_dtype");
      device = compute ? compute.getValue() : types.getF32Type();
    } else if (paramDtype == "f32") {
      device = types.getF32Type();
    } else if (paramDtype == "bf16") {
      device = types.getBF16Type();
    } else if (paramDtype == "f16") {
      device = types.getF16Type();
    } else {
      module.emitError() << "bmsys-offload: param-dtype must be auto, f32, bf16 or f16, got '"
                         << paramDtype << "'";
      return signalPassFailure();
    }
    auto step = module.lookupSymbol<func::FuncOp>("train_step");
    if (!step) {
      module.emitError("bmsys-offload: no 'train_step' (run bmsys-autodiff and bmsys-optimizer first)");
      return signalPassFailure();
    }
    if (failed(rewrite(module, step, device)))
      return signalPassFailure();
  }

  LogicalResult rewrite(ModuleOp module, func::FuncOp step, Type device) {
    SmallVector<AdamWOp> updates;
    WalkResult walk = step.walk([&](Operation *op) {
      if (auto sgd = dyn_cast<SGDOp>(op)) {
        sgd.emitOpError() << "of '" << sgd.getParam()
                          << "' has no CPU implementation: bmsys-offload offloads adamw only";
        return WalkResult::interrupt();
      }
      if (auto adamw = dyn_cast<AdamWOp>(op)) {
        if (adamw.getOffload()) {
          adamw.emitOpError("is offloaded already (bmsys-offload runs once)");
          return WalkResult::interrupt();
        }
        updates.push_back(adamw);
      }
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return failure();
    if (updates.empty())
      return step.emitError("bmsys-offload: 'train_step' updates no parameter");
    Value norm = updates.front().getNorm();
    for (AdamWOp u : updates)
      if (u.getNorm() != norm)
        return u.emitOpError("bmsys-offload: the updates must share one global norm");

    OpBuilder b(module.getContext());
    SymbolTable symbols(module);
    // The norm is needed on the host by every update: one copy, once it is known.
    b.setInsertionPointAfterValue(norm);
    Value hostNorm = ToHostOp::create(b, norm.getLoc(), norm.getType(), norm,
                                      b.getStringAttr("global_norm.host"));

    DenseMap<Value, Value> hostGrads;
    SmallVector<ParamOp> params;
    for (AdamWOp update : updates) {
      auto param = symbols.lookup<ParamOp>(update.getParam());
      if (!param)
        return update.emitOpError() << "'" << update.getParam() << "' does not name a bmsys.param";
      std::optional<int64_t> zero = update.getZeroRanks();
      bool sharded = zero && *zero > 1;
      std::string masterName = (param.getSymName() + ".master").str();
      if (symbols.lookup(masterName))
        return param.emitOpError() << "bmsys-offload: the symbol '" << masterName
                                   << "' of its host master exists already";
      // The master, declared after the parameter's last optimizer state.
      Operation *after = param;
      for (Attribute s : update.getState())
        if (Operation *state = symbols.lookup(cast<FlatSymbolRefAttr>(s).getValue())) {
          state->setAttr("placement", b.getStringAttr("host"));
          if (after->isBeforeInBlock(state))
            after = state;
        }
      b.setInsertionPointAfter(after);
      // Its type is the gradient's (this rank's flat shard with ZeRO).
      auto masterType = cast<RankedTensorType>(update.getGrad().getType());
      if (masterType != hostMasterType(param, sharded ? zero : std::nullopt))
        return update.emitOpError() << "bmsys-offload: the gradient of '" << param.getSymName()
                                    << "' has type " << masterType
                                    << ", not a float32 parameter or its ZeRO shard";
      auto master = HostMasterOp::create(
          b, param.getLoc(), b.getStringAttr(masterName), FlatSymbolRefAttr::get(param.getSymNameAttr()),
          TypeAttr::get(masterType), sharded ? b.getI64IntegerAttr(*zero) : IntegerAttr());
      symbols.insert(master);
      auto masterRef = FlatSymbolRefAttr::get(master.getSymNameAttr());

      // The gradient goes to the host as soon as it is complete.
      Value grad = update.getGrad();
      Value &hostGrad = hostGrads[grad];
      if (!hostGrad) {
        b.setInsertionPointAfterValue(grad);
        hostGrad = ToHostOp::create(b, grad.getLoc(), grad.getType(), grad,
                                    b.getStringAttr((param.getSymName() + ".grad").str()));
      }
      update.setParamAttr(masterRef);
      update.getGradMutable().set(hostGrad);
      update.getNormMutable().set(hostNorm);
      update.setOffload(true);
      if (sharded)
        update.setParamSharded(true);

      // The updated master goes back to the device parameter at once (before
      // ZeRO-1/2's sync_param, which bmsys-zero put right after the update).
      b.setInsertionPointAfter(update);
      UploadMasterOp::create(b, update.getLoc(), masterRef,
                             sharded ? b.getI64IntegerAttr(*zero) : IntegerAttr(),
                             param->hasAttr("zero_shards") ? b.getUnitAttr() : UnitAttr());
      params.push_back(param);
    }

    if (!device.isF32())
      for (ParamOp param : params)
        if (failed(narrowDeviceParam(module, param, device)))
          return failure();
    return success();
  }

  /// param-dtype bf16/f16: the device parameter takes the compute type. Each
  /// read (bmsys.weight, or ZeRO-3's weight_shard and all_gather) is then of
  /// that type, and the casts bmsys-mixed-precision put after the reads fold.
  LogicalResult narrowDeviceParam(ModuleOp module, ParamOp param, Type device) {
    param.setType(withElementType(param.getType(), device));
    SmallVector<Value> reads;
    module.walk([&](Operation *op) {
      FlatSymbolRefAttr ref;
      if (auto w = dyn_cast<WeightOp>(op))
        ref = w.getParamAttr();
      else if (auto s = dyn_cast<WeightShardOp>(op))
        ref = s.getParamAttr();
      if (ref && ref.getValue() == param.getSymName()) {
        op->getResult(0).setType(withElementType(op->getResult(0).getType(), device));
        reads.push_back(op->getResult(0));
      }
    });
    while (!reads.empty()) {
      Value v = reads.pop_back_val();
      for (Operation *user : llvm::make_early_inc_range(v.getUsers())) {
        if (auto gather = dyn_cast<AllGatherOp>(user)) {
          gather.getResult().setType(withElementType(gather.getType(), device));
          reads.push_back(gather.getResult());
        } else if (auto c = dyn_cast<CastOp>(user); c && c.getType() == v.getType()) {
          c.getResult().replaceAllUsesWith(v);
          c.erase();
        } else {
          return user->emitOpError()
                 << "reads parameter '" << param.getSymName() << "' as float32, but bmsys-offload "
                 << "keeps it on the device as " << device
                 << " (param-dtype): every read must be a cast to it (bmsys-mixed-precision)";
        }
      }
    }
    return success();
  }
};
} // namespace
