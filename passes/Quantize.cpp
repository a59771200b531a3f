//===- Quantize.cpp - bmsys-quantize --------------------------------------===//
//
// Reads each linear weight once at compile time, writes its INT8 form next to
// the model, and rewrites the linear ops to use it. The runtime then loads
// INT8 tensors like any other weight. `header-only` declares the same tensors
// without reading a weight (a sparse file for --random-weights benchmarks).
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "frontends/hf/Safetensors.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/Support/Path.h"

#include <cmath>

namespace bmsys {
#define GEN_PASS_DEF_BMSYSQUANTIZE
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace {
struct Quantized {
  ParamOp q, scale;
};

struct Quantize : bmsys::impl::BmsysQuantizeBase<Quantize> {
  using Base::Base;

  /// Quantization-aware training: every linear reads its weight through a
  /// fake quantization with the rows of the INT8 export.
  void fakeQuantize(llvm::MapVector<ParamOp, SmallVector<LinearOp>> &uses) {
    OpBuilder b(&getContext());
    for (auto &[param, linears] : uses)
      for (LinearOp linear : linears) {
        b.setInsertionPoint(linear);
        auto fq = FakeQuantOp::create(b, linear.getLoc(), linear.getWeight(),
                                      linear.getWeightTransposed() ? 1 : 0);
        linear.getWeightMutable().assign(fq);
      }
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (mode != "int8" && mode != "qat") {
      module.emitError() << "bmsys-quantize: mode must be int8 or qat, got '" << mode << "'";
      return signalPassFailure();
    }
    if (activations != "float" && activations != "int8") {
      module.emitError() << "bmsys-quantize: activations must be float or int8, got '"
                         << activations << "'";
      return signalPassFailure();
    }
    // The linears to quantize, grouped by the parameter they read.
    llvm::MapVector<ParamOp, SmallVector<LinearOp>> uses;
    SymbolTable symbols(module);
    module.walk([&](LinearOp linear) {
      auto weight = linear.getWeight().getDefiningOp<WeightOp>();
      // A pruned weight (bmsys-prune: w * mask) trains quantized after masking,
      // so its zeros stay on the INT8 grid.
      if (auto masked = linear.getWeight().getDefiningOp<MulOp>(); masked && mode == "qat")
        weight = masked.getLhs().getDefiningOp<WeightOp>();
      if (!weight)
        return;
      auto param = symbols.lookup<ParamOp>(weight.getParam());
      if (param && !llvm::is_contained(skip, param.getKey()))
        uses[param].push_back(linear);
    });
    if (uses.empty())
      return;
    if (mode == "qat")
      return fakeQuantize(uses);

    std::string file = output;
    if (file.empty()) {
      llvm::SmallString<256> path(uses.front().first.getFile());
      llvm::sys::path::remove_filename(path);
      llvm::sys::path::append(path, "model.int8.safetensors");
      file = path.str().str();
    }

    std::vector<std::pair<std::string, hf::TensorData>> tensors;
    std::vector<std::pair<std::string, hf::TensorDecl>> declared; // header-only
    DenseMap<ParamOp, Quantized> quantized;
    OpBuilder b(module.getContext());
    for (auto &[param, linears] : uses) {
      // All uses must agree on the layout; [in, out] weights are transposed.
      bool transposed = linears.front().getWeightTransposed();
      for (LinearOp l : linears)
        if (l.getWeightTransposed() != transposed) {
          l.emitOpError("reads a weight that another linear reads in the other layout");
          return signalPassFailure();
        }
      std::string base = param.getKey().str();
      std::string qKey = base + "_int8", sKey = base + "_scale";
      int64_t out = 0, in = 0;
      if (headerOnly) {
        // The shapes come from the IR; the float values are never read.
        auto type = dyn_cast<RankedTensorType>(param.getType());
        if (!type || type.getRank() != 2 || !type.hasStaticShape()) {
          param.emitError() << "bmsys-quantize: header-only needs a static 2-D weight, '"
                            << param.getKey() << "' is " << param.getType();
          return signalPassFailure();
        }
        out = type.getDimSize(transposed ? 1 : 0);
        in = type.getDimSize(transposed ? 0 : 1);
        declared.push_back({qKey, {"I8", {out, in}}});
        declared.push_back({sKey, {"F32", {out}}});
      } else {
        std::vector<int64_t> shape;
        auto data = hf::readTensorAsF32(param.getFile(), param.getKey(), &shape);
        if (!data) {
          param.emitError() << "bmsys-quantize: " << llvm::toString(data.takeError());
          return signalPassFailure();
        }
        out = transposed ? shape[1] : shape[0];
        in = transposed ? shape[0] : shape[1];
        hf::TensorData q{"I8", {out, in}, std::vector<char>(out * in)};
        hf::TensorData s{"F32", {out}, std::vector<char>(out * 4)};
        for (int64_t n = 0; n < out; ++n) {
          auto at = [&](int64_t k) { return (*data)[transposed ? k * out + n : n * in + k]; };
          float maxAbs = 0;
          for (int64_t k = 0; k < in; ++k)
            maxAbs = std::max(maxAbs, std::fabs(at(k)));
          float scale = maxAbs > 0 ? maxAbs / 127.0f : 1.0f;
          for (int64_t k = 0; k < in; ++k)
            q.bytes[n * in + k] =
                static_cast<char>(std::clamp(std::nearbyint(at(k) / scale), -127.0f, 127.0f));
          std::memcpy(&s.bytes[n * 4], &scale, 4);
        }
        tensors.emplace_back(qKey, std::move(q));
        tensors.emplace_back(sKey, std::move(s));
      }

      b.setInsertionPointAfter(param);
      auto qParam = ParamOp::create(b, param.getLoc(), (param.getSymName() + "_int8").str(),
                                    RankedTensorType::get({out, in}, b.getIntegerType(8)),
                                    file, qKey);
      auto sParam = ParamOp::create(b, param.getLoc(), (param.getSymName() + "_scale").str(),
                                    RankedTensorType::get({out}, b.getF32Type()), file, sKey);
      quantized[param] = {qParam, sParam};
    }
    if (auto err = headerOnly ? hf::writeSafetensorsHeaderOnly(file, declared)
                              : hf::writeSafetensors(file, tensors)) {
      module.emitError() << "bmsys-quantize: " << llvm::toString(std::move(err));
      return signalPassFailure();
    }

    for (auto &[param, linears] : uses) {
      Quantized qp = quantized[param];
      for (LinearOp linear : linears) {
        b.setInsertionPoint(linear);
        Location loc = linear.getLoc();
        Value q = WeightOp::create(b, loc, qp.q.getType(),
                                   FlatSymbolRefAttr::get(qp.q.getSymNameAttr()));
        Value s = WeightOp::create(b, loc, qp.scale.getType(),
                                   FlatSymbolRefAttr::get(qp.scale.getSymNameAttr()));
        auto replacement =
            LinearInt8Op::create(b, loc, linear.getType(), linear.getX(), q, s, linear.getBias(),
                                 b.getStringAttr(activations));
        Operation *weight = linear.getWeight().getDefiningOp();
        linear.replaceAllUsesWith(replacement.getResult());
        linear.erase();
        if (weight->use_empty())
          weight->erase();
      }
    }
    // Parameters nothing reads any more (not tied to another use) are dropped.
    for (auto &[param, linears] : uses)
      if (SymbolTable::symbolKnownUseEmpty(param, module))
        param.erase();
  }
};
} // namespace
