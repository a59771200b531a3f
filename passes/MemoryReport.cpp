//===- MemoryReport.cpp - bmsys-memory-report -----------------------------===//
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
void printRow(llvm::raw_ostream &os, StringRef what, int64_t bytes, StringRef note = "") {
  os << llvm::format("  %-22s %14lld B  %10.3f MiB", what.str().c_str(), (long long)bytes,
                     bytes / 1048576.0);
  if (!note.empty())
    os << "  " << note;
  os << "\n";
}

struct MemoryReport : bmsys::impl::BmsysMemoryReportBase<MemoryReport> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto attr = [&](StringRef name) -> int64_t {
      auto a = module->getAttrOfType<IntegerAttr>(name);
      return a ? a.getInt() : -1;
    };
    int64_t maxBatch = attr("bmsys_rt.max_batch"), maxSeq = attr("bmsys_rt.max_seq");
    int64_t pool = attr("bmsys_rt.activation_bytes");
    if (maxBatch < 0 || pool < 0) {
      module.emitError("bmsys-memory-report: expects a planned bmsys_rt module (run "
                       "bmsys-lower-to-rt and bmsys-plan-memory first)");
      return signalPassFailure();
    }
    int64_t weights = 0, weightCount = 0, state = 0, optimizer = 0, unplanned = 0;
    for (auto w : module.getOps<rt::WeightOp>()) {
      int64_t n = rt::elementBytes(w.getDtype());
      for (int64_t d : w.getShape())
        n *= d;
      weights += n;
      ++weightCount;
    }
    for (auto s : module.getOps<rt::StateOp>())
      (s.getRole() == "optimizer" ? optimizer : state) += s.getBytes();
    module.walk([&](rt::AllocOp a) {
      unplanned += rt::maxBytes(a.getDtype(), a.getShape(), maxBatch, maxSeq);
    });

    std::string error;
    auto file = openOutputFile(output, &error);
    if (!file) {
      module.emitError() << "bmsys-memory-report: " << error;
      return signalPassFailure();
    }
    llvm::raw_ostream &os = file->os();
    os << "bmsys memory report (max_batch=" << maxBatch << ", max_seq=" << maxSeq << ")\n";
    printRow(os, "weights", weights, std::to_string(weightCount) + " tensors");
    printRow(os, "activations (pool)", pool,
             llvm::formatv("{0} B without reuse", unplanned).str());
    printRow(os, "kv cache", state);
    if (optimizer)
      printRow(os, "optimizer state", optimizer);
    printRow(os, "total", weights + pool + state + optimizer);
    file->keep();
  }
};
} // namespace
