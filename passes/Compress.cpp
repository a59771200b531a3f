//===- Compress.cpp - bmsys-compress --------------------------------------===//
//
// Runs the compression passes that one config file asks for, in a fixed
// order: pruning stages, distillation, quantization, MoEfication. The config
// is read when the pass runs, so its errors are diagnostics naming the file
// and key, like any pass option's.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"
#include "passes/compress/CompressConfig.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

namespace bmsys {
#define GEN_PASS_DEF_BMSYSCOMPRESS
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace {
struct Compress : bmsys::impl::BmsysCompressBase<Compress> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (config.empty()) {
      module.emitError("bmsys-compress: the config option (a JSON file) is required");
      return signalPassFailure();
    }
    auto buffer = llvm::MemoryBuffer::getFile(config);
    if (!buffer) {
      module.emitError() << "bmsys-compress: cannot read " << config << ": "
                         << buffer.getError().message();
      return signalPassFailure();
    }
    auto parsed = parseCompressConfig((*buffer)->getBuffer(), config);
    if (!parsed) {
      module.emitError() << "bmsys-compress: " << llvm::toString(parsed.takeError());
      return signalPassFailure();
    }
    // Paths in the file are relative to the file's directory.
    llvm::SmallString<256> dir(config.getValue());
    llvm::sys::path::remove_filename(dir);
    auto resolve = [&](std::string path) {
      if (path.empty() || llvm::sys::path::is_absolute(path) || dir.empty())
        return path;
      llvm::SmallString<256> full(dir);
      llvm::sys::path::append(full, path);
      return full.str().str();
    };

    OpPassManager pm(ModuleOp::getOperationName());
    for (CompressConfig::Pruning &p : parsed->pruning) {
      BmsysPruneOptions o;
      o.method = p.method;
      o.sparsity = p.sparsity;
      o.params = p.params;
      o.output = resolve(p.output);
      o.count = p.count;
      for (std::string &c : p.calibration)
        o.calibration.push_back(resolve(c));
      pm.addPass(createBmsysPrune(o));
    }
    if (auto &d = parsed->distillation) {
      BmsysDistillOptions o;
      o.teacher = resolve(d->teacher);
      o.temperature = d->temperature;
      o.softCeScale = d->softCeScale;
      o.hiddenScale = d->hiddenScale;
      for (auto [s, t] : d->layerMap)
        o.layerMap += (o.layerMap.empty() ? "" : ",") + std::to_string(s) + ":" + std::to_string(t);
      o.projection = d->projection;
      o.prefix = d->prefix;
      o.teacherOutput = resolve(d->teacherOutput);
      pm.addPass(createBmsysDistill(o));
    }
    if (auto &q = parsed->quantization) {
      BmsysQuantizeOptions o;
      o.mode = q->mode;
      o.activations = q->activations;
      o.output = resolve(q->output);
      o.skip.assign(q->skip.begin(), q->skip.end());
      pm.addPass(createBmsysQuantize(o));
    }
    if (auto &m = parsed->moefication) {
      BmsysMoefyOptions o;
      o.experts = m->experts;
      o.topK = m->topK;
      o.iterations = m->iterations;
      o.output = resolve(m->output);
      pm.addPass(createBmsysMoefy(o));
    }
    if (failed(runPipeline(pm, module)))
      signalPassFailure();
  }
};
} // namespace
