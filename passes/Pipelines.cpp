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
  Option<std::string> quantize{*this, "quantize",
                               llvm::cl::desc("weight quantization: none or int8"),
                               llvm::cl::init("none")};
  Option<std::string> activations{
      *this, "activations",
      llvm::cl::desc("with quantize=int8: float (weight-only) or int8 (per-token)"),
      llvm::cl::init("float")};
  Option<std::string> quantizeOutput{
      *this, "quantize-output",
      llvm::cl::desc("file for the INT8 weights (default: model.int8.safetensors beside the model)"),
      llvm::cl::init("")};
  Option<bool> quantizeHeaderOnly{
      *this, "quantize-header-only",
      llvm::cl::desc("declare the INT8 weights without reading the float ones (bmsys-quantize "
                     "header-only: for --random-weights benchmarks)"),
      llvm::cl::init(false)};
  // bmsys-memory-schedule inside the pipeline (docs/inference.md).
  Option<std::string> memoryBudget{
      *this, "memory-budget",
      llvm::cl::desc("device memory budget: keep as many layers resident as fit and swap the "
                     "rest (bmsys-memory-schedule); empty = no schedule"),
      llvm::cl::init("")};
  Option<std::string> memoryDtype{
      *this, "memory-dtype",
      llvm::cl::desc("with memory-budget: the float dtype the weights run in (f32, bf16, f16)"),
      llvm::cl::init("")};
  Option<std::string> memoryWorkspace{
      *this, "memory-workspace",
      llvm::cl::desc("with memory-budget: device memory the backend keeps for itself"),
      llvm::cl::init("64MiB")};
  Option<double> linkGbps{*this, "link-gbps",
                          llvm::cl::desc("with memory-budget: host -> device GB/s for the report"),
                          llvm::cl::init(55.0)};
  Option<std::string> scheduleReport{
      *this, "schedule-report",
      llvm::cl::desc("with memory-budget: file for the schedule report ('-' = stdout)"),
      llvm::cl::init("-")};
  Option<bool> fuse{*this, "fuse",
                    llvm::cl::desc("bmsys-fuse-elementwise: SwiGLU and residual add + RMS norm "
                                   "as single-pass kernels, the ropes of q and k inside the "
                                   "attention (decode: fewer launches, and the gate and up "
                                   "linears adjacent, so they run concurrently)"),
                    llvm::cl::init(true)};
};
struct CompressPipelineOptions : PassPipelineOptions<CompressPipelineOptions> {
  Option<std::string> config{*this, "config",
                             llvm::cl::desc("the compression config (JSON, docs/compression.md)"),
                             llvm::cl::init("")};
};
struct TrainPipelineOptions : PassPipelineOptions<TrainPipelineOptions> {
  Option<int64_t> maxBatch{*this, "max-batch", llvm::cl::desc("largest batch"),
                           llvm::cl::init(8)};
  Option<int64_t> maxSeq{*this, "max-seq",
                         llvm::cl::desc("largest sequence; 0 = the model's max positions"),
                         llvm::cl::init(0)};
  Option<std::string> checkpoint{*this, "checkpoint",
                                 llvm::cl::desc("activation checkpointing: none, every, every-k"),
                                 llvm::cl::init("none")};
  Option<int64_t> checkpointK{*this, "checkpoint-k", llvm::cl::desc("period of every-k"),
                              llvm::cl::init(2)};
  Option<std::string> mixedPrecision{
      *this, "mixed-precision",
      llvm::cl::desc("compute type with float32 master weights: none, bf16 or f16"),
      llvm::cl::init("none")};
  Option<std::string> lossScaling{
      *this, "loss-scaling",
      llvm::cl::desc("auto (dynamic with f16), dynamic or none"), llvm::cl::init("auto")};
  Option<std::string> optimizer{*this, "optimizer", llvm::cl::desc("adamw or sgd"),
                                llvm::cl::init("adamw")};
  Option<double> lr{*this, "lr", llvm::cl::desc("peak learning rate"), llvm::cl::init(1e-3)};
  Option<double> beta1{*this, "beta1", llvm::cl::desc("AdamW beta1"), llvm::cl::init(0.9)};
  Option<double> beta2{*this, "beta2", llvm::cl::desc("AdamW beta2"), llvm::cl::init(0.999)};
  Option<double> eps{*this, "eps", llvm::cl::desc("AdamW epsilon"), llvm::cl::init(1e-8)};
  Option<double> weightDecay{*this, "weight-decay", llvm::cl::desc("weight decay"),
                             llvm::cl::init(0.0)};
  Option<double> momentum{*this, "momentum", llvm::cl::desc("SGD momentum"), llvm::cl::init(0.0)};
  Option<double> maxGradNorm{*this, "max-grad-norm",
                             llvm::cl::desc("global-norm clipping; 0 = none"), llvm::cl::init(0.0)};
  Option<std::string> schedule{*this, "schedule",
                               llvm::cl::desc("constant, cosine or linear"),
                               llvm::cl::init("constant")};
  Option<int64_t> warmupSteps{*this, "warmup-steps", llvm::cl::desc("warm-up steps"),
                              llvm::cl::init(0)};
  Option<int64_t> totalSteps{*this, "total-steps", llvm::cl::desc("steps of the schedule"),
                             llvm::cl::init(0)};
  Option<double> minLr{*this, "min-lr", llvm::cl::desc("final learning rate"),
                       llvm::cl::init(0.0)};
  Option<int64_t> zeroStage{*this, "zero-stage",
                            llvm::cl::desc("data parallelism with ZeRO stage 0-3; -1 = one rank"),
                            llvm::cl::init(-1)};
  Option<int64_t> ranks{*this, "ranks", llvm::cl::desc("data-parallel ranks (with zero-stage)"),
                        llvm::cl::init(2)};
  Option<int64_t> zeroPrefetch{*this, "zero-prefetch",
                               llvm::cl::desc("ZeRO-3: gathers issued this many ahead (bmsys-zero prefetch)"),
                               llvm::cl::init(0)};
  Option<bool> offload{*this, "offload",
                       llvm::cl::desc("bmsys-offload: fp32 master weights and AdamW state in "
                                      "host memory, the optimizer step on the CPU"),
                       llvm::cl::init(false)};
  Option<bool> returnGrads{*this, "return-grads",
                           llvm::cl::desc("train_step also returns grad.<key>"),
                           llvm::cl::init(false)};
  Option<bool> memoryReport{*this, "memory-report",
                            llvm::cl::desc("print the memory report to stdout"),
                            llvm::cl::init(false)};
  Option<int64_t> pipelineStages{
      *this, "pipeline-stages",
      llvm::cl::desc("pipeline parallelism: stages by layers (bmsys-pipeline-parallel, "
                     "bmsys-pipeline-schedule's 1F1B); 1 = none"),
      llvm::cl::init(1)};
  Option<int64_t> microBatches{
      *this, "micro-batches",
      llvm::cl::desc("with pipeline-stages > 1: micro-batches per step (max-batch rows each)"),
      llvm::cl::init(2)};
  Option<bool> fuse{*this, "fuse",
                    llvm::cl::desc("bmsys-fuse-elementwise: SwiGLU, residual add + RMS norm and the "
                                   "loss's casts as single-pass kernels, ropes into the attention "
                                   "where it is their only reader"),
                    llvm::cl::init(true)};
};

/// The lowering shared by both pipelines, after the model-level passes.
void addLowering(OpPassManager &pm, int64_t maxBatch, int64_t maxSeq, bool memoryReport,
                 bool fuse = false) {
  pm.addPass(bmsys::createBmsysInlineBlocks());
  pm.addPass(bmsys::createBmsysBoundShapes({maxBatch, maxSeq}));
  pm.addPass(bmsys::createBmsysAddKVCache());
  // Canonicalization removes dead ops; CSE is deliberately absent: it would
  // merge the recomputed copies of checkpointed blocks with their originals.
  pm.addPass(createCanonicalizerPass());
  // Fused kernels across the flattened blocks (after inlining, so a residual add and
  // the next block's norm are in one function body).
  if (fuse)
    pm.addPass(bmsys::createBmsysFuseElementwise());
  pm.addPass(bmsys::createBmsysLowerToRt());
  pm.addPass(bmsys::createBmsysPlanMemory());
  if (memoryReport)
    pm.addPass(bmsys::createBmsysMemoryReport());
}
} // namespace

void bmsys::registerPipelines() {
  PassPipelineRegistration<CompressPipelineOptions>(
      "bmsys-compress-pipeline",
      "Compress an imported model as a JSON config file says: pruning, distillation, "
      "quantization, MoEfication (bmsys-compress)",
      [](OpPassManager &pm, const CompressPipelineOptions &o) {
        pm.addPass(createBmsysCompress({o.config}));
      });
  PassPipelineRegistration<InferPipelineOptions>(
      "bmsys-infer-pipeline",
      "Compile an imported model for inference: quantize (quantize=int8), inline blocks, "
      "bound shapes, add KV caches, lower to bmsys_rt, plan memory and, for a device "
      "memory budget (memory-budget=6GiB), schedule layer swapping",
      [](OpPassManager &pm, const InferPipelineOptions &options) {
        if (options.quantize != "none") {
          bmsys::BmsysQuantizeOptions q;
          q.mode = options.quantize;
          q.activations = options.activations;
          q.output = options.quantizeOutput;
          q.headerOnly = options.quantizeHeaderOnly;
          pm.addPass(createBmsysQuantize(q));
        }
        addLowering(pm, options.maxBatch, options.maxSeq, options.memoryReport, options.fuse);
        if (!options.memoryBudget.empty()) {
          bmsys::BmsysMemoryScheduleOptions m;
          m.budget = options.memoryBudget;
          m.linkGbps = options.linkGbps;
          m.dtype = options.memoryDtype;
          m.workspace = options.memoryWorkspace;
          m.report = options.scheduleReport;
          pm.addPass(bmsys::createBmsysMemorySchedule(m));
        }
      });
  PassPipelineRegistration<TrainPipelineOptions>(
      "bmsys-train-pipeline",
      "Compile an imported model for training: pipeline stages, checkpoint policy, mixed "
      "precision, autodiff (train_step), optimizer, the 1F1B schedule, ZeRO, then the inference "
      "lowering (forward keeps its KV cache for generation)",
      [](OpPassManager &pm, const TrainPipelineOptions &o) {
        // Pipeline stages first: the boundaries it marks are differentiated too.
        if (o.pipelineStages > 1)
          pm.addPass(createBmsysPipelineParallel({o.pipelineStages, o.microBatches}));
        pm.addPass(createBmsysCheckpoint({o.checkpoint, o.checkpointK}));
        if (o.mixedPrecision != "none")
          pm.addPass(createBmsysMixedPrecision({o.mixedPrecision, o.lossScaling}));
        else if (o.lossScaling == "dynamic")
          pm.addPass(createBmsysMixedPrecision({"f32", "dynamic"}));
        pm.addPass(createBmsysAutodiff({o.returnGrads}));
        pm.addPass(createBmsysOptimizer({o.optimizer, o.lr, o.beta1, o.beta2, o.eps,
                                         o.weightDecay, o.momentum, o.maxGradNorm, o.schedule,
                                         o.warmupSteps, o.totalSteps, o.minLr}));
        if (o.pipelineStages > 1)
          pm.addPass(createBmsysPipelineSchedule());
        if (o.zeroStage >= 0)
          pm.addPass(createBmsysZero({o.zeroStage, o.ranks, o.zeroPrefetch}));
        if (o.offload)
          pm.addPass(createBmsysOffload());
        addLowering(pm, o.maxBatch, o.maxSeq, o.memoryReport, o.fuse);
      });
}
