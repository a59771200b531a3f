//===- Prune.cpp - bmsys-prune --------------------------------------------===//
//
// Masks are decided once, at compile time, from the weights' magnitudes, and
// kept as parameters beside the weights they mask, so they survive
// checkpoints and stay visible in the IR.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "frontends/hf/Safetensors.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/MapVector.h"
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

struct Prune : bmsys::impl::BmsysPruneBase<Prune> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (method != "magnitude" && method != "2:4") {
      module.emitError() << "bmsys-prune: method must be magnitude or 2:4, got '" << method
                         << "'";
      return signalPassFailure();
    }
    if (sparsity < 0 || sparsity >= 1) {
      module.emitError() << "bmsys-prune: sparsity must be in [0, 1), got "
                         << static_cast<double>(sparsity);
      return signalPassFailure();
    }
    llvm::Regex pattern(params.empty() ? std::string(".*") : std::string(params));
    std::string regexError;
    if (!pattern.isValid(regexError)) {
      module.emitError() << "bmsys-prune: params is not a valid regular expression: "
                         << regexError;
      return signalPassFailure();
    }

    // Linear weights, with the layout of their (first) use.
    SymbolTable symbols(module);
    llvm::MapVector<ParamOp, bool> chosen; // -> weight_transposed
    module.walk([&](LinearOp linear) {
      auto weight = linear.getWeight().getDefiningOp<WeightOp>();
      if (!weight)
        return;
      auto param = symbols.lookup<ParamOp>(weight.getParam());
      if (param && !param->hasAttr("bmsys.prune") && pattern.match(param.getKey()))
        chosen.insert({param, linear.getWeightTransposed()});
    });
    if (chosen.empty())
      return;

    std::string file = output;
    if (file.empty()) {
      llvm::SmallString<256> path(chosen.front().first.getFile());
      llvm::sys::path::remove_filename(path);
      llvm::sys::path::append(path, "model.pruned.safetensors");
      file = path.str().str();
    }

    OpBuilder b(module.getContext());
    std::vector<std::pair<std::string, hf::TensorData>> tensors;
    DenseMap<ParamOp, ParamOp> masks;
    for (auto [param, transposed] : chosen) {
      std::vector<int64_t> shape;
      auto w = hf::readTensorAsF32(param.getFile(), param.getKey(), &shape);
      if (!w) {
        param.emitError() << "bmsys-prune: " << llvm::toString(w.takeError());
        return signalPassFailure();
      }
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
        return signalPassFailure();
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
      std::string key = param.getKey().str(), maskKey = key + ".mask";
      tensors.emplace_back(key, f32Tensor(pruned, shape));
      tensors.emplace_back(maskKey, f32Tensor(mask, shape));

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
      return signalPassFailure();
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
  }
};
} // namespace
