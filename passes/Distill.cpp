//===- Distill.cpp - bmsys-distill ----------------------------------------===//
//
// Knowledge distillation (BMCook): the teacher's forward is copied into the
// student's module, next to the student's, in one function whose loss terms
// compare the two. The teacher's parameters are renamed with a prefix (so
// their keys never collide with the student's in artifacts and checkpoints),
// written once under those names, and frozen: autodiff gives them no
// gradient and the optimizer no update.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "frontends/hf/Safetensors.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/Path.h"

#include <cstring>

namespace bmsys {
#define GEN_PASS_DEF_BMSYSDISTILL
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace {
SmallVector<BlockOp> topBlocks(func::FuncOp f) {
  SmallVector<BlockOp> blocks;
  for (Operation &op : f.getBody().front())
    if (auto b = dyn_cast<BlockOp>(op))
      blocks.push_back(b);
  return blocks;
}

struct Distill : bmsys::impl::BmsysDistillBase<Distill> {
  using Base::Base;

  ModuleOp module;

  /// "s:t,s:t" -> pairs of block indices.
  FailureOr<SmallVector<std::pair<int64_t, int64_t>>> parseLayerMap() {
    SmallVector<std::pair<int64_t, int64_t>> pairs;
    SmallVector<StringRef> items;
    StringRef(layerMap).split(items, ',', -1, false);
    for (StringRef item : items) {
      auto [s, t] = item.trim().split(':');
      int64_t si, ti;
      if (s.trim().getAsInteger(10, si) || t.trim().getAsInteger(10, ti) || si < 0 || ti < 0) {
        module.emitError() << "bmsys-distill: layer-map: '" << item
                           << "' is not <student layer>:<teacher layer>";
        return failure();
      }
      pairs.push_back({si, ti});
    }
    return pairs;
  }

  void runOnOperation() override {
    module = getOperation();
    MLIRContext *ctx = &getContext();
    if (teacher.empty()) {
      module.emitError("bmsys-distill: the teacher option (an imported teacher .mlir) is required");
      return signalPassFailure();
    }
    if (!(temperature > 0) || softCeScale < 0 || hiddenScale < 0) {
      module.emitError() << "bmsys-distill: temperature must be > 0 and the scales >= 0";
      return signalPassFailure();
    }
    auto layerPairs = parseLayerMap();
    if (failed(layerPairs))
      return signalPassFailure();
    auto student = module.lookupSymbol<func::FuncOp>("forward");
    if (!student || resultIndex(student, "logits") < 0 || student.getNumArguments() != 1) {
      module.emitError("bmsys-distill: the student needs forward(input_ids) with a \"logits\" "
                       "result");
      return signalPassFailure();
    }
    if (module.lookupSymbol("distill_forward") || module->hasAttr("bmsys.train_function")) {
      module.emitError("bmsys-distill: the module is already set up for distillation");
      return signalPassFailure();
    }

    OwningOpRef<ModuleOp> teacherModule = parseSourceFile<ModuleOp>(std::string(teacher), ctx);
    if (!teacherModule) {
      module.emitError() << "bmsys-distill: cannot parse the teacher " << teacher;
      return signalPassFailure();
    }
    auto tForward = teacherModule->lookupSymbol<func::FuncOp>("forward");
    if (!tForward || resultIndex(tForward, "logits") < 0 || tForward.getNumArguments() != 1) {
      module.emitError() << "bmsys-distill: the teacher " << teacher
                         << " needs forward(input_ids) with a \"logits\" result";
      return signalPassFailure();
    }

    std::string file = teacherOutput;
    if (file.empty()) {
      auto params = module.getOps<ParamOp>();
      llvm::SmallString<256> path(params.empty() ? StringRef("") : (*params.begin()).getFile());
      llvm::sys::path::remove_filename(path);
      llvm::sys::path::append(path, "teacher.safetensors");
      file = path.str().str();
    }

    // The teacher's parameters, renamed and frozen, their values written once.
    const std::string pre = prefix;
    OpBuilder b(ctx);
    std::vector<std::pair<std::string, hf::TensorData>> tensors;
    Operation *lastParam = nullptr;
    for (ParamOp p : module.getOps<ParamOp>())
      lastParam = p;
    for (ParamOp p : teacherModule->getOps<ParamOp>()) {
      std::string sym = pre + p.getSymName().str(), key = pre + p.getKey().str();
      if (module.lookupSymbol(sym)) {
        module.emitError() << "bmsys-distill: teacher parameter '" << sym
                           << "' collides with a symbol of the student (choose another prefix)";
        return signalPassFailure();
      }
      std::vector<int64_t> shape;
      auto values = hf::readTensorAsF32(p.getFile(), p.getKey(), &shape);
      if (!values) {
        module.emitError() << "bmsys-distill: teacher " << llvm::toString(values.takeError());
        return signalPassFailure();
      }
      hf::TensorData t{"F32", shape, std::vector<char>(values->size() * 4)};
      std::memcpy(t.bytes.data(), values->data(), t.bytes.size());
      tensors.emplace_back(key, std::move(t));
      if (lastParam)
        b.setInsertionPointAfter(lastParam);
      else
        b.setInsertionPointToStart(module.getBody());
      auto np = ParamOp::create(b, p.getLoc(), sym, p.getType(), file, key);
      np->setAttr("bmsys.frozen", b.getUnitAttr());
      lastParam = np;
    }

    // distill_forward = the student's forward, then the teacher's.
    b.setInsertionPointAfter(student);
    auto fn = cast<func::FuncOp>(b.clone(*student));
    fn.setSymName("distill_forward");
    Block &body = fn.getBody().front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    Value sLogits = ret.getOperand(resultIndex(student, "logits"));
    SmallVector<BlockOp> sBlocks = topBlocks(fn);

    IRMapping map;
    map.map(tForward.getArgument(0), fn.getArgument(0));
    b.setInsertionPoint(ret);
    SmallVector<BlockOp> tBlocks;
    for (Operation &op : tForward.getBody().front().without_terminator()) {
      Operation *copy = b.clone(op, map);
      copy->walk([&](WeightOp w) {
        w.setParamAttr(FlatSymbolRefAttr::get(ctx, pre + w.getParam().str()));
      });
      if (auto block = dyn_cast<BlockOp>(copy)) {
        block.setName(pre + block.getName().str());
        tBlocks.push_back(block);
      }
    }
    auto tRet = cast<func::ReturnOp>(tForward.getBody().front().getTerminator());
    Value tLogits = map.lookup(tRet.getOperand(resultIndex(tForward, "logits")));

    Location loc = ret.getLoc();
    auto scalar = RankedTensorType::get({}, b.getF32Type());
    SmallVector<Value> results{sLogits};
    SmallVector<std::string> names{"logits"};
    auto softCe = DistillSoftCEOp::create(b, loc, scalar, sLogits, tLogits,
                                          b.getF64FloatAttr(temperature),
                                          b.getF64FloatAttr(softCeScale));
    if (failed(softCe.verify())) // vocabularies that differ
      return signalPassFailure();
    results.push_back(softCe);
    names.push_back("distill.soft_ce");

    for (auto [si, ti] : *layerPairs) {
      if (si >= static_cast<int64_t>(sBlocks.size()) || ti >= static_cast<int64_t>(tBlocks.size())) {
        module.emitError() << "bmsys-distill: layer-map: " << si << ":" << ti
                           << " is out of range (the student has " << sBlocks.size()
                           << " layers, the teacher " << tBlocks.size() << ")";
        return signalPassFailure();
      }
      Value s = sBlocks[si].getResult(0), t = tBlocks[ti].getResult(0);
      auto sType = cast<RankedTensorType>(s.getType()), tType = cast<RankedTensorType>(t.getType());
      int64_t sw = sType.getShape().back(), tw = tType.getShape().back();
      if (sw != tw) {
        if (!projection) {
          module.emitError() << "bmsys-distill: layer-map " << si << ":" << ti
                             << ": widths differ (student " << sw << ", teacher " << tw
                             << "); set projection=true to learn a projection";
          return signalPassFailure();
        }
        // A trainable [teacher, student] projection, starting as the identity on
        // the common features.
        std::string name = "distill.proj." + std::to_string(si) + ".weight";
        std::vector<float> init(tw * sw, 0.0f);
        for (int64_t i = 0; i < std::min(sw, tw); ++i)
          init[i * sw + i] = 1.0f;
        hf::TensorData data{"F32", {tw, sw}, std::vector<char>(init.size() * 4)};
        std::memcpy(data.bytes.data(), init.data(), data.bytes.size());
        tensors.emplace_back(name, std::move(data));
        auto type = RankedTensorType::get({tw, sw}, sType.getElementType());
        OpBuilder pb(ctx);
        pb.setInsertionPointAfter(lastParam);
        lastParam = ParamOp::create(pb, loc, name, type, file, name);
        Value w = WeightOp::create(b, loc, type, FlatSymbolRefAttr::get(ctx, name));
        auto outType = RankedTensorType::get(
            {sType.getDimSize(0), sType.getDimSize(1), tw}, sType.getElementType());
        s = LinearOp::create(b, loc, outType, s, w, Value(), UnitAttr());
      }
      auto mse = DistillHiddenMSEOp::create(b, loc, scalar, s, t, b.getF64FloatAttr(1e-5),
                                            b.getF64FloatAttr(hiddenScale));
      if (failed(mse.verify()))
        return signalPassFailure();
      results.push_back(mse);
      names.push_back("distill.hidden_mse." + std::to_string(si));
    }
    func::ReturnOp::create(b, loc, results);
    ret.erase();
    fn.setType(b.getFunctionType(fn.getArgumentTypes(), ValueRange(results).getTypes()));
    for (auto [i, name] : llvm::enumerate(names))
      fn.setResultAttrs(i, b.getDictionaryAttr(
                               {b.getNamedAttr("bmsys.name", b.getStringAttr(name))}));

    llvm::sort(tensors, [](auto &x, auto &y) { return x.first < y.first; });
    if (auto err = hf::writeSafetensors(file, tensors)) {
      module.emitError() << "bmsys-distill: " << llvm::toString(std::move(err));
      return signalPassFailure();
    }
    module->setAttr("bmsys.train_function", b.getStringAttr("distill_forward"));
  }
};
} // namespace
