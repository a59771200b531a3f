//===- CostModel.cpp - predicted step time of a planned module ------------===//
#include "passes/CostModel.h"

#include "dialects/bmsys_rt/BmsysRtDialect.h"

#include "llvm/Support/MemoryBuffer.h"

#include <algorithm>
#include <cmath>

using namespace mlir;

namespace bmsys {

namespace {
llvm::Error fieldError(StringRef path, const Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), (path + ": " + what).str());
}

/// Falls back from a missing dtype to the nearest one that exists: f16 <-> bf16,
/// then f32.
template <typename Map>
auto findDtype(const Map &m, StringRef dtype) -> decltype(m.end()) {
  for (StringRef d : {dtype, dtype == "bf16" ? StringRef("f16") : StringRef("bf16"),
                      StringRef("f32")})
    if (auto it = m.find(d.str()); it != m.end())
      return it;
  return m.end();
}
} // namespace

namespace {
/// The rate of a (size, rate) table at `size`, interpolated in log(size); below the
/// smallest point the time stays that point's time.
double interpolateRate(const std::vector<std::pair<double, double>> &pts, double size) {
  if (pts.empty())
    return 0;
  if (size <= pts.front().first)
    return pts.front().second * size / pts.front().first;
  if (size >= pts.back().first)
    return pts.back().second;
  for (size_t i = 1; i < pts.size(); ++i)
    if (size <= pts[i].first) {
      double a = std::log(pts[i - 1].first), b = std::log(pts[i].first);
      double t = (std::log(size) - a) / (b - a);
      return pts[i - 1].second + t * (pts[i].second - pts[i - 1].second);
    }
  return pts.back().second;
}
} // namespace

double MachineModel::gemmRate(StringRef dtype, double flops) const {
  auto it = findDtype(gemm, dtype);
  return it == gemm.end() ? 0 : interpolateRate(it->second, flops);
}

double MachineModel::gemvRate(double weightBytes) const {
  return gemv.empty() ? memoryBandwidth : interpolateRate(gemv, weightBytes);
}

double MachineModel::streamRamp(double bytes) const {
  if (gemv.empty() || memoryBandwidth <= 0)
    return 0;
  double excess = 0;
  for (const auto &[size, rate] : gemv)
    excess += std::max(0.0, size / rate - size / memoryBandwidth);
  excess /= double(gemv.size());
  return excess * std::min(1.0, bytes / gemv.front().first);
}

double MachineModel::attentionRate(StringRef dtype) const {
  auto it = findDtype(attention, dtype);
  return it == attention.end() ? 0 : it->second;
}

double MachineModel::bus(StringRef collective) const {
  if (auto it = busBandwidth.find(collective.str()); it != busBandwidth.end())
    return it->second;
  // A collective not calibrated runs at the all-reduce's bus bandwidth.
  if (auto it = busBandwidth.find("all_reduce"); it != busBandwidth.end())
    return it->second;
  return 0;
}

llvm::Expected<MachineModel> parseMachineModel(const llvm::json::Value &json, StringRef path) {
  const llvm::json::Object *o = json.getAsObject();
  if (!o)
    return fieldError(path, "not a JSON object");
  if (o->getString("format") != StringRef("bmsys-calibration"))
    return fieldError(path, "not a calibration file (\"format\" must be \"bmsys-calibration\")");
  if (o->getInteger("version") != 1)
    return fieldError(path, "unsupported \"version\" (this compiler reads version 1)");
  MachineModel m;
  m.device = o->getString("device").value_or("").str();
  m.backend = o->getString("backend").value_or("").str();
  m.source = o->getString("source").value_or("").str();
  m.memoryBytes = o->getInteger("memory_bytes").value_or(0);
  m.hostMemoryBytes = o->getInteger("host_memory_bytes").value_or(0);
  m.workspaceBytes = o->getInteger("workspace_bytes").value_or(0);
  auto positive = [&](StringRef key, double &out, bool required) -> llvm::Error {
    std::optional<double> v = o->getNumber(key);
    if (!v) {
      if (required)
        return fieldError(path, "missing number \"" + key + "\"");
      return llvm::Error::success();
    }
    if (!(*v > 0) || !std::isfinite(*v))
      return fieldError(path, "\"" + key + "\" must be positive");
    out = *v;
    return llvm::Error::success();
  };
  if (auto e = positive("memory_bandwidth", m.memoryBandwidth, true))
    return std::move(e);
  if (auto e = positive("h2d_bandwidth", m.h2dBandwidth, false))
    return std::move(e);
  if (auto e = positive("d2h_bandwidth", m.d2hBandwidth, false))
    return std::move(e);
  if (auto e = positive("host_adam_rate", m.hostAdamRate, false))
    return std::move(e);
  m.launchLatency = std::max(0.0, o->getNumber("launch_latency_s").value_or(0));
  m.graphKernelLatency = std::max(0.0, o->getNumber("graph_kernel_latency_s").value_or(0));
  m.overlap = o->getBoolean("overlap").value_or(false);

  // A non-empty array of [size, rate] pairs of positive numbers, sorted by size.
  auto table = [&](const llvm::json::Value &list, const Twine &where, StringRef entry,
                   std::vector<std::pair<double, double>> &out) -> llvm::Error {
    const llvm::json::Array *pts = list.getAsArray();
    if (!pts || pts->empty())
      return fieldError(path, where + " must be a non-empty array");
    for (const llvm::json::Value &p : *pts) {
      const llvm::json::Array *pair = p.getAsArray();
      std::optional<double> f = pair && pair->size() == 2 ? (*pair)[0].getAsNumber() : std::nullopt;
      std::optional<double> r = pair && pair->size() == 2 ? (*pair)[1].getAsNumber() : std::nullopt;
      if (!f || !r || !(*f > 0) || !(*r > 0))
        return fieldError(path, where + " entries must be " + entry + " with positive numbers");
      out.emplace_back(*f, *r);
    }
    llvm::sort(out);
    return llvm::Error::success();
  };
  const llvm::json::Object *gemm = o->getObject("gemm");
  if (!gemm || gemm->empty())
    return fieldError(path, "missing object \"gemm\" (dtype -> [[flops, flop/s], ...])");
  for (const auto &[dtype, list] : *gemm)
    if (auto e = table(list, "\"gemm\"." + dtype.str(), "[flops, flop/s]", m.gemm[dtype.str()]))
      return std::move(e);
  if (const llvm::json::Value *gemv = o->get("gemv"))
    if (auto e = table(*gemv, "\"gemv\"", "[weight bytes, bytes/s]", m.gemv))
      return std::move(e);
  if (const llvm::json::Object *att = o->getObject("attention"))
    for (const auto &[dtype, v] : *att) {
      std::optional<double> r = v.getAsNumber();
      if (!r || !(*r > 0))
        return fieldError(path, "\"attention\"." + dtype.str() + " must be a positive number");
      m.attention[dtype.str()] = *r;
    }
  if (const llvm::json::Object *c = o->getObject("collectives")) {
    m.collectiveLatency = std::max(0.0, c->getNumber("latency_s").value_or(0));
    for (StringRef k : {"all_reduce", "reduce_scatter", "all_gather", "send_recv"})
      if (std::optional<double> v = c->getNumber(k)) {
        if (!(*v > 0))
          return fieldError(path, "\"collectives\"." + k + " must be positive");
        m.busBandwidth[k.str()] = *v;
      }
  }
  return m;
}

llvm::Expected<MachineModel> loadMachineModel(StringRef path) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return fieldError(path, "cannot read: " + buffer.getError().message());
  llvm::Expected<llvm::json::Value> json = llvm::json::parse((*buffer)->getBuffer());
  if (!json)
    return fieldError(path, "not valid JSON: " + llvm::toString(json.takeError()));
  return parseMachineModel(*json, path);
}

namespace {
struct Operand {
  Type dtype;
  SmallVector<int64_t> shape;
  Operation *key = nullptr; // the alloc / input, or the weight / state declaration
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    return n;
  }
  double bytes() const { return double(numel()) * rt::elementBytes(dtype); }
};

std::string dtypeName(Type t) {
  if (t.isBF16())
    return "bf16";
  if (t.isF16())
    return "f16";
  if (t.isInteger(8))
    return "int8";
  return "f32";
}

enum class Stream { Compute, Comm, Host };

/// Rows up to which the CUDA backend runs a linear as a GEMV (kGemvMaxRows).
constexpr int64_t kGemvRows = 8;

bool isCollectiveKernel(StringRef k) {
  return k == "all_reduce" || k == "reduce_scatter" || k == "all_gather" || k == "sync_param" ||
         k == "tp_all_reduce" || k == "send" || k == "recv";
}
} // namespace

FailureOr<StepEstimate> estimateStep(ModuleOp module, StringRef function,
                                     const MachineModel &machine, int64_t batch, int64_t seq,
                                     int64_t startPos, Type computeDtype) {
  auto func = module.lookupSymbol<rt::FuncOp>(function);
  if (!func)
    return module.emitError() << "cost model: no bmsys_rt.func '" << function << "'";
  SymbolTable symbols(module);
  auto resolve = [&](ArrayAttr shape) {
    SmallVector<int64_t> out;
    for (Attribute d : shape) {
      if (auto i = dyn_cast<IntegerAttr>(d))
        out.push_back(i.getInt());
      else
        out.push_back(cast<StringAttr>(d).getValue() == rt::kBatchDim ? batch : seq);
    }
    return out;
  };
  auto rawOperand = [&](Value v) -> Operand {
    Operation *def = v.getDefiningOp();
    if (auto a = dyn_cast_or_null<rt::AllocOp>(def))
      return {a.getDtype(), resolve(a.getShape()), def};
    if (auto in = dyn_cast_or_null<rt::InputOp>(def))
      return {in.getDtype(), resolve(in.getShape()), def};
    if (auto w = dyn_cast_or_null<rt::WeightRefOp>(def)) {
      auto decl = symbols.lookup<rt::WeightOp>(w.getWeight());
      return {decl.getDtype(), SmallVector<int64_t>(decl.getShape()), decl};
    }
    if (auto s = dyn_cast_or_null<rt::StateRefOp>(def)) {
      auto decl = symbols.lookup<rt::StateOp>(s.getState());
      return {decl.getDtype(), SmallVector<int64_t>(decl.getShape()), decl};
    }
    return {Float32Type::get(module.getContext()), {}, def};
  };
  auto priced = [&](Type t) {
    return computeDtype && isa<FloatType>(t) ? computeDtype : t;
  };
  auto operand = [&](Value v) -> Operand {
    Operand o = rawOperand(v);
    o.dtype = priced(o.dtype);
    return o;
  };
  auto intParam = [](rt::LaunchOp l, StringRef name, int64_t dflt) {
    if (auto p = l.getParams())
      if (auto v = p->getAs<IntegerAttr>(name))
        return v.getInt();
    return dflt;
  };

  // Kernel overhead: a function without collectives or host work is replayed from a
  // CUDA graph (the CUDA backend captures every such flush), which costs
  // graphKernelLatency per kernel instead of an eager launch's launchLatency.
  bool graphed = machine.graphKernelLatency > 0;
  for (auto launch : func.getBody().front().getOps<rt::LaunchOp>()) {
    StringRef k = launch.getKernel();
    if (isCollectiveKernel(k) || k.contains("h2d") || k.contains("d2h") || k.starts_with("host_"))
      graphed = false;
  }
  if (module->getAttr("bmsys_rt.memory_schedule"))
    graphed = false; // swapping runs per-layer flushes, without graphs
  const double perLaunch = graphed ? machine.graphKernelLatency : machine.launchLatency;

  StepEstimate e;
  double free[3] = {0, 0, 0};
  double computeBusy = 0;
  DenseMap<Operation *, double> ready;
  for (auto launch : func.getBody().front().getOps<rt::LaunchOp>()) {
    StringRef k = launch.getKernel();
    SmallVector<Operand> ins, outs;
    for (Value v : launch.getInputs())
      ins.push_back(operand(v));
    for (Value v : launch.getOutputs())
      outs.push_back(operand(v));
    double bytes = 0;
    for (const Operand &o : ins)
      bytes += o.bytes();
    for (const Operand &o : outs)
      bytes += o.bytes();
    double bw = machine.memoryBandwidth;
    double t = 0;
    Stream stream = Stream::Compute;
    ++e.launches;

    if (k == "linear" || k == "linear_int8" || k == "linear_grad_input" ||
        k == "linear_grad_weight") {
      double flops = 0;
      const Operand &out = outs[0];
      if (k == "linear" || k == "linear_int8")
        flops = 2.0 * out.numel() * (ins[0].shape.empty() ? 1 : ins[0].shape.back());
      else if (k == "linear_grad_input")
        flops = 2.0 * out.numel() * (ins[0].shape.empty() ? 1 : ins[0].shape.back());
      else // dW [N,K] from dy [..,N] and x [..,K]: one product per token
        flops = 2.0 * out.numel() *
                (ins[0].shape.empty() ? 1 : ins[0].numel() / std::max<int64_t>(1, ins[0].shape.back()));
      std::string dtype = dtypeName(out.dtype);
      if (k == "linear_int8") {
        auto act = launch.getParams() ? launch.getParams()->getAs<StringAttr>("activations") : StringAttr();
        if (act && act.getValue() == "int8")
          dtype = "int8";
      }
      double rate = machine.gemmRate(dtype, flops);
      if (rate <= 0)
        return launch.emitError() << "cost model: the calibration has no GEMM rate for " << dtype;
      t = std::max(flops / rate, bytes / bw);
      // A decode-sized linear (a few rows) streams its weight once: at the calibrated
      // GEMV rate for that many weight bytes.
      const int64_t K = ins[0].shape.empty() ? 1 : ins[0].shape.back();
      if (k == "linear" || k == "linear_int8")
        if (ins[0].numel() / std::max<int64_t>(1, K) <= kGemvRows && ins.size() > 1)
          t = std::max(t, ins[1].bytes() / machine.gemvRate(ins[1].bytes()));
      e.gemm += t;
      e.flops += flops;
    } else if (k == "attention" || k == "attention_grad" || k == "rope_attention") {
      // rope_attention: attention's time, then the two ropes' below.
      const bool rope = k == "rope_attention";
      const size_t cacheAt = rope ? 4 : 3;
      const Operand &q = ins[0];
      int64_t heads = intParam(launch, "num_heads", 1), dim = intParam(launch, "head_dim", 1);
      int64_t kvHeads = intParam(launch, "num_kv_heads", heads);
      bool causal = intParam(launch, "causal", 1) != 0;
      int64_t b = q.shape.size() > 0 ? q.shape[0] : 1, s = q.shape.size() > 1 ? q.shape[1] : 1;
      // Keys per query: the cached positions plus this call's (half of them, causal).
      double keys = startPos + (causal ? (s + 1) / 2.0 : double(s));
      double flops = 4.0 * b * heads * s * keys * dim;
      if (k == "attention_grad")
        flops *= 4.5; // the CUDA kernels' 9 tile products against the forward's 2: the scores
                      // and dP twice on the query side (lse/delta, then dq), four on the key side
      if (k != "attention_grad" && ins.size() > cacheAt) {
        // With a cache only the rows written so far are read, not the whole state.
        bytes = 0;
        for (size_t i = 0; i < 3; ++i)
          bytes += ins[i].bytes();
        bytes += outs[0].bytes() +
                 2.0 * b * (startPos + s) * kvHeads * dim * rt::elementBytes(ins[cacheAt].dtype);
      } else if (rope) {
        bytes = ins[0].bytes() + ins[1].bytes() + ins[2].bytes() + outs[0].bytes();
      }
      double rate = machine.attentionRate(dtypeName(q.dtype));
      if (rate <= 0)
        rate = machine.gemmRate(dtypeName(q.dtype), flops) / 2; // uncalibrated: half the GEMM rate
      if (rate <= 0)
        return launch.emitError() << "cost model: the calibration has no attention or GEMM rate for "
                                  << dtypeName(q.dtype);
      t = std::max(flops / rate, bytes / bw);
      e.attention += t;
      e.flops += flops;
      if (rope) {
        // Priced as the ropes of q and k it replaces (each memory-bound: reads x and the
        // positions, writes x's size) less their launches: the estimate does not credit
        // the fused kernel with the round trip it saves until calibration measures it.
        for (size_t i = 0; i < 2; ++i) {
          double ropeBytes = 2 * ins[i].bytes() + ins[3].bytes();
          double ropeTime = ropeBytes / bw + machine.streamRamp(ropeBytes);
          e.memoryBound += ropeTime;
          t += ropeTime;
        }
      }
    } else if (isCollectiveKernel(k)) {
      int64_t p = intParam(launch, "ranks", 1);
      double n = 0, f = 0;
      std::string kind = k.str();
      if (k == "all_reduce" || k == "tp_all_reduce") {
        n = ins[0].bytes(), f = 2.0 * (p - 1) / p, kind = "all_reduce";
      } else if (k == "reduce_scatter") {
        n = ins[0].bytes(), f = double(p - 1) / p;
      } else if (k == "all_gather") {
        n = outs[0].bytes(), f = double(p - 1) / p;
      } else if (k == "sync_param") {
        n = ins[0].bytes(), f = double(p - 1) / p, kind = "all_gather";
      } else { // send / recv
        n = ins.empty() ? outs[0].bytes() : ins[0].bytes(), f = 1, kind = "send_recv";
      }
      if (p > 1) {
        double busBw = machine.bus(kind);
        if (busBw <= 0)
          return launch.emitError() << "cost model: the calibration has no bus bandwidth for "
                                    << kind << " (run bmsys-run calibrate --nproc 2)";
        t = machine.collectiveLatency + n * f / busBw;
      }
      e.comm += t;
      stream = Stream::Comm;
    } else if (k.contains("h2d") || k.contains("d2h") || k.starts_with("host_")) {
      // Host copies and host-side updates (optimizer offload).
      double pcie = k.contains("d2h") ? machine.d2hBandwidth : machine.h2dBandwidth;
      if (k.starts_with("host_adam") && machine.hostAdamRate > 0)
        t = ins.empty() ? 0 : ins[0].numel() / machine.hostAdamRate;
      else if (pcie > 0)
        t = (outs.empty() ? bytes : outs[0].bytes()) / pcie;
      else
        return launch.emitError() << "cost model: the calibration has no host copy bandwidth";
      e.host += t;
      stream = Stream::Host;
    } else {
      if (k == "embedding") // reads only the rows it gathers
        bytes = ins[0].bytes() + 2 * outs[0].bytes();
      else if (k == "global_norm" && intParam(launch, "ranks", 1) > 1)
        t += machine.collectiveLatency; // the partial sums' all-reduce
      t += bytes / bw + machine.streamRamp(bytes);
      e.memoryBound += t;
    }
    t += perLaunch;

    // The list schedule: a launch starts when its stream is free and its inputs are ready.
    if (!machine.overlap)
      stream = Stream::Compute;
    double start = free[int(stream)];
    for (const Operand &o : ins)
      start = std::max(start, ready.lookup(o.key));
    double end = start + t;
    free[int(stream)] = end;
    if (stream == Stream::Compute)
      computeBusy += t;
    for (const Operand &o : outs)
      ready[o.key] = end;
  }
  // Steady state: collectives left after the last compute launch (ZeRO-1/2's gathers
  // of the updated parameters) overlap the next step's compute, which waits only for
  // its first blocks' parameters; the step still takes at least the collective
  // stream's busy time. Host work (offloaded updates) stays on the critical path: the
  // next step's forward needs the parameters it uploads.
  e.total = machine.overlap ? std::max({free[int(Stream::Compute)], e.comm, free[int(Stream::Host)]})
                            : std::max({free[0], free[1], free[2]});
  // A memory schedule streams its swapped layers in every call; each copy
  // overlaps the computation of the resident layers before it.
  if (auto schedule = module->getAttrOfType<DictionaryAttr>("bmsys_rt.memory_schedule"))
    if (auto moved = schedule.getAs<IntegerAttr>("bytes_per_token"); moved && moved.getInt() > 0) {
      if (machine.h2dBandwidth <= 0)
        return module.emitError("cost model: the calibration has no h2d_bandwidth for the memory "
                                "schedule's copies");
      double t = moved.getInt() / machine.h2dBandwidth;
      e.host += t;
      e.total = std::max(e.total, t);
    }
  e.exposedComm = std::max(0.0, e.total - computeBusy);
  if (!machine.overlap)
    e.exposedComm = e.comm + e.host;
  return e;
}

llvm::json::Value stepToJSON(const StepEstimate &e) {
  return llvm::json::Object{{"total_s", e.total},         {"gemm_s", e.gemm},
                            {"attention_s", e.attention}, {"memory_bound_s", e.memoryBound},
                            {"comm_s", e.comm},           {"host_s", e.host},
                            {"exposed_comm_s", e.exposedComm},
                            {"flops", e.flops},           {"launches", e.launches}};
}

} // namespace bmsys
