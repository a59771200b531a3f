//===- MemorySchedule.cpp - bmsys-memory-schedule -------------------------===//
//
// Decides, for a device memory budget, which layers stay resident and which
// are swapped in from host memory through 2 slots (BMInf's scheduling), records
// the plan in the IR and prints a report. The runtime side is
// runtime/core/swap_schedule.h.
//
//===----------------------------------------------------------------------===//
#include "passes/MemoryAnalysis.h"
#include "passes/Passes.h"

#include "dialects/bmsys_rt/BmsysRtDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Regex.h"
#include "llvm/Support/ToolOutputFile.h"

#include <map>

namespace bmsys {
#define GEN_PASS_DEF_BMSYSMEMORYSCHEDULE
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace {

// The runtime lays a swapped layer's weights out at this alignment (swap_schedule.cpp).
constexpr int64_t kSlotAlign = 256;
int64_t alignUp(int64_t v) { return (v + kSlotAlign - 1) / kSlotAlign * kSlotAlign; }

struct Layer {
  int64_t number = 0;
  SmallVector<rt::WeightOp> weights;
  int64_t bytes = 0; // in its slot layout
};

// "0-2, 4-6, 8" for sorted numbers.
std::string ranges(ArrayRef<int64_t> v) {
  std::string s;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1)
      ++j;
    if (!s.empty())
      s += ", ";
    s += j == i ? std::to_string(v[i]) : std::to_string(v[i]) + "-" + std::to_string(v[j]);
    i = j + 1;
  }
  return s.empty() ? "none" : s;
}

struct MemorySchedule : bmsys::impl::BmsysMemoryScheduleBase<MemorySchedule> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto fail = [&](const Twine &msg) {
      module.emitError() << "bmsys-memory-schedule: " << msg;
      signalPassFailure();
    };
    const int64_t budgetBytes = parseBytes(budget);
    if (budget.empty())
      return fail("the option 'budget' is required (e.g. budget=6GiB)");
    if (budgetBytes <= 0)
      return fail("budget: '" + budget + "' is not a size (bytes, or a number with KiB/MiB/GiB/KB/MB/GB)");
    const int64_t workspaceBytes = parseBytes(workspace);
    if (workspaceBytes < 0)
      return fail("workspace: '" + workspace + "' is not a size");
    if (!(linkGbps > 0))
      return fail("link-gbps must be positive, not " + std::to_string(linkGbps));
    Type runType;
    OpBuilder b(module.getContext());
    if (dtype == "f32" || dtype == "fp32")
      runType = b.getF32Type();
    else if (dtype == "bf16")
      runType = b.getBF16Type();
    else if (dtype == "f16" || dtype == "fp16")
      runType = b.getF16Type();
    else if (!dtype.empty())
      return fail("dtype: '" + dtype + "' (expected f32, bf16 or f16)");
    llvm::Regex re(layerPattern);
    std::string reError;
    if (!re.isValid(reError))
      return fail("layer-pattern '" + layerPattern + "': " + reError);

    auto attr = [&](StringRef name) -> int64_t {
      auto a = module->getAttrOfType<IntegerAttr>(name);
      return a ? a.getInt() : -1;
    };
    const int64_t maxBatch = attr("bmsys_rt.max_batch"), maxSeq = attr("bmsys_rt.max_seq");
    const int64_t activations = attr("bmsys_rt.activation_bytes");
    const int64_t states = std::max<int64_t>(attr("bmsys_rt.state_bytes"), 0);
    if (maxBatch < 0 || maxSeq < 0 || activations < 0)
      return fail("expects a planned bmsys_rt module (run bmsys-lower-to-rt and bmsys-plan-memory first)");
    int64_t inputs = 0;
    module.walk([&](rt::InputOp in) { inputs += rt::maxBytes(in.getDtype(), in.getShape(), maxBatch, maxSeq); });

    // linear_int8 scales are read as f32 whatever the run's dtype.
    llvm::DenseSet<StringRef> keepF32;
    module.walk([&](rt::LaunchOp l) {
      if (l.getKernel() != "linear_int8" || l.getInputs().size() < 3)
        return;
      if (auto ref = l.getInputs()[2].getDefiningOp<rt::WeightRefOp>())
        keepF32.insert(ref.getWeight());
    });
    // Weights swapped layers' slots could not hold: training updates them in place.
    llvm::DenseSet<StringRef> written;
    module.walk([&](rt::LaunchOp l) {
      for (Value out : l.getOutputs())
        if (auto ref = out.getDefiningOp<rt::WeightRefOp>())
          written.insert(ref.getWeight());
    });

    std::map<int64_t, Layer> layers;
    int64_t fixedWeights = 0, weightCount = 0;
    for (auto w : module.getOps<rt::WeightOp>()) {
      Type t = w.getDtype();
      if (runType && isa<FloatType>(t) && !keepF32.contains(w.getSymName()))
        t = runType;
      int64_t bytes = rt::elementBytes(t);
      for (int64_t d : w.getShape())
        bytes *= d;
      ++weightCount;
      SmallVector<StringRef, 4> m;
      if (w.getShardRanks() || written.contains(w.getSymName()) || !re.match(w.getKey(), &m) ||
          m.size() < 2) {
        fixedWeights += bytes;
        continue;
      }
      int64_t number = 0;
      if (m.back().getAsInteger(10, number)) {
        fixedWeights += bytes;
        continue;
      }
      Layer &layer = layers[number];
      layer.number = number;
      layer.weights.push_back(w);
      layer.bytes += alignUp(bytes);
    }
    if (layers.empty())
      return fail("no weight key matches layer-pattern '" + layerPattern + "' (" +
                  std::to_string(weightCount) + " weights): there are no layers to swap");

    // Layers in execution order: by their first read in the first function.
    std::vector<Layer *> order;
    {
      llvm::DenseMap<StringRef, int64_t> layerOf;
      for (auto &[n, l] : layers)
        for (rt::WeightOp w : l.weights)
          layerOf[w.getSymName()] = n;
      llvm::SetVector<int64_t> seen;
      for (auto func : module.getOps<rt::FuncOp>()) {
        func.walk([&](rt::WeightRefOp ref) {
          auto it = layerOf.find(ref.getWeight());
          if (it != layerOf.end())
            seen.insert(it->second);
        });
        break;
      }
      for (int64_t n : seen)
        order.push_back(&layers[n]);
      for (auto &[n, l] : layers)
        if (!seen.contains(n))
          order.push_back(&l);
    }
    const int64_t n = static_cast<int64_t>(order.size());
    int64_t allLayers = 0, maxLayer = 0;
    for (Layer *l : order) {
      allLayers += l->bytes;
      maxLayer = std::max(maxLayer, l->bytes);
    }
    const int64_t working = activations + states + inputs + workspaceBytes + fixedWeights;

    // Evenly spaced: swapped positions (k+1)·n/s − 1, so the gaps (also from the last
    // swapped layer around to the first of the next call) differ by at most one.
    auto chooseSwapped = [&](int64_t s) {
      std::vector<int64_t> pos;
      for (int64_t k = 0; k < s; ++k)
        pos.push_back((k + 1) * n / s - 1);
      return pos;
    };
    auto need = [&](const std::vector<int64_t> &pos, int64_t *slot) {
      int64_t swappedBytes = 0, largest = 0;
      for (int64_t p : pos) {
        swappedBytes += order[p]->bytes;
        largest = std::max(largest, order[p]->bytes);
      }
      *slot = largest;
      const int64_t slots = pos.size() >= 2 ? 2 : pos.size();
      return working + (allLayers - swappedBytes) + slots * largest;
    };

    std::string header = llvm::formatv("bmsys memory schedule (budget {0}, link {1:F1} GB/s, weights {2})",
                                       formatBytes(budgetBytes), static_cast<double>(linkGbps),
                                       dtype.empty() ? std::string("as compiled") : "as " + dtype);
    std::string workingText = llvm::formatv(
        "{0} (activation pool {1}, KV cache and state {2}, inputs {3}, workspace {4}, weights outside "
        "layers {5})",
        formatBytes(working), formatBytes(activations), formatBytes(states), formatBytes(inputs),
        formatBytes(workspaceBytes), formatBytes(fixedWeights));

    std::vector<int64_t> swappedPos;
    int64_t slotBytes = 0, deviceBytes = working + allLayers;
    if (deviceBytes > budgetBytes) {
      const int64_t smallest = working + 2 * maxLayer;
      if (n < 2 || smallest > budgetBytes) {
        int64_t minimum = n < 2 ? working + maxLayer : smallest;
        return fail(llvm::formatv("budget {0} ({1} B) cannot hold the working set {2} and 2 swap slots of "
                                  "the largest layer ({3}); the smallest budget that works is {4} ({5} B)",
                                  formatBytes(budgetBytes), budgetBytes, workingText, formatBytes(maxLayer),
                                  formatBytes(minimum), minimum)
                        .str());
      }
      for (int64_t s = 1; s <= n; ++s) {
        std::vector<int64_t> pos = chooseSwapped(s);
        int64_t slot = 0, bytes = need(pos, &slot);
        if (bytes <= budgetBytes) {
          swappedPos = std::move(pos);
          slotBytes = slot;
          deviceBytes = bytes;
          break;
        }
      }
    }

    // Record the plan.
    SmallVector<int64_t> swapped, resident;
    llvm::DenseSet<int64_t> isSwapped;
    for (int64_t p : swappedPos)
      isSwapped.insert(p);
    int64_t movedPerToken = 0;
    for (int64_t p = 0; p < n; ++p) {
      Layer *l = order[p];
      if (isSwapped.contains(p)) {
        const int64_t group = static_cast<int64_t>(swapped.size());
        swapped.push_back(l->number);
        movedPerToken += l->bytes;
        for (rt::WeightOp w : l->weights)
          w->setAttr("swap_group", b.getI64IntegerAttr(group));
      } else {
        resident.push_back(l->number);
      }
    }
    // With at most 2 swapped layers each has its own slot: they are copied once.
    if (swapped.size() <= 2)
      movedPerToken = 0;
    if (!swapped.empty()) {
      NamedAttrList plan;
      plan.append("budget", b.getI64IntegerAttr(budgetBytes));
      plan.append("bytes_per_token", b.getI64IntegerAttr(movedPerToken));
      plan.append("link_gbps", b.getF64FloatAttr(linkGbps));
      plan.append("resident", b.getDenseI64ArrayAttr(resident));
      plan.append("slot_bytes", b.getI64IntegerAttr(slotBytes));
      plan.append("swapped", b.getDenseI64ArrayAttr(swapped));
      module->setAttr("bmsys_rt.memory_schedule", plan.getDictionary(module.getContext()));
    }

    std::string error;
    auto file = openOutputFile(report, &error);
    if (!file)
      return fail(error);
    raw_ostream &os = file->os();
    SmallVector<int64_t> sortedResident(resident), sortedSwapped(swapped);
    llvm::sort(sortedResident);
    llvm::sort(sortedSwapped);
    os << header << "\n";
    os << llvm::formatv("  working set          {0}\n", workingText);
    os << llvm::formatv("  layers               {0}, {1} in all, the largest {2}\n", n, formatBytes(allLayers),
                        formatBytes(maxLayer));
    os << llvm::formatv("  resident layers      {0}: {1}\n", resident.size(), ranges(sortedResident));
    os << llvm::formatv("  swapped layers       {0}: {1}", swapped.size(), ranges(sortedSwapped));
    if (!swapped.empty())
      os << llvm::formatv(" ({0} slot{1} of {2})", swapped.size() >= 2 ? 2 : 1, swapped.size() >= 2 ? "s" : "",
                          formatBytes(slotBytes));
    os << "\n";
    os << llvm::formatv("  device memory        {0} of {1}\n", formatBytes(deviceBytes), formatBytes(budgetBytes));
    os << llvm::formatv("  bytes moved per token {0} ({1} B)\n", formatBytes(movedPerToken), movedPerToken);
    if (movedPerToken > 0)
      os << llvm::formatv("  predicted decode     {0:F1} tokens/s at {1:F1} GB/s (bound by the link)\n",
                          linkGbps * 1e9 / static_cast<double>(movedPerToken), static_cast<double>(linkGbps));
    else
      os << "  predicted decode     not bound by the link (no weights move after the first call)\n";
    file->keep();
  }
};
} // namespace
