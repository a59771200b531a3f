//===- TensorParallel.cpp - bmsys-tensor-parallel -------------------------===//
//
// Megatron-style tensor parallelism on `forward`, before bmsys-autodiff. The
// decisions are made per block from the dataflow, not from parameter names:
// the projections feeding an attention's q/k/v (through rope) are
// column-parallel and the linear reading the attention's result is
// row-parallel; a linear reading an elementwise product/activation of other
// linears (an MLP's down projection) is row-parallel and those linears are
// column-parallel. Any other linear inside a block is an error (it would have
// to be replicated, which this pass does not guess). Outside the blocks, the
// token embedding becomes vocab-parallel and the linear producing the logits
// column-parallel over the vocabulary.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/SetVector.h"

namespace bmsys {
#define GEN_PASS_DEF_BMSYSTENSORPARALLEL
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace {
/// The bmsys.weight a linear's weight or bias operand reads, looking through a
/// cast (bmsys-mixed-precision).
WeightOp weightOf(Value v) {
  if (auto cast = v.getDefiningOp<CastOp>())
    v = cast.getX();
  return v.getDefiningOp<WeightOp>();
}

RankedTensorType withDim(Type type, int64_t dim, int64_t size) {
  auto t = cast<RankedTensorType>(type);
  SmallVector<int64_t> shape(t.getShape());
  shape[dim] = size;
  return RankedTensorType::get(shape, t.getElementType());
}

struct TensorParallel : bmsys::impl::BmsysTensorParallelBase<TensorParallel> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (degree < 1) {
      module.emitError() << "bmsys-tensor-parallel: degree must be positive, got "
                         << static_cast<int64_t>(degree);
      return signalPassFailure();
    }
    if (module.lookupSymbol("train_step")) {
      module.emitError("bmsys-tensor-parallel: run it before bmsys-autodiff (the module already "
                       "has a 'train_step')");
      return signalPassFailure();
    }
    auto forward = module.lookupSymbol<func::FuncOp>("forward");
    if (!forward) {
      module.emitError("bmsys-tensor-parallel: no function 'forward'");
      return signalPassFailure();
    }
    if (degree == 1)
      return;
    if (failed(rewrite(module, forward)))
      return signalPassFailure();
    module->setAttr("bmsys.tensor_parallel",
                    IntegerAttr::get(IntegerType::get(&getContext(), 64), degree));
  }

  /// Splits dimension `dim` of parameter `param` (every read of it is
  /// retyped; consumers are retyped by propagateTypes).
  LogicalResult shardParam(ModuleOp module, Operation *user, WeightOp weight, int64_t dim) {
    auto param = module.lookupSymbol<ParamOp>(weight.getParam());
    if (!param)
      return user->emitOpError() << "reads an unknown parameter " << weight.getParam();
    auto type = cast<RankedTensorType>(param.getType());
    if (auto done = param->getAttrOfType<IntegerAttr>("tp_dim")) {
      if (done.getInt() != dim)
        return user->emitOpError() << "bmsys-tensor-parallel: parameter '" << param.getSymName()
                                   << "' would be split along dimension " << dim << " here and "
                                   << done.getInt() << " elsewhere";
      return success(); // tied weights: already split
    }
    if (type.getDimSize(dim) % degree != 0)
      return user->emitOpError() << "bmsys-tensor-parallel: dimension " << dim << " of '"
                                 << param.getSymName() << "' (" << type
                                 << ") is not divisible by degree " << static_cast<int64_t>(degree);
    auto local = withDim(type, dim, type.getDimSize(dim) / degree);
    param.setType(local);
    OpBuilder b(module.getContext());
    param->setAttr("tp_dim", b.getI64IntegerAttr(dim));
    param->setAttr("tp_ranks", b.getI64IntegerAttr(degree));
    // Every read, in every function, and the casts behind them.
    module.walk([&](WeightOp w) {
      if (w.getParam() != param.getSymName())
        return;
      w.getResult().setType(local);
      for (Operation *u : w->getUsers())
        if (auto c = dyn_cast<CastOp>(u))
          c.getResult().setType(RankedTensorType::get(
              local.getShape(), cast<RankedTensorType>(c.getType()).getElementType()));
    });
    return success();
  }

  LogicalResult shardLinear(ModuleOp module, LinearOp linear, bool column) {
    // The weight is [out, in] (or [in, out] with weight_transposed): a column-
    // parallel linear splits `out`, a row-parallel one `in`.
    int64_t outDim = linear.getWeightTransposed() ? 1 : 0;
    int64_t dim = column ? outDim : 1 - outDim;
    WeightOp w = weightOf(linear.getWeight());
    if (!w)
      return linear.emitOpError("bmsys-tensor-parallel: the weight is not a parameter");
    if (failed(shardParam(module, linear, w, dim)))
      return failure();
    if (linear->getNumOperands() > 2) {
      if (!column)
        return linear.emitOpError(
            "bmsys-tensor-parallel: a row-parallel linear with a bias is not supported");
      WeightOp bias = weightOf(linear->getOperand(2));
      if (!bias)
        return linear.emitOpError("bmsys-tensor-parallel: the bias is not a parameter");
      if (failed(shardParam(module, linear, bias, 0)))
        return failure();
    }
    return success();
  }

  /// tp_copy of each distinct input of the column-parallel linears, placed
  /// before the first of them.
  void insertCopies(ArrayRef<LinearOp> columns) {
    DenseMap<Value, Value> copies;
    for (LinearOp l : columns) {
      Value x = l.getX();
      Value &copy = copies[x];
      if (!copy) {
        LinearOp first = l;
        for (LinearOp o : columns)
          if (o.getX() == x && o->getBlock() == first->getBlock() && o->isBeforeInBlock(first))
            first = o;
        OpBuilder b(first);
        copy = TpCopyOp::create(b, l.getLoc(), x, b.getI64IntegerAttr(degree));
      }
      l->setOperand(0, copy);
    }
  }

  void insertAllReduce(Operation *op) {
    OpBuilder b(op->getContext());
    b.setInsertionPointAfter(op);
    Value partial = op->getResult(0);
    auto reduce = TpAllReduceOp::create(b, op->getLoc(), partial, b.getI64IntegerAttr(degree));
    partial.replaceAllUsesExcept(reduce, reduce);
  }

  LogicalResult rewriteBlock(ModuleOp module, BlockOp block) {
    Block &body = block.getBody().front();
    SmallVector<AttentionOp> attentions(body.getOps<AttentionOp>());
    SmallVector<LinearOp> linears(body.getOps<LinearOp>());
    llvm::SetVector<Operation *> columns, rows;

    for (AttentionOp att : attentions) {
      if (att.getNumHeads() % degree || att.getNumKvHeads() % degree)
        return att.emitOpError() << "bmsys-tensor-parallel: " << att.getNumHeads()
                                 << " query and " << att.getNumKvHeads()
                                 << " key/value heads cannot be split over "
                                 << static_cast<int64_t>(degree) << " ranks";
      for (Value operand : {att.getQ(), att.getK(), att.getV()}) {
        Value v = operand;
        if (auto rope = v.getDefiningOp<RopeOp>())
          v = rope.getX();
        auto l = v.getDefiningOp<LinearOp>();
        if (!l || l->getBlock() != &body)
          return att.emitOpError("bmsys-tensor-parallel: q, k and v must each be a linear of this "
                                 "block (optionally through rope); fused projections (slices) are "
                                 "not supported");
        columns.insert(l);
      }
      if (!att.getResult().hasOneUse())
        return att.emitOpError("bmsys-tensor-parallel: the attention result must feed one linear");
      auto out = dyn_cast<LinearOp>(*att.getResult().getUsers().begin());
      if (!out || out.getX() != att.getResult())
        return att.emitOpError("bmsys-tensor-parallel: the attention result must feed one linear");
      rows.insert(out);
    }

    // MLPs: a linear whose input is an elementwise function of other linears.
    for (LinearOp l : linears) {
      if (columns.contains(l) || rows.contains(l))
        continue;
      Operation *def = l.getX().getDefiningOp();
      if (!def || !isa<MulOp, SiluOp, GeluOp>(def))
        continue;
      SmallVector<Value> work{l.getX()};
      llvm::SetVector<Operation *> feeding;
      while (!work.empty()) {
        Value v = work.pop_back_val();
        Operation *d = v.getDefiningOp();
        if (auto src = dyn_cast_or_null<LinearOp>(d); src && d->getBlock() == &body) {
          feeding.insert(src);
        } else if (d && isa<MulOp, SiluOp, GeluOp>(d)) {
          work.append(d->getOperands().begin(), d->getOperands().end());
        } else {
          return l.emitOpError("bmsys-tensor-parallel: the input of this down projection depends "
                               "on a value that is not a linear of the block");
        }
      }
      rows.insert(l);
      columns.insert(feeding.begin(), feeding.end());
    }

    for (LinearOp l : linears)
      if (!columns.contains(l) && !rows.contains(l))
        return l.emitOpError("bmsys-tensor-parallel: cannot tell whether this linear is column- "
                             "or row-parallel (it is neither an attention nor an MLP projection)");
    for (Operation *op : columns)
      if (rows.contains(op))
        return op->emitOpError("bmsys-tensor-parallel: this linear would be both column- and "
                               "row-parallel");

    SmallVector<LinearOp> columnOps;
    for (Operation *op : columns) {
      columnOps.push_back(cast<LinearOp>(op));
      if (failed(shardLinear(module, cast<LinearOp>(op), /*column=*/true)))
        return failure();
    }
    for (Operation *op : rows)
      if (failed(shardLinear(module, cast<LinearOp>(op), /*column=*/false)))
        return failure();
    insertCopies(columnOps);
    for (Operation *op : rows)
      insertAllReduce(op);
    OpBuilder b(module.getContext());
    for (AttentionOp att : attentions) {
      att.setNumHeadsAttr(b.getI64IntegerAttr(att.getNumHeads() / degree));
      att.setNumKvHeadsAttr(b.getI64IntegerAttr(att.getNumKvHeads() / degree));
    }
    return success();
  }

  LogicalResult rewrite(ModuleOp module, func::FuncOp forward) {
    Block &entry = forward.getBody().front();
    auto ret = cast<func::ReturnOp>(entry.getTerminator());
    const int logitsIndex = resultIndex(forward, "logits");
    if (logitsIndex < 0)
      return forward.emitError("bmsys-tensor-parallel: 'forward' has no result named \"logits\"");
    if (forward.getNumArguments() < 1)
      return forward.emitError("bmsys-tensor-parallel: 'forward' takes no token ids");
    Value ids = entry.getArgument(0);

    // The token embedding: vocab-parallel.
    SmallVector<EmbeddingOp> embeddings;
    for (EmbeddingOp e : entry.getOps<EmbeddingOp>())
      if (e.getIds() == ids)
        embeddings.push_back(e);
    if (embeddings.size() != 1)
      return forward.emitError("bmsys-tensor-parallel: expected one token embedding in 'forward'");
    EmbeddingOp embedding = embeddings.front();
    WeightOp table = weightOf(embedding.getTable());
    if (!table)
      return embedding.emitOpError("bmsys-tensor-parallel: the table is not a parameter");
    if (failed(shardParam(module, embedding, table, 0)))
      return failure();
    embedding.setVocabShardsAttr(OpBuilder(embedding).getI64IntegerAttr(degree));
    insertAllReduce(embedding);

    // The logits: a column-parallel linear over the vocabulary, never gathered.
    auto head = ret.getOperand(logitsIndex).getDefiningOp<LinearOp>();
    if (!head || head->getBlock() != &entry)
      return forward.emitError("bmsys-tensor-parallel: the logits must be the result of a linear "
                               "(the output projection) in 'forward'");
    if (failed(shardLinear(module, head, /*column=*/true)))
      return failure();
    insertCopies({head});

    SmallVector<BlockOp> blocks(entry.getOps<BlockOp>());
    if (blocks.empty())
      return forward.emitError("bmsys-tensor-parallel: 'forward' has no bmsys.block (layers)");
    for (BlockOp block : blocks)
      if (failed(rewriteBlock(module, block)))
        return failure();

    propagateTypes(entry);
    forward.setType(FunctionType::get(module.getContext(), forward.getArgumentTypes(),
                                      ret.getOperandTypes()));
    forward.setResultAttr(logitsIndex, "bmsys.vocab_shards",
                          IntegerAttr::get(IntegerType::get(module.getContext(), 64), degree));
    return success();
  }

  /// Result types after the split: every op of the dialect derives its result
  /// from its first operand (and a linear's width from its weight).
  void propagateTypes(Block &block) {
    for (Operation &op : block) {
      if (auto linear = dyn_cast<LinearOp>(op)) {
        auto w = cast<RankedTensorType>(linear.getWeight().getType());
        int64_t out = w.getDimSize(linear.getWeightTransposed() ? 1 : 0);
        auto x = cast<RankedTensorType>(linear.getX().getType());
        linear.getResult().setType(withDim(
            RankedTensorType::get(x.getShape(),
                                  cast<RankedTensorType>(linear.getType()).getElementType()),
            x.getRank() - 1, out));
      } else if (isa<RopeOp, SiluOp, GeluOp, MulOp, AddOp, TpCopyOp, TpAllReduceOp, AttentionOp>(
                     op)) {
        op.getResult(0).setType(op.getOperand(0).getType());
      } else if (auto c = dyn_cast<CastOp>(op)) {
        auto from = cast<RankedTensorType>(c.getX().getType());
        c.getResult().setType(RankedTensorType::get(
            from.getShape(), cast<RankedTensorType>(c.getType()).getElementType()));
      } else if (auto blk = dyn_cast<BlockOp>(op)) {
        Block &body = blk.getBody().front();
        propagateTypes(body);
        for (auto [r, y] : llvm::zip(blk.getResults(), body.getTerminator()->getOperands()))
          r.setType(y.getType());
      }
    }
  }
};
} // namespace
