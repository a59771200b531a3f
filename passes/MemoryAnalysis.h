//===- MemoryAnalysis.h - where the memory of a planned module goes -------===//
//
// The analysis behind bmsys-memory-report and bmsys-fit. It reads a module
// after bmsys-plan-memory and accounts for every byte the runtime allocates
// for it on one rank (docs/autofit.md):
//
//   weights + activation pool + state pool + inputs (+ workspace)
//
// The activation pool is one block of memory reused by lifetime, so its bytes
// are attributed at the moment the pool reaches its size (the peak): the
// buffers alive then, by category (block activations, activation gradients,
// parameter gradients, communication buffers), plus what the placement could
// not fill (fragmentation and alignment). The rows therefore sum exactly to
// the plan's total.
//
//===----------------------------------------------------------------------===//
#ifndef BMSYS_PASSES_MEMORYANALYSIS_H
#define BMSYS_PASSES_MEMORYANALYSIS_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <string>
#include <vector>

namespace bmsys {

/// One row of the breakdown.
struct MemoryRow {
  std::string category; // parameters, gradients, optimizer_state, activations, ...
  std::string detail;   // e.g. the block name for activations; "" otherwise
  int64_t bytes = 0;
  std::string note;
};

/// The activations of one block (bmsys.block) of the training step, measured
/// at the start of the backward pass (the cross_entropy_grad launch).
struct BlockMemory {
  std::string name;
  bool checkpointed = false; // its forward is recomputed in the backward pass
  int64_t kept = 0;          // bytes of its forward buffers alive at the start of backward
  int64_t keptIfCheckpointed = 0;   // of those, the ones read outside the block
  int64_t keptIfNotCheckpointed = 0; // kept + what its recomputation rebuilds for the backward
  int64_t recomputed = 0;    // bytes of its buffers created in the backward pass
};

struct MemoryBreakdown {
  int64_t maxBatch = 0, maxSeq = 0, ranks = 1;
  /// Pipeline parallelism (per-stage pools of bmsys-plan-memory): the stage whose
  /// rank this is, of `stages`, and every stage's total (by stage); -1 / 0 / empty
  /// without. The rows then count only that stage's weights, states, inputs and pools.
  int64_t stage = -1, stages = 0;
  std::vector<int64_t> stageTotals;
  int64_t activationPool = 0; // bmsys_rt.activation_bytes
  int64_t statePool = 0;      // bmsys_rt.state_bytes
  int64_t workspace = 0;      // backend workspace (an input of the analysis)
  int64_t host = 0;           // host memory (offloaded buffers), not part of `total`
  std::string peakFunction;   // the function whose plan sets the pool size
  int64_t peakOp = -1;        // index of the allocation that reaches the peak, in that function
  std::string peakKernel;     // the kernel writing that allocation
  std::vector<MemoryRow> rows;     // device memory; sums to total()
  std::vector<MemoryRow> hostRows; // host memory
  std::vector<BlockMemory> blocks; // training step only
  /// Bytes of every parameter gradient / communication buffer / activation
  /// buffer of the peak function if none were reused (for notes).
  int64_t allGradients = 0, unplannedActivations = 0;

  int64_t total() const;
  /// Sum of the rows of one category.
  int64_t category(llvm::StringRef name) const;
};

/// Analyses a module after bmsys-plan-memory. `workspace` is added as its own
/// row (the backend's scratch memory, from the calibration file). Emits an
/// error on the module and fails when the module is not planned. A pipelined
/// module is analysed for the ranks of pipeline stage `stage` (each holds only
/// its stage's memory); with stage -1, for the stage whose ranks need the most.
mlir::FailureOr<MemoryBreakdown> analyzeMemory(mlir::ModuleOp module, int64_t workspace = 0,
                                               int64_t stage = -1);

/// The table bmsys-memory-report prints.
void printMemoryTable(const MemoryBreakdown &m, llvm::raw_ostream &os);
/// The same as JSON (docs/autofit.md describes the fields).
llvm::json::Value memoryToJSON(const MemoryBreakdown &m);

/// The block (bmsys.block name) an op was inlined from, recorded in its
/// location by inlineBlock; "" when none.
std::string blockOfLocation(mlir::Location loc);
/// `loc` tagged with the block `name` (a fused location whose metadata is
/// {bmsys.block = name}); unchanged when it already names a block.
mlir::Location tagBlockLocation(mlir::Location loc, llvm::StringRef name);

/// `loc` marked as a recomputation (bmsys-autodiff's copies of a checkpointed
/// block's ops): a fused location with metadata {bmsys.recompute}.
mlir::Location tagRecomputeLocation(mlir::Location loc);
bool isRecomputeLocation(mlir::Location loc);

/// "1.50 GiB", "12.0 MiB", "512 B".
std::string formatBytes(int64_t bytes);
/// Parses "80GiB", "80G" (GiB), "512MiB", "1.5e9" (bytes), "123": bytes, or -1.
int64_t parseBytes(llvm::StringRef text);

} // namespace bmsys

#endif // BMSYS_PASSES_MEMORYANALYSIS_H
