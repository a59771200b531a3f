//===- Fit.cpp - bmsys-fit ------------------------------------------------===//
//
// Chooses how to compile a model for given hardware (docs/autofit.md). Each
// candidate configuration is compiled for real: the train (or infer)
// pipeline runs on a clone of the module, then the memory analysis
// (MemoryAnalysis.h) gives the per-GPU peak of the plan and the cost model
// (CostModel.h) the step time. The fastest candidate that fits wins; the
// choice, its predictions and the reason are recorded as `bmsys.fit`, and
// with `apply` the module becomes the chosen compiled module.
//
// Knobs that exist only once other passes provide them (tensor and pipeline
// parallelism, optimizer offload, the memory schedule) are searched when the
// pipeline accepts the option (probed by parsing it), and reported as
// unavailable otherwise.
//
//===----------------------------------------------------------------------===//
#include "passes/CostModel.h"
#include "passes/MemoryAnalysis.h"
#include "passes/Passes.h"

#include "DefaultCalibration.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/ToolOutputFile.h"

#include <fcntl.h>
#include <unistd.h>

namespace bmsys {
#define GEN_PASS_DEF_BMSYSFIT
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace {
/// One configuration and what the models predict for it.
struct Candidate {
  // Knobs.
  int64_t dp = 1, tp = 1, pp = 1;
  int64_t zero = -1; // -1: one data-parallel rank, no bmsys-zero
  int64_t microBatch = 1;
  std::string checkpoint = "none";
  int64_t checkpointK = 2;
  bool offload = false;
  std::string quantize = "none"; // inference
  bool memorySchedule = false;   // inference
  // Results.
  std::string pipeline;
  std::string error; // the pipeline failed (the candidate is skipped)
  MemoryBreakdown memory;
  StepEstimate step, prefill;
  int64_t peak = 0;
  double tokensPerSecond = 0;
  bool fits = false;
  std::string misfit; // why it does not fit

  std::string checkpointName() const {
    return checkpoint == "every-k" ? "every-" + std::to_string(checkpointK) : checkpoint;
  }
  std::string describe(bool train) const {
    std::string s;
    llvm::raw_string_ostream os(s);
    if (train) {
      os << "data-parallel=" << dp;
      if (tp > 1)
        os << " tensor-parallel=" << tp;
      if (pp > 1)
        os << " pipeline-parallel=" << pp;
      os << " zero-stage=" << (zero < 0 ? std::string("none") : std::to_string(zero))
         << " checkpoint=" << checkpointName() << " micro-batch=" << microBatch;
      if (offload)
        os << " offload=optimizer";
    } else {
      if (tp > 1)
        os << "tensor-parallel=" << tp << " ";
      os << "quantize=" << quantize << " batch=" << microBatch;
      if (memorySchedule)
        os << " memory-schedule";
    }
    return s;
  }
};

/// Whether a registered pipeline accepts `option` (e.g. "tensor-parallel=1"):
/// options of passes that have not landed are then left out of the search.
bool pipelineAccepts(MLIRContext *ctx, StringRef pipeline, StringRef option) {
  OpPassManager pm(ModuleOp::getOperationName());
  std::string ignored;
  llvm::raw_string_ostream os(ignored);
  // llvm::cl reports an unknown option on stderr itself; a probe must not.
  llvm::errs().flush();
  int saved = ::dup(STDERR_FILENO), null = ::open("/dev/null", O_WRONLY);
  if (saved >= 0 && null >= 0)
    ::dup2(null, STDERR_FILENO);
  bool ok = succeeded(parsePassPipeline((pipeline + "{" + option + "}").str(), pm, os));
  llvm::errs().flush();
  if (saved >= 0 && null >= 0)
    ::dup2(saved, STDERR_FILENO);
  if (null >= 0)
    ::close(null);
  if (saved >= 0)
    ::close(saved);
  return ok;
}

/// Runs `pipeline` on `module`, collecting error diagnostics in `error`
/// instead of reporting them (a failing candidate is skipped, not fatal).
LogicalResult runCandidatePipeline(ModuleOp module, StringRef pipeline, std::string &error) {
  MLIRContext *ctx = module.getContext();
  PassManager pm(ctx, ModuleOp::getOperationName());
  llvm::raw_string_ostream es(error);
  if (failed(parsePassPipeline(pipeline, pm, es)))
    return failure();
  ScopedDiagnosticHandler handler(ctx, [&](Diagnostic &d) {
    if (d.getSeverity() == DiagnosticSeverity::Error)
      es << (error.empty() ? "" : "; ") << d.str();
    return success();
  });
  return pm.run(module);
}

/// Weight-only or per-token INT8 at the level of the lowered module, without
/// reading weight values: each linear's weight becomes an INT8 weight and a
/// float32 row scale (what bmsys-quantize produces), the launch a
/// linear_int8. The memory plan does not change (activations keep their
/// types), so the memory analysis and the cost model see exactly the
/// quantized module's weights and kernels.
void simulateInt8(ModuleOp module, StringRef activations) {
  MLIRContext *ctx = module.getContext();
  OpBuilder b(ctx);
  SymbolTable symbols(module);
  DenseMap<StringAttr, std::pair<rt::WeightOp, rt::WeightOp>> quantized;
  SmallVector<rt::LaunchOp> linears;
  module.walk([&](rt::LaunchOp l) {
    if (l.getKernel() == "linear" && l.getInputs().size() >= 2 &&
        l.getInputs()[1].getDefiningOp<rt::WeightRefOp>())
      linears.push_back(l);
  });
  for (rt::LaunchOp l : linears) {
    auto ref = l.getInputs()[1].getDefiningOp<rt::WeightRefOp>();
    auto weight = symbols.lookup<rt::WeightOp>(ref.getWeight());
    bool transposed = false;
    if (auto p = l.getParams())
      if (auto t = p->getAs<IntegerAttr>("weight_transposed"))
        transposed = t.getInt() != 0;
    auto &[q, s] = quantized[weight.getSymNameAttr()];
    if (!q) {
      ArrayRef<int64_t> shape = weight.getShape();
      int64_t out = transposed ? shape[1] : shape[0], in = transposed ? shape[0] : shape[1];
      b.setInsertionPointAfter(weight);
      q = rt::WeightOp::create(b, weight.getLoc(), (weight.getSymName() + "_int8").str(),
                               b.getIntegerType(8), ArrayRef<int64_t>{out, in}, weight.getFile(),
                               (weight.getKey() + "_int8").str(), IntegerAttr(),
                               DenseI64ArrayAttr());
      s = rt::WeightOp::create(b, weight.getLoc(), (weight.getSymName() + "_scale").str(),
                               b.getF32Type(), ArrayRef<int64_t>{out}, weight.getFile(),
                               (weight.getKey() + "_scale").str(), IntegerAttr(),
                               DenseI64ArrayAttr());
    }
    b.setInsertionPoint(l);
    Value qRef = rt::WeightRefOp::create(b, l.getLoc(), rt::BufferType::get(ctx),
                                         FlatSymbolRefAttr::get(q.getSymNameAttr()));
    Value sRef = rt::WeightRefOp::create(b, l.getLoc(), rt::BufferType::get(ctx),
                                         FlatSymbolRefAttr::get(s.getSymNameAttr()));
    SmallVector<Value> inputs{l.getInputs()[0], qRef, sRef};
    if (l.getInputs().size() > 2)
      inputs.push_back(l.getInputs()[2]);
    rt::LaunchOp::create(b, l.getLoc(), "linear_int8", inputs, l.getOutputs(),
                         b.getDictionaryAttr({b.getNamedAttr("activations",
                                                             b.getStringAttr(activations))}));
    l.erase();
    if (ref->use_empty())
      ref.erase();
  }
  // Float weights nothing reads any more are dropped (a tied embedding stays).
  for (auto &[name, pair] : quantized) {
    auto weight = symbols.lookup<rt::WeightOp>(name);
    if (weight && SymbolTable::symbolKnownUseEmpty(weight, module))
      weight.erase();
  }
}

/// The weights as `bmsys-run --dtype` loads them: float weights in `dtype`
/// (linear_int8's row scales stay f32). The pools keep their planned sizes,
/// as the runtime keeps them (runtime/backends/cuda/compute_dtype.h).
void castWeights(ModuleOp module, Type dtype) {
  DenseSet<StringAttr> scales;
  module.walk([&](rt::LaunchOp l) {
    if (l.getKernel() == "linear_int8" && l.getInputs().size() > 2)
      if (auto ref = l.getInputs()[2].getDefiningOp<rt::WeightRefOp>())
        scales.insert(ref.getWeightAttr().getAttr());
  });
  for (auto w : module.getOps<rt::WeightOp>())
    if (isa<FloatType>(w.getDtype()) && !scales.contains(w.getSymNameAttr()))
      w.setDtype(dtype);
}

std::string formatSeconds(double s) {
  if (s >= 1)
    return llvm::formatv("{0:F3} s", s).str();
  if (s >= 1e-3)
    return llvm::formatv("{0:F3} ms", s * 1e3).str();
  return llvm::formatv("{0:F2} us", s * 1e6).str();
}

// The dialects candidate pipelines create are the pass's dependent dialects
// (Passes.td), loaded before it runs: nothing may load a dialect mid-pass.
struct Fit : bmsys::impl::BmsysFitBase<Fit> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    auto fail = [&](const Twine &message) {
      module.emitError() << "bmsys-fit: " << message;
      signalPassFailure();
    };
    if (mode != "train" && mode != "infer")
      return fail("mode must be train or infer, got '" + mode + "'");
    if (gpus < 1)
      return fail("gpus must be at least 1, got " + Twine(static_cast<int64_t>(gpus)));
    if (seq < 0 || batch < 0)
      return fail("seq and batch must not be negative");
    if (module.lookupSymbol("train_step") || module->hasAttr("bmsys_rt.max_batch"))
      return fail("expects a model as imported (bmsys dialect, before bmsys-autodiff and the "
                  "lowering)");
    if (!module.lookupSymbol<func::FuncOp>("forward"))
      return fail("the module has no 'forward' function");

    // The machine.
    llvm::Expected<MachineModel> machine =
        calibration.empty()
            ? [&]() -> llvm::Expected<MachineModel> {
                llvm::Expected<llvm::json::Value> json = llvm::json::parse(kDefaultCalibrationJSON);
                if (!json)
                  return json.takeError();
                return parseMachineModel(*json, "the built-in H200 calibration");
              }()
            : loadMachineModel(calibration);
    if (!machine)
      return fail(llvm::toString(machine.takeError()));
    std::string calibrationName =
        calibration.empty() ? std::string("built-in H200 default") : std::string(calibration);
    int64_t gpuBytes = gpuMemory.empty() ? machine->memoryBytes : parseBytes(gpuMemory);
    if (gpuBytes <= 0 && gpuMemory.empty())
      return fail("give gpu-memory (the calibration file records no memory_bytes)");
    if (gpuBytes <= 0)
      return fail("gpu-memory: '" + gpuMemory +
                  "' is not a size (bytes, or a number with KiB/MiB/GiB/KB/MB/GB)");
    int64_t hostBytes = hostMemory.empty() ? machine->hostMemoryBytes : parseBytes(hostMemory);
    if (hostBytes < 0)
      return fail("host-memory: '" + hostMemory + "' is not a size");
    for (StringRef reserved : {"max-batch", "max-seq", "checkpoint", "zero-stage", "ranks",
                               "memory-report", "quantize"})
      if (StringRef(extraOptions).contains((reserved + "=").str()))
        return fail("options: '" + reserved + "' is chosen by bmsys-fit; leave it out");

    bool train = mode == "train";
    StringRef pipelineName = train ? "bmsys-train-pipeline" : "bmsys-infer-pipeline";
    // Knobs provided by passes that may not exist in this build.
    // Tensor parallelism: a pipeline option, or the pass bmsys-tensor-parallel run
    // on the model before the pipeline.
    tpAsPass = !pipelineAccepts(ctx, pipelineName, "tensor-parallel=1") &&
               PassInfo::lookup("bmsys-tensor-parallel") != nullptr;
    bool hasTp = tpAsPass || pipelineAccepts(ctx, pipelineName, "tensor-parallel=1");
    bool hasPp = train && pipelineAccepts(ctx, pipelineName, "pipeline-parallel=1");
    bool hasOffload = train && pipelineAccepts(ctx, pipelineName, "offload=none");
    // The memory schedule (bmsys-memory-schedule) runs on the lowered module.
    bool hasSchedule = !train && PassInfo::lookup("bmsys-memory-schedule") != nullptr;
    if (!dtype.empty()) {
      if (dtype == "bf16")
        runDtype = BFloat16Type::get(ctx);
      else if (dtype == "f16" || dtype == "fp16")
        runDtype = Float16Type::get(ctx);
      else if (dtype == "f32" || dtype == "fp32")
        runDtype = Float32Type::get(ctx);
      else
        return fail("dtype must be bf16, f16 or f32 (the bmsys-run --dtype), got '" + dtype + "'");
    }

    machineModel = &*machine;
    budgetBytes = gpuBytes;
    std::vector<Candidate> candidates = enumerate(hasTp, hasPp, hasOffload, hasSchedule);
    if (candidates.empty())
      return fail("no candidate configuration: check micro-batches, zero-stages and checkpoint "
                  "(and that batch divides over the data-parallel ranks)");

    for (Candidate &c : candidates)
      evaluate(module, c, *machine, gpuBytes, hostBytes, train, /*keep=*/false);

    // The fastest that fits; ties go to the earlier (simpler) candidate.
    Candidate *best = nullptr;
    int fitting = 0;
    for (Candidate &c : candidates)
      if (c.fits) {
        ++fitting;
        if (!best || c.tokensPerSecond > best->tokensPerSecond * (1 + 1e-9))
          best = &c;
      }

    if (failed(printTable(candidates, best, *machine, calibrationName, gpuBytes, train)))
      return signalPassFailure();
    if (!report.empty() &&
        failed(writeReport(candidates, best, *machine, calibrationName, gpuBytes, hostBytes, train)))
      return signalPassFailure();

    if (!best)
      return refuse(module, candidates, *machine, gpuBytes, hostBytes, train);

    // The reason: what it beat, and what the faster ones lacked.
    const Candidate *runnerUp = nullptr;
    for (const Candidate &c : candidates)
      if (c.fits && &c != best && (!runnerUp || c.tokensPerSecond > runnerUp->tokensPerSecond))
        runnerUp = &c;
    std::string reason = llvm::formatv("fastest of {0} candidates that fit in {1} per GPU ({2} "
                                       "evaluated)",
                                       fitting, formatBytes(gpuBytes), candidates.size())
                             .str();
    if (runnerUp)
      reason += llvm::formatv("; next: {0} at {1:F1}% lower throughput", runnerUp->describe(train),
                              100.0 * (1 - runnerUp->tokensPerSecond / best->tokensPerSecond))
                    .str();
    for (const Candidate &c : candidates)
      if (!c.fits && c.error.empty() && c.tokensPerSecond > best->tokensPerSecond) {
        reason += "; faster but too large: " + c.describe(train) + " (" + c.misfit + ")";
        break;
      }

    Builder b(ctx);
    SmallVector<NamedAttribute> fit{
        b.getNamedAttr("mode", b.getStringAttr(mode)),
        b.getNamedAttr("gpus", b.getI64IntegerAttr(gpus)),
        b.getNamedAttr("gpu_memory", b.getI64IntegerAttr(gpuBytes)),
        b.getNamedAttr("calibration", b.getStringAttr(calibrationName)),
        b.getNamedAttr("pipeline", b.getStringAttr(best->pipeline)),
        b.getNamedAttr("predicted_peak_bytes", b.getI64IntegerAttr(best->peak)),
        b.getNamedAttr("predicted_step_s", b.getF64FloatAttr(best->step.total)),
        b.getNamedAttr("predicted_tokens_per_s", b.getF64FloatAttr(best->tokensPerSecond)),
        b.getNamedAttr("reason", b.getStringAttr(reason)),
    };
    if (train) {
      fit.push_back(b.getNamedAttr("data_parallel", b.getI64IntegerAttr(best->dp)));
      fit.push_back(b.getNamedAttr("zero_stage", b.getI64IntegerAttr(best->zero)));
      fit.push_back(b.getNamedAttr("checkpoint", b.getStringAttr(best->checkpointName())));
      fit.push_back(b.getNamedAttr("micro_batch", b.getI64IntegerAttr(best->microBatch)));
      fit.push_back(b.getNamedAttr("global_batch", b.getI64IntegerAttr(best->microBatch * best->dp)));
      if (hasTp)
        fit.push_back(b.getNamedAttr("tensor_parallel", b.getI64IntegerAttr(best->tp)));
      if (hasPp)
        fit.push_back(b.getNamedAttr("pipeline_parallel", b.getI64IntegerAttr(best->pp)));
      if (hasOffload)
        fit.push_back(b.getNamedAttr("offload", b.getBoolAttr(best->offload)));
    } else {
      fit.push_back(b.getNamedAttr("quantize", b.getStringAttr(best->quantize)));
      if (hasTp)
        fit.push_back(b.getNamedAttr("tensor_parallel", b.getI64IntegerAttr(best->tp)));
      fit.push_back(b.getNamedAttr("batch", b.getI64IntegerAttr(best->microBatch)));
      fit.push_back(b.getNamedAttr("predicted_prefill_s", b.getF64FloatAttr(best->prefill.total)));
      if (hasSchedule)
        fit.push_back(b.getNamedAttr("memory_schedule", b.getBoolAttr(best->memorySchedule)));
    }
    DictionaryAttr fitAttr = b.getDictionaryAttr(fit);

    if (apply) {
      // Compile the chosen configuration for real (with INT8 this runs
      // bmsys-quantize, which reads and writes weights) and take its IR.
      OwningOpRef<ModuleOp> compiled = cast<ModuleOp>(module->clone());
      std::string error;
      if (failed(runCandidatePipeline(*compiled, best->pipeline, error)))
        return fail("the chosen configuration failed to compile: " + error);
      module.getBody()->clear();
      module.getBody()->getOperations().splice(module.getBody()->end(),
                                               compiled->getBody()->getOperations());
      module->setAttrs((*compiled)->getAttrDictionary());
    }
    module->setAttr("bmsys.fit", fitAttr);
  }

  const MachineModel *machineModel = nullptr;
  int64_t budgetBytes = 0;
  Type runDtype; // the bmsys-run --dtype, when given
  bool tpAsPass = false;

  std::vector<Candidate> enumerate(bool hasTp, bool hasPp, bool hasOffload, bool hasSchedule) {
    std::vector<Candidate> out;
    SmallVector<int64_t> micro(microBatches.begin(), microBatches.end());
    if (micro.empty())
      micro = {1, 2, 4, 8};
    if (mode == "infer") {
      SmallVector<std::string> quant(quantize.begin(), quantize.end());
      if (quant.empty())
        quant = {"none", "int8"};
      int64_t b = batch > 0 ? batch : 1;
      // Several GPUs serve one model only through tensor parallelism.
      SmallVector<int64_t> tps{1};
      if (hasTp)
        for (int64_t d = 2; d <= gpus; ++d)
          if (gpus % d == 0)
            tps.push_back(d);
      if (!tensorParallel.empty())
        tps.assign(tensorParallel.begin(), tensorParallel.end());
      SmallVector<bool> schedules{false};
      if (hasSchedule)
        schedules.push_back(true);
      if (!memorySchedule.empty()) {
        schedules.clear();
        for (const std::string &v : memorySchedule) {
          if (v != "off" && v != "on") {
            getOperation().emitError() << "bmsys-fit: memory-schedule must be off or on, got '"
                                       << v << "'";
            signalPassFailure();
            return {};
          }
          if (v == "on" && !hasSchedule) {
            getOperation().emitError("bmsys-fit: memory-schedule=on needs bmsys-memory-schedule, "
                                     "which this build lacks");
            signalPassFailure();
            return {};
          }
          schedules.push_back(v == "on");
        }
      }
      for (int64_t tp : tps)
        for (const std::string &q : quant)
          for (bool schedule : schedules) {
            Candidate c;
            c.tp = tp;
            c.quantize = q;
            c.microBatch = b;
            c.memorySchedule = schedule;
            out.push_back(c);
          }
      return out;
    }
    SmallVector<std::string> policies(checkpoint.begin(), checkpoint.end());
    if (policies.empty())
      policies = {"none", "every", "every-2"};
    SmallVector<int64_t> stages(zeroStages.begin(), zeroStages.end());
    if (stages.empty())
      stages = {0, 1, 2, 3};
    SmallVector<int64_t> degrees;
    for (int64_t d = 1; d <= gpus; ++d)
      if (gpus % d == 0)
        degrees.push_back(d);
    SmallVector<int64_t> tpDegrees = hasTp ? degrees : SmallVector<int64_t>{1};
    if (!tensorParallel.empty())
      tpDegrees.assign(tensorParallel.begin(), tensorParallel.end());
    for (int64_t tp : tpDegrees)
      for (int64_t pp : hasPp ? degrees : SmallVector<int64_t>{1}) {
        if (gpus % (tp * pp) != 0)
          continue;
        int64_t dp = gpus / (tp * pp);
        SmallVector<int64_t> zs = dp > 1 ? stages : SmallVector<int64_t>{-1};
        for (int64_t z : zs)
          for (const std::string &policy : policies)
            for (bool off : hasOffload ? SmallVector<bool>{false, true} : SmallVector<bool>{false})
              for (int64_t mb : micro) {
                if (batch > 0 && batch != mb * dp)
                  continue; // the global batch is fixed: one micro-batch per rank count
                Candidate c;
                c.dp = dp, c.tp = tp, c.pp = pp, c.zero = z, c.microBatch = mb, c.offload = off;
                StringRef p(policy);
                if (p.consume_front("every-")) {
                  c.checkpoint = "every-k";
                  if (p.getAsInteger(10, c.checkpointK) || c.checkpointK < 1) {
                    getOperation().emitError() << "bmsys-fit: checkpoint policy '" << policy
                                               << "' is not none, every or every-K";
                    signalPassFailure();
                    return {};
                  }
                } else if (policy == "none" || policy == "every") {
                  c.checkpoint = policy;
                } else {
                  getOperation().emitError() << "bmsys-fit: checkpoint policy '" << policy
                                             << "' is not none, every or every-K";
                  signalPassFailure();
                  return {};
                }
                out.push_back(c);
              }
      }
    return out;
  }

  std::string pipelineFor(const Candidate &c, bool train) {
    std::string s;
    llvm::raw_string_ostream os(s);
    if (c.tp > 1 && tpAsPass)
      os << "bmsys-tensor-parallel{degree=" << c.tp << "},";
    if (train) {
      os << "bmsys-train-pipeline{max-batch=" << c.microBatch << " max-seq=" << seq
         << " checkpoint=" << c.checkpoint;
      if (c.checkpoint == "every-k")
        os << " checkpoint-k=" << c.checkpointK;
      if (c.zero >= 0)
        os << " zero-stage=" << c.zero << " ranks=" << c.dp;
      if (c.tp > 1 && !tpAsPass)
        os << " tensor-parallel=" << c.tp;
      if (c.pp > 1)
        os << " pipeline-parallel=" << c.pp;
      if (c.offload)
        os << " offload=optimizer";
    } else {
      os << "bmsys-infer-pipeline{max-batch=" << c.microBatch << " max-seq=" << seq;
      if (c.quantize != "none")
        os << " quantize=" << c.quantize;
    }
    if (!extraOptions.empty())
      os << " " << extraOptions;
    os << "}";
    if (c.memorySchedule)
      os << "," << schedulePipeline(machine());
    return s;
  }

  /// bmsys-memory-schedule for this budget (its report is not wanted here).
  std::string schedulePipeline(const MachineModel &m) {
    std::string s = llvm::formatv("bmsys-memory-schedule{{budget={0} workspace={1} report=/dev/null",
                                  budgetBytes, m.workspaceBytes)
                        .str();
    if (!dtype.empty())
      s += " dtype=" + dtype;
    return s + "}";
  }
  const MachineModel &machine() const { return *machineModel; }

  /// Compiles `c` on a clone and fills in its predictions.
  void evaluate(ModuleOp module, Candidate &c, const MachineModel &machine, int64_t gpuBytes,
                int64_t hostBytes, bool train, bool keep) {
    c.pipeline = pipelineFor(c, train);
    OwningOpRef<ModuleOp> clone = cast<ModuleOp>(module->clone());
    // INT8 is simulated on the lowered module (no weights are read); `apply`
    // compiles the real thing.
    std::string pipeline = c.pipeline;
    if (size_t at = pipeline.rfind(",bmsys-memory-schedule"); at != std::string::npos)
      pipeline.erase(at); // runs after the (simulated) quantization, below
    if (!train && c.quantize != "none") {
      size_t at = pipeline.find(" quantize=" + c.quantize);
      pipeline.erase(at, std::string(" quantize=" + c.quantize).size());
    }
    if (failed(runCandidatePipeline(*clone, pipeline, c.error))) {
      if (c.error.empty())
        c.error = "the pipeline failed";
      return;
    }
    if (!train && c.quantize == "int8") {
      StringRef act = StringRef(extraOptions).contains("activations=int8") ? "int8" : "float";
      simulateInt8(*clone, act);
    }
    if (runDtype)
      castWeights(*clone, runDtype);
    if (c.memorySchedule && failed(runCandidatePipeline(*clone, schedulePipeline(machine), c.error))) {
      if (c.error.empty())
        c.error = "bmsys-memory-schedule failed";
      return;
    }
    ScopedDiagnosticHandler handler(module.getContext(), [&](Diagnostic &d) {
      c.error += d.str();
      return success();
    });
    FailureOr<MemoryBreakdown> m = analyzeMemory(*clone, machine.workspaceBytes);
    if (failed(m))
      return;
    c.memory = *m;
    c.peak = m->total();
    int64_t maxSeq = m->maxSeq;
    FailureOr<StepEstimate> step =
        train ? estimateStep(*clone, "train_step", machine, c.microBatch, maxSeq, 0, runDtype)
              : estimateStep(*clone, "forward", machine, c.microBatch, 1, maxSeq / 2, runDtype);
    if (failed(step))
      return;
    c.step = *step;
    if (train) {
      c.tokensPerSecond = double(c.microBatch) * c.dp * maxSeq / std::max(step->total, 1e-30);
    } else {
      FailureOr<StepEstimate> prefill =
          estimateStep(*clone, "forward", machine, c.microBatch, maxSeq, 0, runDtype);
      if (failed(prefill))
        return;
      c.prefill = *prefill;
      c.tokensPerSecond = double(c.microBatch) / std::max(step->total, 1e-30);
    }
    c.fits = c.peak <= gpuBytes;
    if (!c.fits)
      c.misfit = "needs " + formatBytes(c.peak) + " per GPU";
    if (c.fits && hostBytes > 0 && c.memory.host > hostBytes) {
      c.fits = false;
      c.misfit = "needs " + formatBytes(c.memory.host) + " of host memory";
    }
  }

  LogicalResult printTable(const std::vector<Candidate> &cs, const Candidate *best,
                           const MachineModel &machine, StringRef calibrationName,
                           int64_t gpuBytes, bool train) {
    if (table.empty())
      return success();
    std::string error;
    auto file = openOutputFile(table, &error);
    if (!file)
      return getOperation().emitError() << "bmsys-fit: " << error;
    raw_ostream &os = file->os();
    os << "bmsys fit: " << mode << ", " << gpus << " GPU" << (gpus == 1 ? "" : "s") << " of "
       << formatBytes(gpuBytes) << ", calibration " << calibrationName << " ("
       << machine.device << ")\n";
    os << llvm::format("  %-3s %-60s %14s %12s %14s  %s\n", "#", "configuration", "peak/GPU",
                       train ? "step" : "decode", "tokens/s", "fits");
    for (auto [i, c] : llvm::enumerate(cs)) {
      std::string fits = !c.error.empty() ? "failed: " + c.error
                         : c.fits        ? (&c == best ? "yes  <- chosen" : "yes")
                                         : "no: " + c.misfit;
      if (!c.error.empty()) {
        os << llvm::format("  %-3d %-60s %14s %12s %14s  %s\n", int(i + 1),
                           c.describe(train).c_str(), "-", "-", "-", fits.c_str());
        continue;
      }
      os << llvm::format("  %-3d %-60s %14s %12s %14.1f  %s\n", int(i + 1),
                         c.describe(train).c_str(), formatBytes(c.peak).c_str(),
                         formatSeconds(c.step.total).c_str(), c.tokensPerSecond, fits.c_str());
    }
    file->keep();
    return success();
  }

  LogicalResult writeReport(const std::vector<Candidate> &cs, const Candidate *best,
                            const MachineModel &machine, StringRef calibrationName,
                            int64_t gpuBytes, int64_t hostBytes, bool train) {
    llvm::json::Array list;
    for (const Candidate &c : cs) {
      llvm::json::Object o{{"configuration", c.describe(train)},
                           {"pipeline", c.pipeline},
                           {"data_parallel", c.dp},
                           {"tensor_parallel", c.tp},
                           {"pipeline_parallel", c.pp},
                           {"zero_stage", c.zero},
                           {"checkpoint", c.checkpointName()},
                           {"micro_batch", c.microBatch},
                           {"offload", c.offload},
                           {"quantize", c.quantize},
                           {"memory_schedule", c.memorySchedule},
                           {"chosen", &c == best},
                           {"fits", c.fits}};
      if (!c.error.empty()) {
        o["error"] = c.error;
      } else {
        o["peak_bytes"] = c.peak;
        o["memory"] = memoryToJSON(c.memory);
        o["step"] = stepToJSON(c.step);
        if (!train)
          o["prefill"] = stepToJSON(c.prefill);
        o["tokens_per_s"] = c.tokensPerSecond;
      }
      list.push_back(std::move(o));
    }
    llvm::json::Object root{{"mode", mode.getValue()},
                            {"gpus", static_cast<int64_t>(gpus)},
                            {"gpu_memory_bytes", gpuBytes},
                            {"host_memory_bytes", hostBytes},
                            {"seq", static_cast<int64_t>(seq)},
                            {"calibration", calibrationName},
                            {"device", machine.device},
                            {"candidates", std::move(list)}};
    std::string error;
    auto file = openOutputFile(report, &error);
    if (!file)
      return getOperation().emitError() << "bmsys-fit: " << error;
    file->os() << llvm::formatv("{0:2}", llvm::json::Value(std::move(root))) << "\n";
    file->keep();
    return success();
  }

  /// Nothing fits: says the smallest GPU memory that would do with these
  /// GPUs, and (training) how many GPUs of this memory would do.
  void refuse(ModuleOp module, std::vector<Candidate> &cs, const MachineModel &machine,
              int64_t gpuBytes, int64_t hostBytes, bool train) {
    const Candidate *smallest = nullptr;
    for (const Candidate &c : cs)
      if (c.error.empty() && c.peak > 0 && (!smallest || c.peak < smallest->peak))
        smallest = &c;
    std::string msg;
    llvm::raw_string_ostream os(msg);
    os << "bmsys-fit: no configuration fits in " << formatBytes(gpuBytes) << " per GPU with "
       << gpus << " GPU" << (gpus == 1 ? "" : "s") << " (" << cs.size() << " tried)";
    if (!smallest) {
      os << "; every candidate failed to compile: " << cs.front().error;
    } else {
      os << "; the smallest needs " << formatBytes(smallest->peak) << " per GPU ("
         << smallest->describe(train) << ")";
      if (train) {
        // More data-parallel ranks shard more (ZeRO-3, checkpointing every
        // block, one sequence per rank: the smallest per-GPU plan).
        for (int64_t g = gpus * 2; g <= gpus * 64; g *= 2) {
          Candidate c;
          c.dp = g, c.zero = 3, c.checkpoint = "every", c.microBatch = 1;
          evaluate(module, c, machine, gpuBytes, hostBytes, train, false);
          if (c.error.empty() && c.fits) {
            os << "; or " << g << " GPUs of " << formatBytes(gpuBytes) << " ("
               << c.describe(train) << ": " << formatBytes(c.peak) << " per GPU)";
            break;
          }
        }
      }
    }
    module.emitError() << msg;
    signalPassFailure();
  }
};
} // namespace
