//===- Prune.cpp - bmsys-prune --------------------------------------------===//
//
// Masks are decided once, at compile time, from the weights' magnitudes (or,
// for heads, from importance over a calibration set), and kept as parameters
// beside the weights they mask, so they survive checkpoints and stay visible in
// the IR. Layer pruning removes whole blocks instead.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "frontends/hf/Safetensors.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Regex.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

namespace bmsys {
#define GEN_PASS_DEF_BMSYSPRUNE
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace {
/// 1 where the weight is kept. `rows` x `cols`, groups of 4 along `cols`.
std::vector<float> makeMask(const std::vector<float> &w, int64_t rows, int64_t cols,
                            StringRef method, double sparsity) {
  std::vector<float> mask(w.size(), 1.0f);
  if (method == "2:4") {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c + 4 <= cols; c += 4) {
        int64_t base = r * cols + c;
        std::array<int, 4> order{0, 1, 2, 3};
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
          return std::fabs(w[base + a]) > std::fabs(w[base + b]);
        });
        mask[base + order[2]] = mask[base + order[3]] = 0.0f;
      }
    return mask;
  }
  size_t pruned = static_cast<size_t>(std::floor(sparsity * w.size()));
  std::vector<size_t> index(w.size());
  std::iota(index.begin(), index.end(), 0);
  std::stable_sort(index.begin(), index.end(),
                   [&](size_t a, size_t b) { return std::fabs(w[a]) < std::fabs(w[b]); });
  for (size_t i = 0; i < pruned; ++i)
    mask[index[i]] = 0.0f;
  return mask;
}

hf::TensorData f32Tensor(const std::vector<float> &values, ArrayRef<int64_t> shape) {
  hf::TensorData t{"F32", shape.vec(), std::vector<char>(values.size() * 4)};
  std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

/// A parameter's values as f32 and its shape; an error on the param where the file
/// cannot give them.
FailureOr<std::vector<float>> readParam(ParamOp param, std::vector<int64_t> &shape) {
  auto w = hf::readTensorAsF32(param.getFile(), param.getKey(), &shape);
  if (!w) {
    param.emitError() << "bmsys-prune: " << llvm::toString(w.takeError());
    return failure();
  }
  return std::move(*w);
}

/// A weight to mask: its values with the mask applied, and the mask.
struct Masked {
  ParamOp param;
  std::vector<int64_t> shape;
  std::vector<float> pruned, mask;
};

/// For each calibration batch, `sum_j W[j, c] * dL/dW[j, c]` for every input
/// channel c of a linear's weight (`[out, in]`, or `[in, out]` when
/// transposed). Summed over a head's channels this is `Att_hᵀ dL/dAtt_h`: the
/// derivative of the loss by a gate on the head's output.
FailureOr<std::vector<std::vector<double>>>
channelTaylor(ParamOp param, bool transposed, ArrayRef<std::string> calibration) {
  std::vector<int64_t> shape;
  auto w = readParam(param, shape);
  if (failed(w))
    return failure();
  int64_t rows = shape[0], cols = shape[1];
  int64_t in = transposed ? rows : cols;
  std::vector<std::vector<double>> result;
  for (const std::string &file : calibration) {
    std::string key = ("grad." + param.getKey()).str();
    std::vector<int64_t> gshape;
    auto g = hf::readTensorAsF32(file, key, &gshape);
    if (!g) {
      param.emitError() << "bmsys-prune: calibration file " << file << ": "
                        << llvm::toString(g.takeError())
                        << " (compile train_step with return-grads)";
      return failure();
    }
    if (gshape != shape) {
      param.emitError() << "bmsys-prune: calibration file " << file << ": '" << key
                        << "' has another shape than the parameter";
      return failure();
    }
    std::vector<double> s(in, 0.0);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j)
        s[transposed ? i : j] += double((*w)[i * cols + j]) * (*g)[i * cols + j];
    result.push_back(std::move(s));
  }
  return result;
}

/// The parameter a linear reads directly (not through a mask or a cast).
ParamOp directParam(SymbolTable &symbols, LinearOp linear) {
  auto weight = linear.getWeight().getDefiningOp<WeightOp>();
  return weight ? symbols.lookup<ParamOp>(weight.getParam()) : ParamOp();
}

struct Prune : bmsys::impl::BmsysPruneBase<Prune> {
  using Base::Base;

  std::string outputFile(ParamOp first) {
    if (!output.empty())
      return output;
    llvm::SmallString<256> path(first.getFile());
    llvm::sys::path::remove_filename(path);
    llvm::sys::path::append(path, "model.pruned.safetensors");
    return path.str().str();
  }

  /// Writes the pruned weights and masks, adds the mask parameters and makes
  /// every read of a masked weight `w * mask`.
  LogicalResult applyMasks(ModuleOp module, std::vector<Masked> &chosen) {
    if (chosen.empty())
      return success();
    std::string file = outputFile(chosen.front().param);
    SymbolTable symbols(module);
    OpBuilder b(module.getContext());
    std::vector<std::pair<std::string, hf::TensorData>> tensors;
    DenseMap<ParamOp, ParamOp> masks;
    for (Masked &m : chosen) {
      ParamOp param = m.param;
      std::string key = param.getKey().str(), maskKey = key + ".mask";
      tensors.emplace_back(key, f32Tensor(m.pruned, m.shape));
      tensors.emplace_back(maskKey, f32Tensor(m.mask, m.shape));
      b.setInsertionPointAfter(param);
      auto maskParam = ParamOp::create(b, param.getLoc(), (param.getSymName() + ".mask").str(),
                                       param.getType(), file, maskKey);
      maskParam->setAttr("bmsys.frozen", b.getUnitAttr());
      param.setFile(file);
      param->setAttr("bmsys.prune",
                     b.getDictionaryAttr(
                         {b.getNamedAttr("method", b.getStringAttr(method)),
                          b.getNamedAttr("mask", FlatSymbolRefAttr::get(
                                                     maskParam.getSymNameAttr()))}));
      masks[param] = maskParam;
    }
    // Sorted by name, as safetensors writers do.
    llvm::sort(tensors, [](auto &a, auto &b) { return a.first < b.first; });
    if (auto err = hf::writeSafetensors(file, tensors)) {
      module.emitError() << "bmsys-prune: " << llvm::toString(std::move(err));
      return failure();
    }

    // Every read of a pruned weight is masked.
    SmallVector<WeightOp> reads;
    module.walk([&](WeightOp weight) { reads.push_back(weight); });
    for (WeightOp weight : reads) {
      auto param = symbols.lookup<ParamOp>(weight.getParam());
      ParamOp mask = param ? masks.lookup(param) : ParamOp();
      if (!mask)
        continue;
      b.setInsertionPointAfter(weight);
      Value m = WeightOp::create(b, weight.getLoc(), weight.getType(),
                                 FlatSymbolRefAttr::get(mask.getSymNameAttr()));
      auto masked = MulOp::create(b, weight.getLoc(), weight, m);
      weight.getResult().replaceAllUsesExcept(masked, masked);
    }
    return success();
  }

  /// Magnitude and 2:4: a mask per linear weight.
  LogicalResult pruneUnstructured(ModuleOp module) {
    llvm::Regex pattern(params.empty() ? std::string(".*") : std::string(params));
    std::string regexError;
    if (!pattern.isValid(regexError)) {
      module.emitError() << "bmsys-prune: params is not a valid regular expression: "
                         << regexError;
      return failure();
    }
    // Linear weights, with the layout of their (first) use.
    SymbolTable symbols(module);
    llvm::MapVector<ParamOp, bool> linears; // -> weight_transposed
    module.walk([&](LinearOp linear) {
      ParamOp param = directParam(symbols, linear);
      if (param && !param->hasAttr("bmsys.prune") && pattern.match(param.getKey()))
        linears.insert({param, linear.getWeightTransposed()});
    });
    std::vector<Masked> chosen;
    for (auto [param, transposed] : linears) {
      std::vector<int64_t> shape;
      auto w = readParam(param, shape);
      if (failed(w))
        return failure();
      // Groups of four run along the input dimension: columns of an [out, in]
      // weight, rows of GPT-2's [in, out] one (pruned as its transpose).
      int64_t rows = shape[0], cols = shape[1];
      std::vector<float> values = *w;
      if (transposed) {
        for (int64_t i = 0; i < rows; ++i)
          for (int64_t j = 0; j < cols; ++j)
            values[j * rows + i] = (*w)[i * cols + j];
        std::swap(rows, cols);
      }
      if (method == "2:4" && cols % 4) {
        param.emitError() << "bmsys-prune: 2:4 pruning needs an input dimension divisible by 4, "
                          << "'" << param.getKey() << "' has " << cols;
        return failure();
      }
      std::vector<float> mask = makeMask(values, rows, cols, method, sparsity);
      if (transposed) { // back to the stored layout
        std::vector<float> back(mask.size());
        for (int64_t i = 0; i < rows; ++i)
          for (int64_t j = 0; j < cols; ++j)
            back[j * rows + i] = mask[i * cols + j];
        mask = std::move(back);
      }
      std::vector<float> pruned(*w);
      for (size_t i = 0; i < pruned.size(); ++i)
        pruned[i] *= mask[i];
      chosen.push_back({param, shape, std::move(pruned), std::move(mask)});
    }
    return applyMasks(module, chosen);
  }

  /// Heads: in every attention, the `count` least important query heads are
  /// masked out of the output projection.
  LogicalResult pruneHeads(ModuleOp module) {
    SymbolTable symbols(module);
    SmallVector<AttentionOp> attentions;
    module.walk([&](AttentionOp a) { attentions.push_back(a); });
    std::vector<Masked> chosen;
    OpBuilder b(module.getContext());
    for (AttentionOp attn : attentions) {
      int64_t heads = attn.getNumHeads(), kvHeads = attn.getNumKvHeads(),
              dim = attn.getHeadDim(), group = heads / kvHeads;
      LinearOp proj;
      for (Operation *user : attn->getUsers())
        if (auto l = dyn_cast<LinearOp>(user); l && l.getX() == attn.getResult())
          proj = l;
      ParamOp param = proj ? directParam(symbols, proj) : ParamOp();
      if (!param || param->hasAttr("bmsys.prune")) {
        attn.emitError() << "bmsys-prune: heads: the attention's output must go to a linear "
                            "reading an unpruned parameter (run method=heads before other "
                            "pruning)";
        return failure();
      }
      if (group > 1 ? (count % kvHeads || count / kvHeads >= group) : count >= heads) {
        attn.emitError() << "bmsys-prune: heads: cannot remove count=" << static_cast<int64_t>(count) << " of "
                         << heads << " query heads with " << kvHeads
                         << " key/value heads (with grouped-query attention, count must be a "
                            "multiple of num_kv_heads and leave a head in every group)";
        return failure();
      }
      auto taylor = channelTaylor(param, proj.getWeightTransposed(), calibration);
      if (failed(taylor))
        return failure();
      std::vector<double> importance(heads, 0.0);
      for (const std::vector<double> &batch : *taylor)
        for (int64_t h = 0; h < heads; ++h) {
          double sum = 0;
          for (int64_t c = h * dim; c < (h + 1) * dim; ++c)
            sum += batch[c];
          importance[h] += std::fabs(sum) / taylor->size();
        }
      // The least important heads: overall, or per key/value group.
      SmallVector<int64_t> pruned;
      int64_t groups = group > 1 ? kvHeads : 1, size = group > 1 ? group : heads;
      int64_t perGroup = group > 1 ? count / kvHeads : count;
      for (int64_t g = 0; g < groups; ++g) {
        std::vector<int64_t> order(size);
        std::iota(order.begin(), order.end(), g * size);
        std::stable_sort(order.begin(), order.end(),
                         [&](int64_t x, int64_t y) { return importance[x] < importance[y]; });
        pruned.append(order.begin(), order.begin() + perGroup);
      }
      llvm::sort(pruned);

      std::vector<int64_t> shape;
      auto w = readParam(param, shape);
      if (failed(w))
        return failure();
      std::vector<float> mask(w->size(), 1.0f);
      int64_t rows = shape[0], cols = shape[1];
      for (int64_t h : pruned)
        for (int64_t c = h * dim; c < (h + 1) * dim; ++c)
          for (int64_t j = 0; j < (proj.getWeightTransposed() ? cols : rows); ++j)
            mask[proj.getWeightTransposed() ? c * cols + j : j * cols + c] = 0.0f;
      std::vector<float> values = *w;
      for (size_t i = 0; i < values.size(); ++i)
        values[i] *= mask[i];
      chosen.push_back({param, shape, std::move(values), std::move(mask)});
      attn->setAttr("bmsys.pruned_heads", b.getDenseI64ArrayAttr(pruned));
      attn->setAttr("bmsys.head_importance", b.getDenseF64ArrayAttr(importance));
    }
    return applyMasks(module, chosen);
  }

  /// Layers: the `count` least important blocks are removed.
  LogicalResult pruneLayers(ModuleOp module) {
    SymbolTable symbols(module);
    SmallVector<BlockOp> blocks;
    module.walk([&](BlockOp block) { blocks.push_back(block); });
    if (count >= static_cast<int64_t>(blocks.size())) {
      module.emitError() << "bmsys-prune: layers: cannot remove count=" << static_cast<int64_t>(count) << " of "
                         << blocks.size() << " blocks";
      return failure();
    }
    std::vector<double> importance;
    for (BlockOp block : blocks) {
      if (block.getNumResults() != 1 || block.getInputs().empty() ||
          block.getInputs()[0].getType() != block.getResult(0).getType()) {
        block.emitError() << "bmsys-prune: layers: block '" << block.getName()
                          << "' is not a residual layer (one result, of its first input's "
                             "type)";
        return failure();
      }
      // The residual branches' output projections: linears added to the stream.
      std::vector<double> perBatch(calibration.size(), 0.0);
      bool any = false;
      WalkResult walk = block.walk([&](LinearOp linear) {
        if (!llvm::any_of(linear->getUsers(), [](Operation *u) { return isa<AddOp>(u); }))
          return WalkResult::advance();
        ParamOp param = directParam(symbols, linear);
        if (!param) {
          linear.emitError() << "bmsys-prune: layers: run layer pruning before other pruning "
                                "of the layer's output projections";
          return WalkResult::interrupt();
        }
        auto taylor = channelTaylor(param, linear.getWeightTransposed(), calibration);
        if (failed(taylor))
          return WalkResult::interrupt();
        for (size_t i = 0; i < taylor->size(); ++i)
          perBatch[i] += std::accumulate((*taylor)[i].begin(), (*taylor)[i].end(), 0.0);
        any = true;
        return WalkResult::advance();
      });
      if (walk.wasInterrupted())
        return failure();
      if (!any) {
        block.emitError() << "bmsys-prune: layers: block '" << block.getName()
                          << "' has no linear feeding a residual add";
        return failure();
      }
      double mean = 0;
      for (double v : perBatch)
        mean += std::fabs(v) / perBatch.size();
      importance.push_back(mean);
    }
    std::vector<size_t> order(blocks.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t x, size_t y) { return importance[x] < importance[y]; });
    order.resize(count);
    llvm::sort(order);

    OpBuilder b(module.getContext());
    SmallVector<Attribute> names;
    SmallVector<NamedAttribute> scores;
    for (size_t i = 0; i < blocks.size(); ++i)
      scores.push_back(b.getNamedAttr(blocks[i].getName(), b.getF64FloatAttr(importance[i])));
    llvm::SetVector<StringAttr> read; // parameters the removed blocks read
    for (size_t i : order) {
      BlockOp block = blocks[i];
      names.push_back(b.getStringAttr(block.getName()));
      block.walk([&](WeightOp w) { read.insert(w.getParamAttr().getAttr()); });
      block.getResult(0).replaceAllUsesWith(block.getInputs()[0]);
      block.erase();
    }
    // Drop the parameters nothing reads any more.
    llvm::DenseSet<StringAttr> stillRead;
    module.walk([&](WeightOp w) { stillRead.insert(w.getParamAttr().getAttr()); });
    for (StringAttr name : read)
      if (!stillRead.contains(name))
        if (auto param = symbols.lookup<ParamOp>(name))
          param.erase();
    if (auto old = module->getAttrOfType<ArrayAttr>("bmsys.pruned_layers"))
      names.insert(names.begin(), old.begin(), old.end());
    module->setAttr("bmsys.pruned_layers", b.getArrayAttr(names));
    module->setAttr("bmsys.layer_importance", b.getDictionaryAttr(scores));
    return success();
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (method != "magnitude" && method != "2:4" && method != "heads" && method != "layers") {
      module.emitError() << "bmsys-prune: method must be magnitude, 2:4, heads or layers, got '"
                         << method << "'";
      return signalPassFailure();
    }
    if (sparsity < 0 || sparsity >= 1) {
      module.emitError() << "bmsys-prune: sparsity must be in [0, 1), got "
                         << static_cast<double>(sparsity);
      return signalPassFailure();
    }
    LogicalResult result = success();
    if (method == "heads" || method == "layers") {
      if (count < 1) {
        module.emitError() << "bmsys-prune: count must be at least 1, got "
                           << static_cast<int64_t>(count);
        return signalPassFailure();
      }
      if (calibration.empty()) {
        module.emitError() << "bmsys-prune: method=" << method
                           << " needs calibration files (grad.<key> of train_step with "
                              "return-grads)";
        return signalPassFailure();
      }
      result = method == "heads" ? pruneHeads(module) : pruneLayers(module);
    } else {
      result = pruneUnstructured(module);
    }
    if (failed(result))
      signalPassFailure();
  }
};
} // namespace
