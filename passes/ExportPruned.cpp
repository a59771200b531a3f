//===- ExportPruned.cpp - bmsys-export-pruned -----------------------------===//
//
// Structured pruning only pays once the weights are physically smaller: this
// pass cuts the pruned heads out of the attention projections, leaves removed
// layers out, renumbers the rest, and writes a Hugging Face directory that
// the importer reads as an ordinary (smaller) model.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "frontends/hf/Safetensors.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>
#include <map>

namespace bmsys {
#define GEN_PASS_DEF_BMSYSEXPORTPRUNED
#include "passes/Passes.h.inc"
} // namespace bmsys

using namespace mlir;
using namespace bmsys;

namespace {
/// A tensor to write: float32 values, row-major.
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

/// Keeps the rows (dim 0) or columns (dim 1) of a 2-D tensor (or the entries of a
/// 1-D one) whose index is in `keep`.
Tensor select(const Tensor &t, int dim, ArrayRef<int64_t> keep) {
  Tensor r;
  if (t.shape.size() == 1) {
    r.shape = {static_cast<int64_t>(keep.size())};
    for (int64_t i : keep)
      r.values.push_back(t.values[i]);
    return r;
  }
  int64_t rows = t.shape[0], cols = t.shape[1];
  if (dim == 0) {
    r.shape = {static_cast<int64_t>(keep.size()), cols};
    for (int64_t i : keep)
      r.values.insert(r.values.end(), t.values.begin() + i * cols,
                      t.values.begin() + (i + 1) * cols);
  } else {
    r.shape = {rows, static_cast<int64_t>(keep.size())};
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j : keep)
        r.values.push_back(t.values[i * cols + j]);
  }
  return r;
}

/// The channels of the kept heads.
SmallVector<int64_t> headChannels(int64_t heads, int64_t dim, ArrayRef<int64_t> pruned) {
  SmallVector<int64_t> channels;
  for (int64_t h = 0; h < heads; ++h)
    if (!llvm::is_contained(pruned, h))
      for (int64_t c = h * dim; c < (h + 1) * dim; ++c)
        channels.push_back(c);
  return channels;
}

struct ExportPruned : bmsys::impl::BmsysExportPrunedBase<ExportPruned> {
  using Base::Base;

  ModuleOp module;
  llvm::StringMap<Tensor> tensors; // by key
  bool failedRead = false;

  /// The parameter that a value reads, through a pruning mask.
  ParamOp paramOf(SymbolTable &symbols, Value v) {
    if (auto mul = v.getDefiningOp<MulOp>())
      v = mul.getLhs();
    auto weight = v.getDefiningOp<WeightOp>();
    return weight ? symbols.lookup<ParamOp>(weight.getParam()) : ParamOp();
  }

  /// The linear that produces `v`, through a rotary embedding.
  LinearOp producer(Value v) {
    if (auto rope = v.getDefiningOp<RopeOp>())
      v = rope.getX();
    return v.getDefiningOp<LinearOp>();
  }

  LogicalResult read(ParamOp param, Tensor &out) {
    std::string file = weights.empty() ? param.getFile().str() : std::string(weights);
    auto values = hf::readTensorAsF32(file, param.getKey(), &out.shape);
    if (!values) {
      param.emitError() << "bmsys-export-pruned: " << llvm::toString(values.takeError());
      return failure();
    }
    out.values = std::move(*values);
    return success();
  }

  /// Cuts the pruned heads of one attention out of its projections.
  LogicalResult cutHeads(SymbolTable &symbols, AttentionOp attn, ArrayRef<int64_t> pruned,
                         int64_t &newHeads, int64_t &newKvHeads) {
    int64_t heads = attn.getNumHeads(), kvHeads = attn.getNumKvHeads(),
            dim = attn.getHeadDim();
    LinearOp q = producer(attn.getQ()), k = producer(attn.getK()), v = producer(attn.getV()),
             o;
    for (Operation *user : attn->getUsers())
      if (auto l = dyn_cast<LinearOp>(user))
        o = l;
    if (!q || !k || !v || !o || q == k || q.getWeightTransposed() || o.getWeightTransposed() ||
        k.getWeightTransposed() || v.getWeightTransposed()) {
      attn.emitError() << "bmsys-export-pruned: pruned heads export needs separate q/k/v/o "
                          "projections with [out, in] weights (Llama layout); this model's "
                          "Hugging Face config cannot express fewer heads";
      return failure();
    }
    // With one key/value head per query head, a pruned head's keys and values go too.
    bool perHeadKv = heads == kvHeads;
    newHeads = heads - pruned.size();
    newKvHeads = perHeadKv ? newHeads : kvHeads;
    SmallVector<int64_t> qKeep = headChannels(heads, dim, pruned);
    SmallVector<int64_t> kvKeep =
        perHeadKv ? qKeep : headChannels(kvHeads, dim, ArrayRef<int64_t>());
    auto cut = [&](Value operand, int dim, ArrayRef<int64_t> keep) -> LogicalResult {
      if (!operand)
        return success();
      ParamOp p = paramOf(symbols, operand);
      if (!p) {
        attn.emitError() << "bmsys-export-pruned: a projection of this attention does not "
                            "read a parameter";
        return failure();
      }
      auto it = tensors.find(p.getKey());
      if (it == tensors.end())
        return success();
      it->second = select(it->second, dim, keep);
      return success();
    };
    if (failed(cut(q.getWeight(), 0, qKeep)) || failed(cut(q.getBias(), 0, qKeep)) ||
        failed(cut(k.getWeight(), 0, kvKeep)) || failed(cut(k.getBias(), 0, kvKeep)) ||
        failed(cut(v.getWeight(), 0, kvKeep)) || failed(cut(v.getBias(), 0, kvKeep)) ||
        failed(cut(o.getWeight(), 1, qKeep)))
      return failure();
    return success();
  }

  void runOnOperation() override {
    module = getOperation();
    if (output.empty()) {
      module.emitError() << "bmsys-export-pruned: the output option (a directory) is required";
      return signalPassFailure();
    }
    auto configText = module->getAttrOfType<StringAttr>("bmsys.config");
    auto parsed = configText ? llvm::json::parse(configText.getValue())
                             : llvm::Expected<llvm::json::Value>(llvm::createStringError(
                                   "the module has no bmsys.config (import it with "
                                   "bmsys-import-hf)"));
    if (!parsed || !parsed->getAsObject()) {
      module.emitError() << "bmsys-export-pruned: "
                         << (parsed ? std::string("bmsys.config is not a JSON object")
                                    : llvm::toString(parsed.takeError()));
      return signalPassFailure();
    }
    llvm::json::Object config = *parsed->getAsObject();

    // Every parameter but the masks, with its mask applied.
    SymbolTable symbols(module);
    llvm::StringSet<> maskSymbols;
    module.walk([&](ParamOp p) {
      if (auto prune = p->getAttrOfType<DictionaryAttr>("bmsys.prune"))
        if (auto mask = prune.getAs<FlatSymbolRefAttr>("mask"))
          maskSymbols.insert(mask.getValue());
    });
    std::vector<std::string> order;
    for (ParamOp p : module.getOps<ParamOp>()) {
      if (maskSymbols.contains(p.getSymName()))
        continue;
      Tensor t;
      if (failed(read(p, t)))
        return signalPassFailure();
      if (auto prune = p->getAttrOfType<DictionaryAttr>("bmsys.prune")) {
        auto maskParam = symbols.lookup<ParamOp>(prune.getAs<FlatSymbolRefAttr>("mask").getAttr());
        Tensor m;
        if (!maskParam || failed(read(maskParam, m)))
          return signalPassFailure();
        for (size_t i = 0; i < t.values.size(); ++i)
          t.values[i] *= m.values[i];
      }
      order.push_back(p.getKey().str());
      tensors[p.getKey()] = std::move(t);
    }

    // Heads: every attention must keep the same number (one config for all layers).
    std::optional<std::pair<int64_t, int64_t>> shape; // heads, kv heads after pruning
    int64_t headDim = 0;
    WalkResult walk = module.walk([&](AttentionOp attn) {
      auto pruned = attn->getAttrOfType<DenseI64ArrayAttr>("bmsys.pruned_heads");
      if (!pruned)
        return WalkResult::advance();
      int64_t heads, kvHeads;
      if (failed(cutHeads(symbols, attn, pruned.asArrayRef(), heads, kvHeads)))
        return WalkResult::interrupt();
      if (shape && *shape != std::make_pair(heads, kvHeads)) {
        attn.emitError() << "bmsys-export-pruned: every layer must keep the same number of "
                            "heads";
        return WalkResult::interrupt();
      }
      shape = {heads, kvHeads};
      headDim = attn.getHeadDim();
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return signalPassFailure();
    if (shape) {
      config["num_attention_heads"] = shape->first;
      config["num_key_value_heads"] = shape->second;
      config["head_dim"] = headDim;
    }

    // Layers: keys "<...>.<base>.<i>.<...>" of removed blocks are left out, the rest
    // renumbered in order.
    std::map<std::string, std::vector<int64_t>> removed; // base -> indices
    if (auto layers = module->getAttrOfType<ArrayAttr>("bmsys.pruned_layers"))
      for (Attribute a : layers) {
        StringRef name = cast<StringAttr>(a).getValue();
        auto [base, index] = name.rsplit('.');
        int64_t i;
        if (index.getAsInteger(10, i)) {
          module.emitError() << "bmsys-export-pruned: pruned layer '" << name
                             << "' is not named <base>.<index>";
          return signalPassFailure();
        }
        removed[base.str()].push_back(i);
      }
    std::vector<std::pair<std::string, hf::TensorData>> out;
    for (const std::string &key : order) {
      std::string newKey = key;
      bool drop = false;
      for (auto &[base, indices] : removed) {
        std::string marker = "." + base + ".";
        size_t at = ("." + key).find(marker);
        if (at == std::string::npos)
          continue;
        size_t start = at + marker.size() - 1, end = key.find('.', start);
        int64_t i;
        if (end == std::string::npos || StringRef(key).slice(start, end).getAsInteger(10, i))
          continue;
        if (llvm::is_contained(indices, i)) {
          drop = true;
          break;
        }
        int64_t shift = llvm::count_if(indices, [&](int64_t r) { return r < i; });
        newKey = key.substr(0, start) + std::to_string(i - shift) + key.substr(end);
      }
      if (drop)
        continue;
      Tensor &t = tensors[key];
      hf::TensorData data{"F32", t.shape, std::vector<char>(t.values.size() * 4)};
      std::memcpy(data.bytes.data(), t.values.data(), data.bytes.size());
      out.emplace_back(newKey, std::move(data));
    }
    size_t layersRemoved = 0;
    for (auto &entry : removed)
      layersRemoved += entry.second.size();
    if (layersRemoved) {
      const char *field = config.get("num_hidden_layers") ? "num_hidden_layers" : "n_layer";
      auto layers = config.getInteger(field);
      if (!layers) {
        module.emitError() << "bmsys-export-pruned: the config has no num_hidden_layers or "
                              "n_layer";
        return signalPassFailure();
      }
      config[field] = *layers - static_cast<int64_t>(layersRemoved);
    }

    llvm::sort(out, [](auto &a, auto &b) { return a.first < b.first; });
    if (std::error_code ec = llvm::sys::fs::create_directories(output)) {
      module.emitError() << "bmsys-export-pruned: cannot create " << output << ": "
                         << ec.message();
      return signalPassFailure();
    }
    llvm::SmallString<256> modelPath(output.getValue()), configPath(output.getValue());
    llvm::sys::path::append(modelPath, "model.safetensors");
    llvm::sys::path::append(configPath, "config.json");
    if (auto err = hf::writeSafetensors(modelPath, out)) {
      module.emitError() << "bmsys-export-pruned: " << llvm::toString(std::move(err));
      return signalPassFailure();
    }
    std::error_code ec;
    llvm::raw_fd_ostream os(configPath, ec);
    if (ec) {
      module.emitError() << "bmsys-export-pruned: cannot write " << configPath << ": "
                         << ec.message();
      return signalPassFailure();
    }
    os << llvm::formatv("{0:2}", llvm::json::Value(std::move(config))) << "\n";
  }
};
} // namespace
