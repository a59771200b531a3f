//===- Moefy.cpp - bmsys-moefy --------------------------------------------===//
//
// MoEfication (Zhang et al., 2022): a trained FFN's neurons are grouped into
// experts of equal size by balanced k-means over the normalized rows of its
// first weight matrix (neurons that respond to similar inputs land together),
// and each token runs only the experts whose centroids its input is most
// similar to. The grouping, the permuted weights and the router are computed
// once here and written beside the model.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "frontends/hf/Safetensors.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

namespace bmsys {
#define GEN_PASS_DEF_BMSYSMOEFY
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace bmsys {
/// Balanced k-means: `rows` (n x dim, row-major) into `k` clusters of exactly
/// n/k rows. Each iteration assigns greedily in order of increasing distance
/// over all (row, cluster) pairs, skipping full clusters, then moves each
/// centroid to its rows' mean. Deterministic: farthest-point initialization
/// from row 0. Returns the cluster of each row; `centroids` gets k x dim.
std::vector<int64_t> balancedKMeans(const std::vector<float> &rows, int64_t n, int64_t dim,
                                    int64_t k, int64_t iterations,
                                    std::vector<float> &centroids) {
  auto dist = [&](const float *a, const float *b) {
    double d = 0;
    for (int64_t j = 0; j < dim; ++j)
      d += (double(a[j]) - b[j]) * (double(a[j]) - b[j]);
    return d;
  };
  centroids.assign(k * dim, 0.0f);
  std::vector<double> nearest(n, INFINITY);
  int64_t pick = 0;
  for (int64_t c = 0; c < k; ++c) {
    std::copy_n(rows.begin() + pick * dim, dim, centroids.begin() + c * dim);
    for (int64_t i = 0; i < n; ++i)
      nearest[i] = std::min(nearest[i], dist(&rows[i * dim], &centroids[c * dim]));
    pick = std::max_element(nearest.begin(), nearest.end()) - nearest.begin();
  }
  const int64_t capacity = n / k;
  std::vector<int64_t> assign(n, -1), previous;
  std::vector<std::pair<double, int64_t>> pairs(n * k);
  for (int64_t it = 0; it < iterations; ++it) {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < k; ++c)
        pairs[i * k + c] = {dist(&rows[i * dim], &centroids[c * dim]), i * k + c};
    std::sort(pairs.begin(), pairs.end());
    std::vector<int64_t> size(k, 0);
    assign.assign(n, -1);
    for (auto &[d, index] : pairs) {
      int64_t i = index / k, c = index % k;
      if (assign[i] < 0 && size[c] < capacity) {
        assign[i] = c;
        ++size[c];
      }
    }
    std::fill(centroids.begin(), centroids.end(), 0.0f);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < dim; ++j)
        centroids[assign[i] * dim + j] += rows[i * dim + j] / capacity;
    if (assign == previous)
      break;
    previous = assign;
  }
  return assign;
}
} // namespace bmsys

namespace {
struct Ffn {
  LinearOp in, up, down; // up is null for non-gated FFNs
  Operation *act;
  Operation *mul;        // the gate product, or null
};

hf::TensorData f32(const std::vector<float> &v, std::vector<int64_t> shape) {
  hf::TensorData t{"F32", std::move(shape), std::vector<char>(v.size() * 4)};
  std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

struct Moefy : bmsys::impl::BmsysMoefyBase<Moefy> {
  using Base::Base;

  /// The FFNs: down(act(in(x)) [* up(x)]).
  SmallVector<Ffn> findFfns(ModuleOp module) {
    SmallVector<Ffn> ffns;
    module.walk([&](LinearOp down) {
      Value h = down.getX();
      Ffn f{{}, {}, down, nullptr, nullptr};
      if (auto mul = h.getDefiningOp<MulOp>()) {
        Operation *act = mul.getLhs().getDefiningOp();
        auto up = mul.getRhs().getDefiningOp<LinearOp>();
        if (!act || !isa<SiluOp, GeluOp>(act) || !up)
          return;
        auto in = act->getOperand(0).getDefiningOp<LinearOp>();
        if (!in || in.getX() != up.getX())
          return;
        f = {in, up, down, act, mul};
      } else if (Operation *act = h.getDefiningOp(); act && isa<SiluOp, GeluOp>(act)) {
        auto in = act->getOperand(0).getDefiningOp<LinearOp>();
        if (!in)
          return;
        f = {in, {}, down, act, nullptr};
      } else {
        return;
      }
      ffns.push_back(f);
    });
    return ffns;
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (experts < 1 || topK < 1 || topK > experts) {
      module.emitError() << "bmsys-moefy: needs 1 <= top-k <= experts, got top-k "
                         << static_cast<int64_t>(topK) << " of " << static_cast<int64_t>(experts);
      return signalPassFailure();
    }
    SymbolTable symbols(module);
    SmallVector<Ffn> ffns = findFfns(module);
    if (ffns.empty()) {
      module.emitError("bmsys-moefy: no feed-forward layer (down(act(in(x))) or "
                       "down(act(gate(x)) * up(x))) found");
      return signalPassFailure();
    }

    std::string file = output;
    std::vector<std::pair<std::string, hf::TensorData>> tensors;
    OpBuilder b(module.getContext());
    double denseFlops = 0, moeFlops = 0;
    for (Ffn &f : ffns) {
      // Weights, read through plain parameter reads only.
      auto paramOf = [&](Value w) -> ParamOp {
        auto read = w ? w.getDefiningOp<WeightOp>() : WeightOp();
        return read ? symbols.lookup<ParamOp>(read.getParam()) : ParamOp();
      };
      SmallVector<LinearOp> linears{f.in, f.down};
      if (f.up)
        linears.push_back(f.up);
      for (LinearOp l : linears)
        if (!paramOf(l.getWeight()) || (l.getBias() && !paramOf(l.getBias()))) {
          l.emitError("bmsys-moefy: the FFN's weights must be plain parameters (run bmsys-moefy "
                      "before pruning and quantization)");
          return signalPassFailure();
        }
      bool bias = f.in.getBias() && f.down.getBias();
      if ((f.in.getBias() || f.down.getBias()) && (!bias || (f.up && f.up.getBias()))) {
        f.down.emitError("bmsys-moefy: biases on some of the FFN's projections only");
        return signalPassFailure();
      }
      // Each projection as [n, H] (neuron rows).
      auto read = [&](LinearOp l, bool neuronsAreOutputs, std::vector<float> &out, int64_t &n,
                      int64_t &h) -> LogicalResult {
        ParamOp p = paramOf(l.getWeight());
        std::vector<int64_t> shape;
        auto w = hf::readTensorAsF32(p.getFile(), p.getKey(), &shape);
        if (!w) {
          p.emitError() << "bmsys-moefy: " << llvm::toString(w.takeError());
          return failure();
        }
        // Stored [out, in], or [in, out] when transposed; neurons are the outputs of
        // the first projections and the inputs of the down projection.
        bool rowsAreNeurons = neuronsAreOutputs != l.getWeightTransposed();
        n = rowsAreNeurons ? shape[0] : shape[1];
        h = rowsAreNeurons ? shape[1] : shape[0];
        out.resize(w->size());
        for (int64_t i = 0; i < shape[0]; ++i)
          for (int64_t j = 0; j < shape[1]; ++j)
            (rowsAreNeurons ? out[i * shape[1] + j] : out[j * shape[0] + i]) =
                (*w)[i * shape[1] + j];
        return success();
      };
      std::vector<float> win, wup, wout, bin, bout;
      int64_t n, hidden, n2, h2;
      if (failed(read(f.in, true, win, n, hidden)) || failed(read(f.down, false, wout, n2, h2)) ||
          (f.up && failed(read(f.up, true, wup, n2, h2))))
        return signalPassFailure();
      if (n % experts) {
        f.in.emitError() << "bmsys-moefy: " << n << " neurons do not split into "
                         << static_cast<int64_t>(experts) << " equal experts";
        return signalPassFailure();
      }
      if (bias) {
        for (auto [l, dst] : {std::pair{f.in, &bin}, std::pair{f.down, &bout}}) {
          ParamOp p = paramOf(l.getBias());
          auto v = hf::readTensorAsF32(p.getFile(), p.getKey());
          if (!v) {
            p.emitError() << "bmsys-moefy: " << llvm::toString(v.takeError());
            return signalPassFailure();
          }
          *dst = std::move(*v);
        }
      }

      // Balanced k-means over the normalized rows of the first matrix.
      std::vector<float> normalized(win);
      for (int64_t i = 0; i < n; ++i) {
        double norm = 0;
        for (int64_t j = 0; j < hidden; ++j)
          norm += double(win[i * hidden + j]) * win[i * hidden + j];
        norm = std::sqrt(norm) + 1e-12;
        for (int64_t j = 0; j < hidden; ++j)
          normalized[i * hidden + j] = win[i * hidden + j] / norm;
      }
      std::vector<float> router;
      std::vector<int64_t> assign =
          balancedKMeans(normalized, n, hidden, experts, iterations, router);
      std::vector<int64_t> perm(n);
      std::iota(perm.begin(), perm.end(), 0);
      std::stable_sort(perm.begin(), perm.end(),
                       [&](int64_t x, int64_t y) { return assign[x] < assign[y]; });
      auto permuted = [&](const std::vector<float> &rows, int64_t width) {
        std::vector<float> out(rows.size());
        for (int64_t i = 0; i < n; ++i)
          std::copy_n(rows.begin() + perm[i] * width, width, out.begin() + i * width);
        return out;
      };

      // Names beside the FFN's weights: <prefix>.moe.<part>.
      ParamOp downParam = paramOf(f.down.getWeight());
      StringRef prefix = downParam.getKey().rsplit('.').first.rsplit('.').first;
      if (file.empty()) {
        llvm::SmallString<256> path(downParam.getFile());
        llvm::sys::path::remove_filename(path);
        llvm::sys::path::append(path, "model.moe.safetensors");
        file = path.str().str();
      }
      SmallVector<Value> weights;
      Location loc = f.down.getLoc();
      b.setInsertionPoint(f.down);
      auto addParam = [&](StringRef part, std::vector<float> values,
                          std::vector<int64_t> shape) -> Value {
        std::string key = (prefix + ".moe." + part).str();
        auto type = RankedTensorType::get(shape, b.getF32Type());
        OpBuilder pb(module.getContext());
        pb.setInsertionPointAfter(downParam);
        ParamOp::create(pb, loc, key, type, file, key);
        tensors.emplace_back(key, f32(values, shape));
        return WeightOp::create(b, loc, type, FlatSymbolRefAttr::get(b.getContext(), key));
      };
      Value routerW = addParam("router", router, {experts, hidden});
      weights.push_back(addParam("w_in", permuted(win, hidden), {n, hidden}));
      if (f.up)
        weights.push_back(addParam("w_up", permuted(wup, hidden), {n, hidden}));
      weights.push_back(addParam("w_out", permuted(wout, hidden), {n, hidden}));
      if (bias) {
        weights.push_back(addParam("b_in", permuted(bin, 1), {n}));
        weights.push_back(addParam("b_out", bout, {hidden}));
      }
      std::string act = isa<SiluOp>(f.act) ? "silu"
                        : cast<GeluOp>(f.act).getApproximate() == "tanh" ? "gelu_tanh"
                                                                         : "gelu";
      auto moe = MoeFFNOp::create(b, loc, f.down.getType(), f.in.getX(), routerW, weights,
                                  b.getI64IntegerAttr(experts), b.getI64IntegerAttr(topK),
                                  b.getStringAttr(act), f.up ? b.getUnitAttr() : UnitAttr(),
                                  bias ? b.getUnitAttr() : UnitAttr());
      // FLOPs per token (multiply-adds count 2): the dense FFN's matrices, and the
      // router plus top_k experts' share of them.
      double matrices = f.up ? 3 : 2;
      double dense = 2.0 * matrices * hidden * n;
      double sparse = 2.0 * hidden * experts + dense * topK / experts;
      moe->setAttr("bmsys.ffn_flops", b.getDictionaryAttr(
                                          {b.getNamedAttr("dense", b.getF64FloatAttr(dense)),
                                           b.getNamedAttr("moe", b.getF64FloatAttr(sparse))}));
      denseFlops += dense;
      moeFlops += sparse;
      f.down.getResult().replaceAllUsesWith(moe.getResult());
      // The dense FFN is dead now.
      SmallVector<Operation *> dead{f.down};
      if (f.mul)
        dead.push_back(f.mul);
      dead.push_back(f.act);
      if (f.up)
        dead.push_back(f.up);
      dead.push_back(f.in);
      for (Operation *op : dead) {
        SmallVector<Value> operands(op->getOperands());
        op->erase();
        for (Value v : operands)
          if (auto w = v.getDefiningOp<WeightOp>(); w && w->use_empty())
            w->erase();
      }
    }
    // Parameters nothing reads any more.
    llvm::DenseSet<StringAttr> read;
    module.walk([&](WeightOp w) { read.insert(w.getParamAttr().getAttr()); });
    for (ParamOp p : llvm::make_early_inc_range(module.getOps<ParamOp>()))
      if (!read.contains(p.getSymNameAttr()))
        p.erase();

    llvm::sort(tensors, [](auto &x, auto &y) { return x.first < y.first; });
    if (auto err = hf::writeSafetensors(file, tensors)) {
      module.emitError() << "bmsys-moefy: " << llvm::toString(std::move(err));
      return signalPassFailure();
    }
    double saved = 1.0 - moeFlops / denseFlops;
    module->setAttr("bmsys.moe_report",
                    b.getDictionaryAttr(
                        {b.getNamedAttr("ffn_flops_dense", b.getF64FloatAttr(denseFlops)),
                         b.getNamedAttr("ffn_flops_moe", b.getF64FloatAttr(moeFlops)),
                         b.getNamedAttr("ffn_flops_saved", b.getF64FloatAttr(saved))}));
    if (report)
      llvm::errs() << llvm::formatv(
          "bmsys-moefy: {0} FFNs, {1} experts, top-{2}: FFN FLOPs per token {3} -> {4} "
          "({5:F1}% saved, router included)\n",
          ffns.size(), static_cast<int64_t>(experts), static_cast<int64_t>(topK),
          static_cast<int64_t>(denseFlops), static_cast<int64_t>(moeFlops), 100.0 * saved);
  }
};
} // namespace
