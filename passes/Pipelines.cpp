//===- Pipelines.cpp - named pass pipelines -------------------------------===//
#include "passes/Passes.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

namespace {
struct InferPipelineOptions : PassPipelineOptions<InferPipelineOptions> {
  Option<int64_t> maxBatch{*this, "max-batch", llvm::cl::desc("largest batch"),
                           llvm::cl::init(8)};
  Option<int64_t> maxSeq{*this, "max-seq",
                         llvm::cl::desc("largest sequence; 0 = the model's max positions"),
                         llvm::cl::init(0)};
  Option<bool> memoryReport{*this, "memory-report",
                            llvm::cl::desc("print the memory report to stdout"),
                            llvm::cl::init(false)};
};
} // namespace

void bmsys::registerPipelines() {
  PassPipelineRegistration<InferPipelineOptions>(
      "bmsys-infer-pipeline",
      "Compile an imported model for inference: inline blocks, bound shapes, add KV "
      "caches, lower to bmsys_rt and plan memory",
      [](OpPassManager &pm, const InferPipelineOptions &options) {
        pm.addPass(createBmsysInlineBlocks());
        pm.addPass(createBmsysBoundShapes({options.maxBatch, options.maxSeq}));
        pm.addPass(createBmsysAddKVCache());
        pm.addPass(createCanonicalizerPass());
        pm.addPass(createBmsysLowerToRt());
        pm.addPass(createBmsysPlanMemory());
        if (options.memoryReport)
          pm.addPass(createBmsysMemoryReport());
      });
}
