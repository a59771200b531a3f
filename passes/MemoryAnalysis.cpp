//===- MemoryAnalysis.cpp - where the memory of a planned module goes -----===//
#include "passes/MemoryAnalysis.h"

#include "dialects/bmsys_rt/BmsysRtDialect.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Format.h"

#include <cmath>
#include <optional>
#include <map>

using namespace mlir;

namespace bmsys {

namespace {
constexpr llvm::StringLiteral kBlockKey = "bmsys.block";
constexpr llvm::StringLiteral kRecomputeKey = "bmsys.recompute";

/// The first fused-location metadata dictionary inside `loc` holding `key`.
Attribute findLocationTag(Location loc, StringRef key) {
  Attribute found;
  loc->walk([&](Location l) {
    if (auto fused = dyn_cast<FusedLoc>(l))
      if (auto dict = dyn_cast_or_null<DictionaryAttr>(fused.getMetadata()))
        if ((found = dict.get(key)))
          return WalkResult::interrupt();
    return WalkResult::advance();
  });
  return found;
}

bool isCollective(StringRef kernel) {
  return kernel == "all_gather" || kernel == "reduce_scatter" || kernel == "all_reduce" ||
         kernel == "tp_all_reduce" || kernel == "send" || kernel == "recv";
}

/// One function's buffers, positions and the launches that read and write them.
struct FunctionFacts {
  rt::FuncOp func;
  DenseMap<Operation *, int64_t> position;
  DenseMap<Value, rt::LaunchOp> writer;           // first launch writing an alloc
  DenseMap<Value, int64_t> end;                   // position of its dealloc (INT64_MAX: none)
  SmallVector<rt::AllocOp> allocs;
  int64_t seed = -1;                              // cross_entropy_grad: start of backward

  explicit FunctionFacts(rt::FuncOp f) : func(f) {
    for (auto [i, op] : llvm::enumerate(f.getBody().front())) {
      position[&op] = i;
      if (auto alloc = dyn_cast<rt::AllocOp>(op)) {
        allocs.push_back(alloc);
        end[alloc.getBuffer()] = INT64_MAX;
      } else if (auto dealloc = dyn_cast<rt::DeallocOp>(op)) {
        end[dealloc.getBuffer()] = i;
      } else if (auto launch = dyn_cast<rt::LaunchOp>(op)) {
        for (Value out : launch.getOutputs())
          writer.try_emplace(out, launch);
        if (seed < 0 && launch.getKernel() == "cross_entropy_grad")
          seed = i;
      }
    }
  }
  StringRef kernelOf(Value buffer) {
    auto it = writer.find(buffer);
    return it == writer.end() ? StringRef() : it->second.getKernel();
  }
};

/// Parameter gradients: the gradient operands of the optimizer updates and of
/// the global norm, the inputs of the collectives that produced those, and
/// the partial sums (add) they were accumulated from.
llvm::DenseSet<Value> parameterGradients(FunctionFacts &f) {
  llvm::DenseSet<Value> grads;
  SmallVector<Value> work;
  f.func.walk([&](rt::LaunchOp launch) {
    StringRef k = launch.getKernel();
    if ((k == "adamw" || k == "sgd") && launch.getInputs().size() > 1)
      work.push_back(launch.getInputs()[1]);
    if (k == "global_norm")
      for (Value v : launch.getInputs())
        work.push_back(v);
  });
  while (!work.empty()) {
    Value v = work.pop_back_val();
    if (!v.getDefiningOp<rt::AllocOp>() || !grads.insert(v).second)
      continue;
    auto it = f.writer.find(v);
    if (it == f.writer.end())
      continue;
    rt::LaunchOp producer = it->second;
    StringRef k = producer.getKernel();
    if (k == "add" || k == "all_reduce" || k == "reduce_scatter")
      for (Value in : producer.getInputs())
        work.push_back(in);
  }
  return grads;
}

int64_t allocBytes(rt::AllocOp alloc) {
  if (auto b = alloc.getBytes())
    return *b;
  return 0;
}

} // namespace

std::string blockOfLocation(Location loc) {
  auto name = dyn_cast_or_null<StringAttr>(findLocationTag(loc, kBlockKey));
  return name ? name.str() : "";
}

bool isRecomputeLocation(Location loc) { return bool(findLocationTag(loc, kRecomputeKey)); }

Location tagRecomputeLocation(Location loc) {
  if (isRecomputeLocation(loc))
    return loc;
  MLIRContext *ctx = loc->getContext();
  auto meta = DictionaryAttr::get(
      ctx, {NamedAttribute(StringAttr::get(ctx, kRecomputeKey), UnitAttr::get(ctx))});
  return FusedLoc::get({loc}, meta, ctx);
}

Location tagBlockLocation(Location loc, StringRef name) {
  if (!blockOfLocation(loc).empty())
    return loc; // a nested block tagged it first
  MLIRContext *ctx = loc->getContext();
  auto meta = DictionaryAttr::get(
      ctx, {NamedAttribute(StringAttr::get(ctx, kBlockKey), StringAttr::get(ctx, name))});
  return FusedLoc::get({loc}, meta, ctx);
}

int64_t MemoryBreakdown::total() const {
  int64_t t = 0;
  for (const MemoryRow &r : rows)
    t += r.bytes;
  return t;
}

int64_t MemoryBreakdown::category(StringRef name) const {
  int64_t t = 0;
  for (const MemoryRow &r : rows)
    if (r.category == name)
      t += r.bytes;
  return t;
}

namespace {
/// Pipeline parallelism: the stage of a symbol (`pp_stage`) or function
/// (`bmsys_rt.pipeline_stage`); -1: none.
int64_t stageAttr(Operation *op, StringRef name) {
  auto a = op->getAttrOfType<IntegerAttr>(name);
  return a ? a.getInt() : -1;
}

FailureOr<MemoryBreakdown> analyzeStage(ModuleOp module, int64_t workspace, int64_t stage);
} // namespace

FailureOr<MemoryBreakdown> analyzeMemory(ModuleOp module, int64_t workspace, int64_t stage) {
  auto stagePools = module->getAttrOfType<DenseI64ArrayAttr>("bmsys_rt.stage_state_bytes");
  const int64_t stages = stagePools ? static_cast<int64_t>(stagePools.size()) : 0;
  if (stages == 0)
    return analyzeStage(module, workspace, -1);
  if (stage >= stages) {
    module.emitError() << "bmsys-memory-report: pipeline stage " << stage << " outside the module's "
                       << stages << " stages";
    return failure();
  }
  // Every stage's total; the one asked for, or the largest.
  std::optional<MemoryBreakdown> chosen;
  std::vector<int64_t> totals;
  for (int64_t s = 0; s < stages; ++s) {
    FailureOr<MemoryBreakdown> m = analyzeStage(module, workspace, s);
    if (failed(m))
      return failure();
    totals.push_back(m->total());
    if (stage == s || (stage < 0 && (!chosen || m->total() > chosen->total())))
      chosen = std::move(*m);
  }
  chosen->stageTotals = std::move(totals);
  return std::move(*chosen);
}

namespace {
FailureOr<MemoryBreakdown> analyzeStage(ModuleOp module, int64_t workspace, int64_t stage) {
  auto attr = [&](StringRef name) -> int64_t {
    auto a = module->getAttrOfType<IntegerAttr>(name);
    return a ? a.getInt() : -1;
  };
  MemoryBreakdown m;
  m.maxBatch = attr("bmsys_rt.max_batch");
  m.maxSeq = attr("bmsys_rt.max_seq");
  m.activationPool = attr("bmsys_rt.activation_bytes");
  m.statePool = std::max<int64_t>(attr("bmsys_rt.state_bytes"), 0);
  m.workspace = workspace;
  if (m.maxBatch < 0 || m.maxSeq < 0 || m.activationPool < 0) {
    module.emitError("bmsys-memory-report: expects a planned bmsys_rt module (run "
                     "bmsys-lower-to-rt and bmsys-plan-memory first)");
    return failure();
  }
  m.ranks = std::max<int64_t>(1, attr("bmsys_rt.data_parallel")) *
            std::max<int64_t>(1, attr("bmsys_rt.tensor_parallel"));
  // Pipeline parallelism: a rank of `stage` holds its stage's pools, weights,
  // states and function inputs, and the inputs of functions of no stage, as the
  // runtime allocates them (Artifact::held_by); states of no stage's function
  // (the KV cache of `forward`) are in no stage's pool.
  if (stage >= 0) {
    m.stage = stage;
    m.stages = attr("bmsys_rt.pipeline_stages");
    m.ranks *= m.stages;
    auto pools = [&](StringRef name) {
      auto a = module->getAttrOfType<DenseI64ArrayAttr>(name);
      return a && stage < static_cast<int64_t>(a.size()) ? a[stage] : int64_t(-1);
    };
    m.activationPool = pools("bmsys_rt.stage_activation_bytes");
    m.statePool = pools("bmsys_rt.stage_state_bytes");
    if (m.activationPool < 0 || m.statePool < 0) {
      module.emitError("bmsys-memory-report: a pipelined module needs one pool size per stage "
                       "(bmsys_rt.stage_activation_bytes / bmsys_rt.stage_state_bytes; run "
                       "bmsys-plan-memory)");
      return failure();
    }
  }
  // A symbol or function this rank holds: with a stage, its own and (but for
  // states) those of no stage.
  auto heldSymbol = [&](Operation *op, bool unstagedHeld) {
    if (stage < 0)
      return true;
    int64_t s = stageAttr(op, "pp_stage");
    return s < 0 ? unstagedHeld : s == stage;
  };
  auto heldFunction = [&](Operation *func) {
    int64_t s = stageAttr(func, "bmsys_rt.pipeline_stage");
    return stage < 0 || s < 0 || s == stage;
  };

  // Persistent memory: weights, states, inputs. Weights of layers a memory
  // schedule swaps (bmsys-memory-schedule: `swap_group`) live on the host and
  // run from two device slots.
  int64_t weights = 0, weightCount = 0, sharded = 0, swapped = 0, swappedCount = 0;
  // bmsys-offload: buffers with placement "host" (master weights, optimizer
  // state, gradient copies) are host memory, not device memory.
  auto onHost = [](Operation *op) {
    auto p = op->getAttrOfType<StringAttr>("placement");
    return p && p.getValue() == "host";
  };
  int64_t hostMasters = 0, hostOptimizer = 0, hostGrads = 0;
  for (auto w : module.getOps<rt::WeightOp>()) {
    if (!heldSymbol(w, true))
      continue;
    int64_t n = rt::elementBytes(w.getDtype());
    for (int64_t d : w.getShape())
      n *= d;
    if (onHost(w)) {
      hostMasters += n;
      continue;
    }
    if (w->hasAttr("swap_group")) {
      swapped += n;
      ++swappedCount;
      continue;
    }
    weights += n;
    ++weightCount;
    sharded += w.getShardRanks() ? 1 : 0;
  }
  int64_t slots = 0;
  if (auto schedule = module->getAttrOfType<DictionaryAttr>("bmsys_rt.memory_schedule"))
    if (auto slot = schedule.getAs<IntegerAttr>("slot_bytes"))
      slots = 2 * slot.getInt();
  int64_t kv = 0, optimizer = 0, states = 0;
  llvm::StringMap<int64_t> otherRoles;
  for (auto s : module.getOps<rt::StateOp>()) {
    if (!heldSymbol(s, false))
      continue;
    if (onHost(s)) {
      (s.getRole() == "optimizer" ? hostOptimizer : hostGrads) += s.getBytes();
      continue;
    }
    states += s.getBytes();
    if (s.getRole() == "kv_cache")
      kv += s.getBytes();
    else if (s.getRole() == "optimizer")
      optimizer += s.getBytes();
    else
      otherRoles[s.getRole()] += s.getBytes();
  }
  int64_t inputs = 0;
  module.walk([&](rt::InputOp in) {
    if (heldFunction(in->getParentOfType<rt::FuncOp>()))
      inputs += rt::maxBytes(in.getDtype(), in.getShape(), m.maxBatch, m.maxSeq);
  });

  // The function whose plan sets the pool, and the allocation reaching it.
  std::optional<FunctionFacts> peakFacts;
  rt::AllocOp peakAlloc;
  int64_t peakEnd = -1;
  for (auto func : module.getOps<rt::FuncOp>()) {
    if (stage >= 0 && stageAttr(func, "bmsys_rt.pipeline_stage") != stage)
      continue; // another stage's, or `forward` (not run on a pipelined artifact)
    FunctionFacts facts(func);
    for (rt::AllocOp alloc : facts.allocs) {
      if (!alloc.getOffset() || !alloc.getBytes()) {
        alloc.emitOpError("has no offset in the activation pool; run bmsys-plan-memory");
        return failure();
      }
      int64_t e = *alloc.getOffset() + *alloc.getBytes();
      if (e > peakEnd) {
        peakEnd = e;
        peakAlloc = alloc;
        if (!peakFacts || peakFacts->func != func)
          peakFacts.emplace(func);
      }
    }
  }

  auto add = [&](StringRef category, StringRef detail, int64_t bytes, std::string note = "") {
    m.rows.push_back({category.str(), detail.str(), bytes, std::move(note)});
  };
  add("parameters", "", weights,
      std::to_string(weightCount) + " tensors" +
          (sharded ? ", " + std::to_string(sharded) + " sharded" : ""));

  // The pool at its peak.
  int64_t liveAtPeak = 0;
  if (peakFacts) {
    FunctionFacts &f = *peakFacts;
    m.peakFunction = f.func.getSymName().str();
    int64_t at = f.position.lookup(peakAlloc);
    m.peakOp = at;
    llvm::DenseSet<Value> grads = parameterGradients(f);
    // Category rows in a fixed order; activations by block in first-use order.
    int64_t paramGrads = 0, comm = 0, actGrads = 0, otherFwd = 0;
    // Blocks in order of their first buffer.
    std::vector<std::pair<std::string, int64_t>> byBlock;
    auto blockSlot = [&](const std::string &name) -> int64_t & {
      for (auto &e : byBlock)
        if (e.first == name)
          return e.second;
      byBlock.emplace_back(name, 0);
      return byBlock.back().second;
    };
    for (rt::AllocOp alloc : f.allocs) {
      Value buf = alloc.getBuffer();
      m.unplannedActivations += allocBytes(alloc);
      if (grads.contains(buf))
        m.allGradients += allocBytes(alloc);
      int64_t def = f.position.lookup(alloc);
      if (def > at || f.end.lookup(buf) < at)
        continue; // not alive at the peak
      int64_t bytes = allocBytes(alloc);
      liveAtPeak += bytes;
      StringRef kernel = f.kernelOf(buf);
      if (grads.contains(buf) && !isCollective(kernel)) {
        paramGrads += bytes;
      } else if (isCollective(kernel)) {
        comm += bytes;
      } else if (f.seed >= 0 && def > f.seed && !isRecomputeLocation(alloc.getLoc())) {
        actGrads += bytes;
      } else if (std::string block = blockOfLocation(alloc.getLoc()); !block.empty()) {
        blockSlot(block) += bytes;
      } else {
        otherFwd += bytes;
      }
    }
    m.peakKernel = f.kernelOf(peakAlloc.getBuffer()).str();
    add("gradients", "", paramGrads,
        "parameter gradients alive at the peak; all of them: " + formatBytes(m.allGradients));
    add("optimizer_state", "", optimizer);
    for (auto &[block, bytes] : byBlock)
      add("activations", block, bytes);
    add("activations", "other", otherFwd, "outside blocks: embeddings, logits, loss");
    if (f.seed >= 0)
      add("activations", "backward", actGrads, "activation gradients and backward temporaries");
    add("communication", "", comm, "collective results: gathered parameters, gradient shards");
  } else {
    add("gradients", "", 0);
    add("optimizer_state", "", optimizer);
  }
  add("kv_cache", "", kv);
  for (auto &e : otherRoles)
    add("state", e.getKey(), e.getValue());
  add("inputs", "", inputs, "function inputs at the bounds");
  if (slots)
    add("swap_slots", "", slots, "2 slots for the swapped layers (bmsys-memory-schedule)");
  add("workspace", "", workspace);
  add("fragmentation", "", (m.activationPool - liveAtPeak) + (m.statePool - states),
      "pool alignment and gaps at the peak (" + formatBytes(m.activationPool - liveAtPeak) +
          "), state pool alignment (" + formatBytes(m.statePool - states) + ")");

  // Per block, in the training step: what the start of backward keeps.
  if (auto step = module.lookupSymbol<rt::FuncOp>("train_step")) {
    FunctionFacts f(step);
    if (f.seed >= 0) {
      std::vector<BlockMemory> blocks; // in order of their first buffer
      auto blockOf = [&](Operation *op) -> std::string {
        return op ? blockOfLocation(op->getLoc()) : "";
      };
      for (rt::AllocOp alloc : f.allocs) {
        std::string name = blockOfLocation(alloc.getLoc());
        if (name.empty())
          continue;
        auto found = llvm::find_if(blocks, [&](const BlockMemory &x) { return x.name == name; });
        if (found == blocks.end()) {
          blocks.push_back({});
          blocks.back().name = name;
          found = blocks.end() - 1;
        }
        BlockMemory &b = *found;
        Value buf = alloc.getBuffer();
        int64_t def = f.position.lookup(alloc), bytes = allocBytes(alloc);
        if (def > f.seed) {
          if (!isRecomputeLocation(alloc.getLoc()))
            continue; // the block's backward (gradients of its activations)
          // A recomputation (checkpointed block).
          b.checkpointed = true;
          b.recomputed += bytes;
          // Kept without checkpointing: the copies the backward reads.
          bool readByBackward = llvm::any_of(buf.getUsers(), [&](Operation *u) {
            auto l = dyn_cast<rt::LaunchOp>(u);
            return l && !isRecomputeLocation(u->getLoc()) &&
                   llvm::is_contained(l.getInputs(), buf);
          });
          if (readByBackward)
            b.keptIfNotCheckpointed += bytes;
          continue;
        }
        if (f.end.lookup(buf) < f.seed)
          continue; // dies within the forward
        b.kept += bytes;
        bool readOutside = llvm::any_of(buf.getUsers(), [&](Operation *u) {
          auto l = dyn_cast<rt::LaunchOp>(u);
          return l && f.position.lookup(u) < f.seed && blockOf(u) != name &&
                 llvm::is_contained(l.getInputs(), buf);
        });
        if (readOutside)
          b.keptIfCheckpointed += bytes;
      }
      for (BlockMemory &b : blocks) {
        b.keptIfNotCheckpointed += b.kept;
        m.blocks.push_back(b);
      }
    }
  }

  // Host memory: buffers an offload pass placed there (bmsys_rt.host), and
  // the size recorded by the module (bmsys_rt.host_bytes), when present.
  if (int64_t hostBytes = attr("bmsys_rt.host_bytes"); hostBytes > 0) {
    m.host += hostBytes;
    m.hostRows.push_back({"offload", "", hostBytes, "host buffers (bmsys_rt.host_bytes)"});
  }
  if (hostMasters + hostOptimizer + hostGrads > 0) {
    m.host += hostMasters + hostOptimizer + hostGrads;
    m.hostRows.push_back({"master_weights", "", hostMasters, "float32 master weights (bmsys-offload)"});
    m.hostRows.push_back({"optimizer_state", "", hostOptimizer, "offloaded optimizer state"});
    m.hostRows.push_back({"gradients", "", hostGrads, "gradient and norm copies for the CPU step"});
  }
  if (swapped) {
    m.host += swapped;
    m.hostRows.push_back({"swapped_weights", "", swapped,
                          std::to_string(swappedCount) + " tensors of swapped layers"});
  }
  return m;
}
} // namespace

std::string formatBytes(int64_t bytes) {
  double b = static_cast<double>(bytes);
  if (std::abs(b) >= 1024.0 * 1024 * 1024)
    return llvm::formatv("{0:F2} GiB", b / (1024.0 * 1024 * 1024)).str();
  if (std::abs(b) >= 1024.0 * 1024)
    return llvm::formatv("{0:F2} MiB", b / (1024.0 * 1024)).str();
  if (std::abs(b) >= 1024.0)
    return llvm::formatv("{0:F2} KiB", b / 1024.0).str();
  return std::to_string(bytes) + " B";
}

int64_t parseBytes(StringRef text) {
  text = text.trim();
  size_t i = 0;
  while (i < text.size() && (isdigit(text[i]) || text[i] == '.' || text[i] == 'e' ||
                             text[i] == 'E' || ((text[i] == '+' || text[i] == '-') && i > 0 &&
                                                (text[i - 1] == 'e' || text[i - 1] == 'E'))))
    ++i;
  StringRef num = text.take_front(i), unit = text.drop_front(i).trim();
  double v = 0;
  if (num.empty() || num.getAsDouble(v) || v < 0)
    return -1;
  std::string u = unit.lower();
  double mult = 1;
  if (u.empty() || u == "b")
    mult = 1;
  else if (u == "k" || u == "kib")
    mult = 1024.0;
  else if (u == "m" || u == "mib")
    mult = 1024.0 * 1024;
  else if (u == "g" || u == "gib")
    mult = 1024.0 * 1024 * 1024;
  else if (u == "t" || u == "tib")
    mult = 1024.0 * 1024 * 1024 * 1024;
  else if (u == "kb")
    mult = 1e3;
  else if (u == "mb")
    mult = 1e6;
  else if (u == "gb")
    mult = 1e9;
  else if (u == "tb")
    mult = 1e12;
  else
    return -1;
  double bytes = v * mult;
  if (bytes > 9.0e18)
    return -1;
  return static_cast<int64_t>(std::llround(bytes));
}

void printMemoryTable(const MemoryBreakdown &m, raw_ostream &os) {
  auto row = [&](StringRef what, int64_t bytes, StringRef note) {
    os << llvm::format("  %-30s %16lld B  %12s", what.str().c_str(), (long long)bytes,
                       formatBytes(bytes).c_str());
    if (!note.empty())
      os << "  " << note;
    os << "\n";
  };
  os << "bmsys memory report (max_batch=" << m.maxBatch << ", max_seq=" << m.maxSeq
     << ", per rank of " << m.ranks;
  if (m.stage >= 0)
    os << ", pipeline stage " << m.stage << " of " << m.stages;
  os << ")\n";
  if (!m.peakFunction.empty())
    os << "  peak of the activation pool: function '" << m.peakFunction << "', op " << m.peakOp
       << " (" << m.peakKernel << ")\n";
  for (const MemoryRow &r : m.rows) {
    std::string what = r.category;
    if (!r.detail.empty())
      what += " " + r.detail;
    row(what, r.bytes, r.note);
  }
  row("total", m.total(),
      llvm::formatv("activation pool {0} B, state pool {1} B", m.activationPool, m.statePool)
          .str());
  if (!m.hostRows.empty()) {
    os << "host memory\n";
    for (const MemoryRow &r : m.hostRows)
      row(r.category, r.bytes, r.note);
  }
  if (!m.blocks.empty()) {
    os << "activations kept for the backward pass, per block\n";
    os << llvm::format("  %-16s %-5s %16s %16s %16s %16s\n", "block", "ckpt", "kept",
                       "if checkpointed", "if not", "recomputed");
    for (const BlockMemory &b : m.blocks)
      os << llvm::format("  %-16s %-5s %16lld %16lld %16lld %16lld\n", b.name.c_str(),
                         b.checkpointed ? "yes" : "no", (long long)b.kept,
                         (long long)b.keptIfCheckpointed, (long long)b.keptIfNotCheckpointed,
                         (long long)b.recomputed);
  }
}

llvm::json::Value memoryToJSON(const MemoryBreakdown &m) {
  llvm::json::Array rows, hostRows, blocks;
  for (const MemoryRow &r : m.rows)
    rows.push_back(llvm::json::Object{
        {"category", r.category}, {"detail", r.detail}, {"bytes", r.bytes}, {"note", r.note}});
  for (const MemoryRow &r : m.hostRows)
    hostRows.push_back(llvm::json::Object{
        {"category", r.category}, {"detail", r.detail}, {"bytes", r.bytes}, {"note", r.note}});
  for (const BlockMemory &b : m.blocks)
    blocks.push_back(llvm::json::Object{{"name", b.name},
                                        {"checkpointed", b.checkpointed},
                                        {"kept_bytes", b.kept},
                                        {"kept_if_checkpointed_bytes", b.keptIfCheckpointed},
                                        {"kept_if_not_checkpointed_bytes", b.keptIfNotCheckpointed},
                                        {"recomputed_bytes", b.recomputed}});
  llvm::json::Object categories;
  for (const MemoryRow &r : m.rows)
    categories[r.category] = m.category(r.category);
  llvm::json::Array stageTotals;
  for (int64_t t : m.stageTotals)
    stageTotals.push_back(t);
  return llvm::json::Object{
      {"pipeline_stage", m.stage},
      {"pipeline_stages", m.stages},
      {"stage_total_bytes", std::move(stageTotals)},
      {"max_batch", m.maxBatch},
      {"max_seq", m.maxSeq},
      {"ranks", m.ranks},
      {"total_bytes", m.total()},
      {"activation_pool_bytes", m.activationPool},
      {"state_pool_bytes", m.statePool},
      {"workspace_bytes", m.workspace},
      {"host_bytes", m.host},
      {"peak", llvm::json::Object{{"function", m.peakFunction},
                                  {"op", m.peakOp},
                                  {"kernel", m.peakKernel}}},
      {"categories", std::move(categories)},
      {"rows", std::move(rows)},
      {"host", std::move(hostRows)},
      {"blocks", std::move(blocks)},
  };
}

} // namespace bmsys
