//===- InlineBlocks.cpp - bmsys-inline-blocks -----------------------------===//
#include "passes/MemoryAnalysis.h"
#include "passes/Passes.h"

namespace bmsys {
#define GEN_PASS_DEF_BMSYSINLINEBLOCKS
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace {
struct InlineBlocks : bmsys::impl::BmsysInlineBlocksBase<InlineBlocks> {
  void runOnOperation() override {
    SmallVector<BlockOp> blocks;
    // Post-order: nested blocks are inlined into their parent first.
    getOperation().walk([&](BlockOp op) { blocks.push_back(op); });
    for (BlockOp op : blocks)
      inlineBlock(op);
  }
};
} // namespace

SmallVector<Operation *> bmsys::inlineBlock(BlockOp op) {
  Block &body = op.getBody().front();
  auto yield = cast<YieldOp>(body.getTerminator());
  SmallVector<Value> results(yield.getValues());
  yield.erase();
  for (auto [arg, input] : llvm::zip(body.getArguments(), op.getInputs()))
    arg.replaceAllUsesWith(input);
  SmallVector<Operation *> ops;
  // The block's name goes into each op's location: the memory report
  // attributes activations to blocks through it (after lowering too).
  for (Operation &inner : body) {
    inner.setLoc(tagBlockLocation(inner.getLoc(), op.getName()));
    ops.push_back(&inner);
  }
  op->getBlock()->getOperations().splice(Block::iterator(op), body.getOperations());
  op->replaceAllUsesWith(results);
  op.erase();
  return ops;
}
