//===- AddKVCache.cpp - bmsys-add-kv-cache --------------------------------===//
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace bmsys {
#define GEN_PASS_DEF_BMSYSADDKVCACHE
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace {
struct AddKVCache : bmsys::impl::BmsysAddKVCacheBase<AddKVCache> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto maxBatch = module->getAttrOfType<IntegerAttr>("bmsys.max_batch");
    auto maxSeq = module->getAttrOfType<IntegerAttr>("bmsys.max_seq");
    if (!maxBatch || !maxSeq) {
      module.emitError("bmsys-add-kv-cache: the module has no shape bounds; run "
                       "bmsys-bound-shapes first");
      return signalPassFailure();
    }
    SymbolTable symbols(module);
    OpBuilder builder(module.getBodyRegion());
    builder.setInsertionPointToStart(module.getBody());
    SmallVector<StringRef> names;
    StringRef(functions).split(names, ',', -1, /*KeepEmpty=*/false);
    int index = 0;
    module.walk([&](AttentionOp op) {
      auto func = op->getParentOfType<func::FuncOp>();
      if (!func || !llvm::is_contained(names, func.getSymName()))
        return;
      if (op.getCache())
        return;
      auto cache = KVCacheOp::create(builder, op.getLoc(), "kv" + std::to_string(index++),
                                     maxBatch.getInt(), maxSeq.getInt(), op.getNumKvHeads(),
                                     op.getHeadDim());
      StringAttr name = symbols.insert(cache); // renames on a clash
      op.setCacheAttr(FlatSymbolRefAttr::get(name));
    });
  }
};
} // namespace
