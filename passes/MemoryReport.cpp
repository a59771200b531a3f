//===- MemoryReport.cpp - bmsys-memory-report -----------------------------===//
//
// Prints the analysis of passes/MemoryAnalysis.h as a table and, with `json`,
// writes it as JSON. The IR is not changed.
//
//===----------------------------------------------------------------------===//
#include "passes/CostModel.h"
#include "passes/MemoryAnalysis.h"
#include "passes/Passes.h"

#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/ToolOutputFile.h"

namespace bmsys {
#define GEN_PASS_DEF_BMSYSMEMORYREPORT
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace {
struct MemoryReport : bmsys::impl::BmsysMemoryReportBase<MemoryReport> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    int64_t workspaceBytes = parseBytes(workspace);
    if (workspaceBytes < 0) {
      module.emitError() << "bmsys-memory-report: workspace: '" << workspace
                         << "' is not a size (bytes, or a number with KiB/MiB/GiB/KB/MB/GB)";
      return signalPassFailure();
    }
    FailureOr<MemoryBreakdown> m = analyzeMemory(module, workspaceBytes);
    if (failed(m))
      return signalPassFailure();
    // Pipeline parallelism: each stage's ranks hold different memory; one table
    // per stage (the JSON's top level is the stage that needs the most).
    std::vector<MemoryBreakdown> stages;
    for (int64_t s = 0; s < m->stages; ++s) {
      FailureOr<MemoryBreakdown> ms = analyzeMemory(module, workspaceBytes, s);
      if (failed(ms))
        return signalPassFailure();
      stages.push_back(std::move(*ms));
    }

    auto write = [&](StringRef path, auto &&print) -> LogicalResult {
      std::string error;
      auto file = openOutputFile(path, &error);
      if (!file)
        return module.emitError() << "bmsys-memory-report: " << error;
      print(file->os());
      file->keep();
      return success();
    };
    // With a calibration file: the cost model's time of one call of each
    // function at the bounds (docs/autofit.md).
    llvm::json::Object times;
    std::string timeTable;
    if (!calibration.empty()) {
      llvm::Expected<MachineModel> machine = loadMachineModel(calibration);
      if (!machine) {
        module.emitError() << "bmsys-memory-report: " << llvm::toString(machine.takeError());
        return signalPassFailure();
      }
      llvm::raw_string_ostream os(timeTable);
      os << "predicted time per call (calibration " << calibration << ", B=" << m->maxBatch
         << ", S=" << m->maxSeq << ")\n";
      for (auto func : module.getOps<rt::FuncOp>()) {
        FailureOr<StepEstimate> e =
            estimateStep(module, func.getSymName(), *machine, m->maxBatch, m->maxSeq);
        if (failed(e))
          return signalPassFailure();
        os << llvm::format("  %-16s %.4e s  (gemm %.4e, attention %.4e, memory-bound %.4e, "
                           "collectives %.4e, host %.4e, exposed communication %.4e; %lld "
                           "launches, %.4e FLOP)\n",
                           func.getSymName().str().c_str(), e->total, e->gemm, e->attention,
                           e->memoryBound, e->comm, e->host, e->exposedComm,
                           (long long)e->launches, e->flops);
        times[func.getSymName()] = stepToJSON(*e);
      }
    }
    if (failed(write(output, [&](raw_ostream &os) {
          if (stages.empty())
            printMemoryTable(*m, os);
          for (const MemoryBreakdown &ms : stages)
            printMemoryTable(ms, os);
          os << timeTable;
        })))
      return signalPassFailure();
    if (!json.empty() && failed(write(json, [&](raw_ostream &os) {
          llvm::json::Value v = memoryToJSON(*m);
          if (!stages.empty()) {
            llvm::json::Array all;
            for (const MemoryBreakdown &ms : stages)
              all.push_back(memoryToJSON(ms));
            (*v.getAsObject())["stages"] = std::move(all);
          }
          if (!times.empty())
            (*v.getAsObject())["time"] = std::move(times);
          os << llvm::formatv("{0:2}", v) << "\n";
        })))
      return signalPassFailure();
  }
};
} // namespace
