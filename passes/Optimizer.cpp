//===- Optimizer.cpp - bmsys-optimizer ------------------------------------===//
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace bmsys {
#define GEN_PASS_DEF_BMSYSOPTIMIZER
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace {
struct Optimizer : bmsys::impl::BmsysOptimizerBase<Optimizer> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (optimizer != "adamw" && optimizer != "sgd") {
      module.emitError() << "bmsys-optimizer: optimizer must be adamw or sgd, got '"
                         << optimizer << "'";
      return signalPassFailure();
    }
    for (auto func : llvm::to_vector(module.getOps<func::FuncOp>()))
      if (failed(rewrite(module, func)))
        return signalPassFailure();
  }

  LogicalResult rewrite(ModuleOp module, func::FuncOp func) {
    SmallVector<GradOp> markers(func.getOps<GradOp>());
    if (markers.empty())
      return success();
    OpBuilder b(module.getContext());
    SymbolTable symbols(module);

    b.setInsertionPoint(markers.front());
    SmallVector<Value> grads;
    for (GradOp g : markers)
      grads.push_back(g.getGrad());
    auto scalar = RankedTensorType::get({}, b.getF32Type());
    auto normOp = GlobalNormOp::create(b, markers.front().getLoc(), scalar, grads);
    Value norm = normOp;
    // Tensor parallelism: gradients of sharded parameters are summed over the
    // tensor-parallel group in the norm (replicated ones are not).
    if (auto tp = module->getAttrOfType<IntegerAttr>("bmsys.tensor_parallel"); tp && tp.getInt() > 1) {
      SmallVector<int64_t> flags;
      for (GradOp g : markers) {
        auto param = symbols.lookup<ParamOp>(g.getParam());
        flags.push_back(param && param->hasAttr("tp_dim") ? 1 : 0);
      }
      normOp.setTpShardedAttr(b.getI64ArrayAttr(flags));
    }

    auto f64 = [&](double v) { return b.getF64FloatAttr(v); };
    bool lossScaling = module->hasAttr("bmsys.loss_scaling");
    for (GradOp marker : markers) {
      auto param = symbols.lookup<ParamOp>(marker.getParam());
      if (!param)
        return marker.emitOpError("names no bmsys.param");
      SmallVector<Attribute> states;
      SmallVector<StringRef> suffixes =
          optimizer == "adamw" ? SmallVector<StringRef>{"exp_avg", "exp_avg_sq"}
                               : SmallVector<StringRef>{"momentum_buffer"};
      Operation *after = param;
      for (StringRef suffix : suffixes) {
        std::string name = (param.getSymName() + "." + suffix).str();
        auto existing = symbols.lookup<OptimizerStateOp>(name);
        if (!existing) {
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPointAfter(after);
          existing = OptimizerStateOp::create(b, param.getLoc(), name, param.getType());
          // A tensor-parallel shard's state is sharded the same way (checkpoints gather it).
          for (StringRef attr : {"tp_dim", "tp_ranks"})
            if (Attribute a = param->getAttr(attr))
              existing->setAttr(attr, a);
        }
        after = existing;
        states.push_back(FlatSymbolRefAttr::get(existing.getSymNameAttr()));
      }
      b.setInsertionPoint(marker);
      Location loc = marker.getLoc();
      if (optimizer == "adamw")
        AdamWOp::create(b, loc, marker.getParamAttr(), marker.getGrad(), norm,
                        b.getArrayAttr(states), f64(lr), f64(beta1), f64(beta2), f64(eps),
                        f64(weightDecay), f64(maxGradNorm), b.getStringAttr(schedule),
                        b.getI64IntegerAttr(warmupSteps), b.getI64IntegerAttr(totalSteps),
                        f64(minLr), lossScaling ? b.getUnitAttr() : UnitAttr(),
                        IntegerAttr(), UnitAttr(), UnitAttr());
      else
        SGDOp::create(b, loc, marker.getParamAttr(), marker.getGrad(), norm,
                      b.getArrayAttr(states), f64(lr), f64(momentum), f64(weightDecay),
                      f64(maxGradNorm), b.getStringAttr(schedule),
                      b.getI64IntegerAttr(warmupSteps), b.getI64IntegerAttr(totalSteps),
                      f64(minLr), lossScaling ? b.getUnitAttr() : UnitAttr(),
                        IntegerAttr(), UnitAttr());
      marker.erase();
    }

    // Report the norm: a `grad_norm` result.
    auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
    ret->insertOperands(ret.getNumOperands(), norm);
    unsigned index = func.getNumResults();
    if (failed(func.insertResult(index, scalar,
                                 b.getDictionaryAttr({b.getNamedAttr("bmsys.name",
                                                                     b.getStringAttr("grad_norm"))}))))
      return func.emitError("bmsys-optimizer: cannot add the grad_norm result to '")
             << func.getSymName() << "'";
    return success();
  }
};
} // namespace
