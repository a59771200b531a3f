//===- ImportHF.cpp - Hugging Face checkpoint -> bmsys dialect ------------===//
//
// Reads config.json and the safetensors headers (never the data), checks that
// every tensor the architecture needs is present with the expected shape, and
// builds the model as bmsys ops: one bmsys.block per transformer layer.
//
//===----------------------------------------------------------------------===//
#include "frontends/hf/ImportHF.h"
#include "frontends/hf/Safetensors.h"

#include "dialects/bmsys/BmsysDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringSet.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <cmath>
#include <set>

using namespace mlir;
using namespace llvm;

namespace bmsys::hf {
namespace {

Error fail(const Twine &what) { return createStringError(inconvertibleErrorCode(), what); }

/// The numbers of config.json that the graph needs, for either family.
struct ModelConfig {
  std::string modelType;
  int64_t vocab = 0, hidden = 0, layers = 0, heads = 0, kvHeads = 0, headDim = 0;
  int64_t intermediate = 0, maxPositions = 0;
  double normEps = 1e-5, ropeTheta = 10000.0;
  bool tied = false, attentionBias = false, mlpBias = false;
  std::string gelu = "tanh";           // GPT-2
  bool scaleAttn = true, scaleByLayer = false; // GPT-2
  std::string path, layersKey;                 // for messages
};

/// The largest count or width config.json may give (vocab, widths, heads, layers,
/// positions): the int32 range, so that products such as 3 * n_embd or
/// heads * head_dim cannot overflow. Layer counts are further checked against the
/// layers the checkpoint holds (GraphBuilder::build), before anything is built.
constexpr int64_t kMaxConfigCount = (int64_t(1) << 31) - 1;

class ConfigReader {
public:
  ConfigReader(const json::Object &obj, StringRef path) : obj(obj), path(path) {}

  Expected<int64_t> integer(StringRef key, std::optional<int64_t> fallback = std::nullopt) {
    const json::Value *v = obj.get(key);
    if (!v || v->kind() == json::Value::Null) {
      if (fallback)
        return *fallback;
      return fail(path + ": missing key '" + key + "'");
    }
    auto i = v->getAsInteger();
    if (!i || *i <= 0)
      return fail(path + ": key '" + key + "' must be a positive integer");
    if (*i > kMaxConfigCount)
      return fail(path + ": key '" + key + "' is " + Twine(*i) + ", more than the " +
                  Twine(kMaxConfigCount) + " bmsys supports");
    return *i;
  }
  Expected<double> number(StringRef key, double fallback) {
    const json::Value *v = obj.get(key);
    if (!v || v->kind() == json::Value::Null)
      return fallback;
    auto d = v->getAsNumber();
    if (!d || *d <= 0)
      return fail(path + ": key '" + key + "' must be a positive number");
    return *d;
  }
  bool boolean(StringRef key, bool fallback) {
    const json::Value *v = obj.get(key);
    auto b = v ? v->getAsBoolean() : std::nullopt;
    return b.value_or(fallback);
  }

  const json::Object &obj;
  StringRef path;
};

Expected<ModelConfig> readConfig(const json::Object &obj, StringRef path) {
  ConfigReader r(obj, path);
  ModelConfig c;
  auto type = obj.getString("model_type");
  if (!type)
    return fail(path + ": missing key 'model_type'");
  c.modelType = type->str();
  c.path = path.str();
  c.layersKey = c.modelType == "gpt2" ? "n_layer" : "num_hidden_layers";
#define READ(field, expr)                                                                    \
  {                                                                                          \
    auto value = expr;                                                                       \
    if (!value)                                                                              \
      return value.takeError();                                                              \
    c.field = *value;                                                                        \
  }
  if (c.modelType == "gpt2") {
    READ(vocab, r.integer("vocab_size"));
    READ(hidden, r.integer("n_embd"));
    READ(layers, r.integer("n_layer"));
    READ(heads, r.integer("n_head"));
    READ(maxPositions, r.integer("n_positions"));
    READ(intermediate, r.integer("n_inner", 4 * c.hidden));
    READ(normEps, r.number("layer_norm_epsilon", 1e-5));
    c.kvHeads = c.heads;
    if (c.hidden % c.heads)
      return fail(path + ": n_embd " + Twine(c.hidden) + " is not a multiple of n_head " +
                  Twine(c.heads));
    c.headDim = c.hidden / c.heads;
    c.tied = r.boolean("tie_word_embeddings", true);
    c.scaleAttn = r.boolean("scale_attn_weights", true);
    c.scaleByLayer = r.boolean("scale_attn_by_inverse_layer_idx", false);
    StringRef act = obj.getString("activation_function").value_or("gelu_new");
    if (act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast")
      c.gelu = "tanh";
    else if (act == "gelu")
      c.gelu = "none";
    else
      return fail(path + ": activation_function '" + act + "' is not supported");
  } else if (c.modelType == "llama" || c.modelType == "mistral") {
    READ(vocab, r.integer("vocab_size"));
    READ(hidden, r.integer("hidden_size"));
    READ(layers, r.integer("num_hidden_layers"));
    READ(heads, r.integer("num_attention_heads"));
    READ(kvHeads, r.integer("num_key_value_heads", c.heads));
    READ(intermediate, r.integer("intermediate_size"));
    READ(maxPositions, r.integer("max_position_embeddings", 2048));
    READ(normEps, r.number("rms_norm_eps", 1e-6));
    if (c.hidden % c.heads && !obj.get("head_dim"))
      return fail(path + ": hidden_size is not a multiple of num_attention_heads");
    READ(headDim, r.integer("head_dim", c.hidden / c.heads));
    if (c.heads % c.kvHeads)
      return fail(path + ": num_attention_heads " + Twine(c.heads) +
                  " is not a multiple of num_key_value_heads " + Twine(c.kvHeads));
    // transformers 5 keeps rope settings under rope_parameters; older configs
    // put rope_theta (and rope_scaling) at the top level.
    const json::Object *rope = obj.getObject("rope_parameters");
    ConfigReader ropeReader(rope ? *rope : obj, path);
    READ(ropeTheta, ropeReader.number("rope_theta", 10000.0));
    if (!rope)
      READ(ropeTheta, r.number("rope_theta", 10000.0));
    const json::Object *scaling = rope ? rope : obj.getObject("rope_scaling");
    if (scaling) {
      StringRef kind = scaling->getString("rope_type")
                           .value_or(scaling->getString("type").value_or("default"));
      if (kind != "default")
        return fail(path + ": rope_type '" + kind + "' is not supported (only 'default')");
    }
    c.tied = r.boolean("tie_word_embeddings", false);
    c.attentionBias = r.boolean("attention_bias", false);
    c.mlpBias = r.boolean("mlp_bias", false);
    StringRef act = obj.getString("hidden_act").value_or("silu");
    if (act != "silu")
      return fail(path + ": hidden_act '" + act + "' is not supported (only 'silu')");
  } else {
    return fail(path + ": model_type '" + c.modelType +
                "' is not supported (supported: gpt2, llama, mistral)");
  }
#undef READ
  return c;
}

/// Builds the module. Parameters are declared lazily, when the graph first
/// asks for them, after checking the checkpoint has them with the right shape.
class GraphBuilder {
public:
  GraphBuilder(MLIRContext &ctx, const ModelConfig &config, StringMap<std::string> files,
               StringMap<TensorInfo> tensors)
      : ctx(ctx), c(config), b(&ctx), files(std::move(files)), tensors(std::move(tensors)) {}

  /// How many layers the checkpoint holds tensors for: layers 0..N-1 each have at
  /// least one tensor named `<prefix><i>.`.
  int64_t layersPresent() const {
    std::string prefix = c.modelType != "gpt2"                        ? "model.layers."
                         : tensors.contains("transformer.wte.weight") ? "transformer.h."
                                                                      : "h.";
    std::set<int64_t> present;
    for (const auto &entry : tensors) {
      StringRef key = entry.getKey();
      if (!key.consume_front(prefix))
        continue;
      int64_t i;
      if (!key.consumeInteger(10, i) && key.starts_with(".") && i >= 0)
        present.insert(i);
    }
    int64_t n = 0;
    while (present.count(n))
      ++n;
    return n;
  }

  Expected<OwningOpRef<ModuleOp>> build(const ImportOptions &options, StringRef configText) {
    // The layer count sizes what is built (one block and, with hidden states, one
    // result per layer) before any layer's tensors are looked up: check it first.
    int64_t present = layersPresent();
    if (c.layers > present)
      return fail(c.path + ": key '" + c.layersKey + "' is " + Twine(c.layers) +
                  ", but the checkpoint (" + files.lookup("__all__") + ") has tensors for " +
                  Twine(present) + " layer" + (present == 1 ? "" : "s"));
    Location loc = b.getUnknownLoc();
    module = ModuleOp::create(loc);
    (*module)->setAttr("bmsys.config", b.getStringAttr(configText));
    (*module)->setAttr("bmsys.model_type", b.getStringAttr(c.modelType));
    (*module)->setAttr("bmsys.max_positions", b.getI64IntegerAttr(c.maxPositions));
    b.setInsertionPointToEnd(module->getBody());

    auto idsType = RankedTensorType::get({ShapedType::kDynamic, ShapedType::kDynamic},
                                         b.getI64Type());
    SmallVector<Type> results{act(c.vocab)};
    if (options.hiddenStates)
      results.append(c.layers + 1, act(c.hidden));
    auto funcType = b.getFunctionType({idsType}, results);
    func = func::FuncOp::create(b, loc, "forward", funcType);
    func.setArgAttr(0, "bmsys.name", b.getStringAttr("input_ids"));
    func.setResultAttr(0, "bmsys.name", b.getStringAttr("logits"));
    for (int64_t i = 0; options.hiddenStates && i <= c.layers; ++i)
      func.setResultAttr(i + 1, "bmsys.name", b.getStringAttr("hidden." + Twine(i).str()));
    Block *entry = func.addEntryBlock();
    b.setInsertionPointToStart(entry);
    Value ids = entry->getArgument(0);

    auto graph = c.modelType == "gpt2" ? gpt2(ids) : llama(ids);
    if (!graph)
      return graph.takeError();
    SmallVector<Value> returned{graph->logits};
    if (options.hiddenStates)
      returned.append(graph->hidden);
    func::ReturnOp::create(b, loc, returned);
    if (options.verify && failed(mlir::verify(*module)))
      return fail("internal error: the imported module does not verify");
    return std::move(module);
  }

private:
  struct Graph {
    Value logits;
    SmallVector<Value> hidden;
  };

  RankedTensorType act(int64_t width) {
    return RankedTensorType::get({ShapedType::kDynamic, ShapedType::kDynamic, width},
                                 b.getF32Type());
  }

  /// The value of parameter `key`, declared on first use.
  Expected<Value> weight(StringRef key, ArrayRef<int64_t> shape) {
    auto type = RankedTensorType::get(shape, b.getF32Type());
    if (!declared.contains(key)) {
      auto it = tensors.find(key);
      if (it == tensors.end())
        return fail("checkpoint is missing tensor '" + key + "' (looked in " +
                    files.lookup("__all__") + ")");
      std::string file = files.lookup(key);
      if (ArrayRef<int64_t>(it->second.shape) != shape) {
        std::string got, want;
        raw_string_ostream g(got), w(want);
        llvm::interleave(it->second.shape, g, "x");
        llvm::interleave(shape, w, "x");
        return fail(file + ": tensor '" + key + "' has shape [" + got + "], the config needs [" +
                    want + "]");
      }
      if (it->second.dtype != "F32" && it->second.dtype != "F16" && it->second.dtype != "BF16")
        return fail(file + ": tensor '" + key + "' has dtype " + it->second.dtype +
                    "; weights must be F32, F16 or BF16");
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(func);
      ParamOp::create(b, b.getUnknownLoc(), key, type, file, key);
      declared.insert(key);
    }
    return WeightOp::create(b, b.getUnknownLoc(), type, FlatSymbolRefAttr::get(&ctx, key))
        .getResult();
  }

  Value linear(Value x, Value w, Value bias, int64_t out, bool transposed) {
    auto op = LinearOp::create(b, x.getLoc(), act(out), x, w, bias);
    if (transposed)
      op.setWeightTransposed(true);
    return op;
  }

  Value attention(Value q, Value k, Value v, double scale) {
    auto op = AttentionOp::create(b, q.getLoc(), act(c.heads * c.headDim), q, k, v,
                                  c.heads, c.kvHeads, c.headDim, APFloat(scale),
                                  /*causal=*/true, /*cache=*/FlatSymbolRefAttr());
    return op;
  }

  /// Wraps the ops `body` builds into a bmsys.block over (x, positions).
  Expected<Value> block(StringRef name, Value x, Value positions,
                        llvm::function_ref<Expected<Value>(Value, Value)> body) {
    auto op = BlockOp::create(b, x.getLoc(), name, ValueRange{x, positions},
                              TypeRange{x.getType()});
    Block &inner = op.getBody().front();
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&inner);
    auto y = body(inner.getArgument(0), inner.getArgument(1));
    if (!y)
      return y.takeError();
    YieldOp::create(b, x.getLoc(), ValueRange{*y});
    return op.getResult(0);
  }

#define TRY(var, expr)                                                                       \
  auto var##OrErr = expr;                                                                    \
  if (!var##OrErr)                                                                           \
    return var##OrErr.takeError();                                                           \
  Value var = *var##OrErr;

  Expected<Graph> gpt2(Value ids) {
    int64_t h = c.hidden;
    std::string p = tensors.contains("transformer.wte.weight") ? "transformer." : "";
    Graph g;
    Value pos = PositionsOp::create(b, ids.getLoc(), ids.getType(), ids);
    TRY(wte, weight(p + "wte.weight", {c.vocab, h}));
    TRY(wpe, weight(p + "wpe.weight", {c.maxPositions, h}));
    Value tok = EmbeddingOp::create(b, ids.getLoc(), act(h), ids, wte);
    Value posEmb = EmbeddingOp::create(b, ids.getLoc(), act(h), pos, wpe);
    Value x = AddOp::create(b, ids.getLoc(), tok, posEmb);
    g.hidden.push_back(x);
    for (int64_t i = 0; i < c.layers; ++i) {
      std::string l = p + "h." + std::to_string(i) + ".";
      double scale = c.scaleAttn ? 1.0 / std::sqrt(double(c.headDim)) : 1.0;
      if (c.scaleByLayer)
        scale /= double(i + 1);
      auto y = block("h." + std::to_string(i), x, pos, [&](Value x, Value) -> Expected<Value> {
        TRY(ln1w, weight(l + "ln_1.weight", {h}));
        TRY(ln1b, weight(l + "ln_1.bias", {h}));
        TRY(attnW, weight(l + "attn.c_attn.weight", {h, 3 * h}));
        TRY(attnB, weight(l + "attn.c_attn.bias", {3 * h}));
        TRY(projW, weight(l + "attn.c_proj.weight", {h, h}));
        TRY(projB, weight(l + "attn.c_proj.bias", {h}));
        TRY(ln2w, weight(l + "ln_2.weight", {h}));
        TRY(ln2b, weight(l + "ln_2.bias", {h}));
        TRY(fcW, weight(l + "mlp.c_fc.weight", {h, c.intermediate}));
        TRY(fcB, weight(l + "mlp.c_fc.bias", {c.intermediate}));
        TRY(mprojW, weight(l + "mlp.c_proj.weight", {c.intermediate, h}));
        TRY(mprojB, weight(l + "mlp.c_proj.bias", {h}));
        Location loc = x.getLoc();
        Value a = LayerNormOp::create(b, loc, act(h), x, ln1w, ln1b, APFloat(c.normEps));
        Value qkv = linear(a, attnW, attnB, 3 * h, /*transposed=*/true);
        Value q = SliceOp::create(b, loc, act(h), qkv, 0, h);
        Value k = SliceOp::create(b, loc, act(h), qkv, h, h);
        Value v = SliceOp::create(b, loc, act(h), qkv, 2 * h, h);
        Value o = linear(attention(q, k, v, scale), projW, projB, h, true);
        Value x1 = AddOp::create(b, loc, x, o);
        Value m = LayerNormOp::create(b, loc, act(h), x1, ln2w, ln2b, APFloat(c.normEps));
        Value f = linear(m, fcW, fcB, c.intermediate, true);
        f = GeluOp::create(b, loc, f, b.getStringAttr(c.gelu));
        Value f2 = linear(f, mprojW, mprojB, h, true);
        return AddOp::create(b, loc, x1, f2).getResult();
      });
      if (!y)
        return y.takeError();
      x = *y;
      g.hidden.push_back(x);
    }
    TRY(lnfw, weight(p + "ln_f.weight", {h}));
    TRY(lnfb, weight(p + "ln_f.bias", {h}));
    x = LayerNormOp::create(b, x.getLoc(), act(h), x, lnfw, lnfb, APFloat(c.normEps));
    g.hidden.back() = x;
    Value head = wte;
    if (!c.tied) {
      TRY(lm, weight("lm_head.weight", {c.vocab, h}));
      head = lm;
    }
    g.logits = linear(x, head, Value(), c.vocab, false);
    return g;
  }

  Expected<Graph> llama(Value ids) {
    int64_t h = c.hidden, qw = c.heads * c.headDim, kvw = c.kvHeads * c.headDim;
    Graph g;
    Value pos = PositionsOp::create(b, ids.getLoc(), ids.getType(), ids);
    TRY(embed, weight("model.embed_tokens.weight", {c.vocab, h}));
    Value x = EmbeddingOp::create(b, ids.getLoc(), act(h), ids, embed);
    g.hidden.push_back(x);
    auto optionalBias = [&](bool present, const std::string &key, int64_t n) -> Expected<Value> {
      if (!present)
        return Value();
      return weight(key, {n});
    };
    for (int64_t i = 0; i < c.layers; ++i) {
      std::string l = "model.layers." + std::to_string(i) + ".";
      auto y = block("layers." + std::to_string(i), x, pos,
                     [&](Value x, Value pos) -> Expected<Value> {
        Location loc = x.getLoc();
        TRY(ln1, weight(l + "input_layernorm.weight", {h}));
        TRY(wq, weight(l + "self_attn.q_proj.weight", {qw, h}));
        TRY(wk, weight(l + "self_attn.k_proj.weight", {kvw, h}));
        TRY(wv, weight(l + "self_attn.v_proj.weight", {kvw, h}));
        TRY(wo, weight(l + "self_attn.o_proj.weight", {h, qw}));
        TRY(bq, optionalBias(c.attentionBias, l + "self_attn.q_proj.bias", qw));
        TRY(bk, optionalBias(c.attentionBias, l + "self_attn.k_proj.bias", kvw));
        TRY(bv, optionalBias(c.attentionBias, l + "self_attn.v_proj.bias", kvw));
        TRY(bo, optionalBias(c.attentionBias, l + "self_attn.o_proj.bias", h));
        TRY(ln2, weight(l + "post_attention_layernorm.weight", {h}));
        TRY(wg, weight(l + "mlp.gate_proj.weight", {c.intermediate, h}));
        TRY(wu, weight(l + "mlp.up_proj.weight", {c.intermediate, h}));
        TRY(wd, weight(l + "mlp.down_proj.weight", {h, c.intermediate}));
        TRY(bg, optionalBias(c.mlpBias, l + "mlp.gate_proj.bias", c.intermediate));
        TRY(bu, optionalBias(c.mlpBias, l + "mlp.up_proj.bias", c.intermediate));
        TRY(bd, optionalBias(c.mlpBias, l + "mlp.down_proj.bias", h));
        Value a = RMSNormOp::create(b, loc, act(h), x, ln1, APFloat(c.normEps));
        Value q = linear(a, wq, bq, qw, false);
        Value k = linear(a, wk, bk, kvw, false);
        Value v = linear(a, wv, bv, kvw, false);
        q = RopeOp::create(b, loc, act(qw), q, pos, c.headDim, APFloat(c.ropeTheta));
        k = RopeOp::create(b, loc, act(kvw), k, pos, c.headDim, APFloat(c.ropeTheta));
        Value o = linear(attention(q, k, v, 1.0 / std::sqrt(double(c.headDim))), wo, bo, h, false);
        Value x1 = AddOp::create(b, loc, x, o);
        Value m = RMSNormOp::create(b, loc, act(h), x1, ln2, APFloat(c.normEps));
        Value gate = SiluOp::create(b, loc, linear(m, wg, bg, c.intermediate, false));
        Value up = linear(m, wu, bu, c.intermediate, false);
        Value d = linear(MulOp::create(b, loc, gate, up), wd, bd, h, false);
        return AddOp::create(b, loc, x1, d).getResult();
      });
      if (!y)
        return y.takeError();
      x = *y;
      g.hidden.push_back(x);
    }
    TRY(norm, weight("model.norm.weight", {h}));
    x = RMSNormOp::create(b, x.getLoc(), act(h), x, norm, APFloat(c.normEps));
    g.hidden.back() = x;
    Value head = embed;
    if (!c.tied) {
      TRY(lm, weight("lm_head.weight", {c.vocab, h}));
      head = lm;
    }
    g.logits = linear(x, head, Value(), c.vocab, false);
    return g;
  }
#undef TRY

  MLIRContext &ctx;
  const ModelConfig &c;
  OpBuilder b;
  StringMap<std::string> files; // tensor key -> file path
  StringMap<TensorInfo> tensors;
  llvm::StringSet<> declared;
  OwningOpRef<ModuleOp> module;
  func::FuncOp func;
};

Expected<std::unique_ptr<MemoryBuffer>> readFile(const Twine &path) {
  auto buffer = MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer)
    return fail(path + ": cannot read: " + buffer.getError().message());
  return std::move(*buffer);
}
} // namespace

Expected<OwningOpRef<ModuleOp>> importHuggingFace(MLIRContext &context, StringRef dirArg,
                                                 const ImportOptions &options) {
  context.loadDialect<BmsysDialect, func::FuncDialect>();
  SmallString<256> dir;
  if (std::error_code ec = sys::fs::real_path(dirArg, dir))
    return fail(dirArg + ": " + ec.message());
  if (!sys::fs::is_directory(dir))
    return fail(dirArg + ": not a directory");

  SmallString<256> configPath(dir);
  sys::path::append(configPath, "config.json");
  auto configText = readFile(configPath);
  if (!configText)
    return configText.takeError();
  auto configJson = json::parse((*configText)->getBuffer());
  if (!configJson)
    return fail(configPath + ": bad JSON: " + toString(configJson.takeError()));
  if (!configJson->getAsObject())
    return fail(configPath + ": not a JSON object");
  auto config = readConfig(*configJson->getAsObject(), configPath);
  if (!config)
    return config.takeError();

  // Which files hold the weights: one model.safetensors, or a sharded index.
  SmallVector<std::string> shardFiles;
  StringMap<std::string> files;
  SmallString<256> single(dir), index(dir);
  sys::path::append(single, "model.safetensors");
  sys::path::append(index, "model.safetensors.index.json");
  if (sys::fs::exists(single)) {
    shardFiles.push_back(single.str().str());
  } else if (sys::fs::exists(index)) {
    auto indexText = readFile(index);
    if (!indexText)
      return indexText.takeError();
    auto indexJson = json::parse((*indexText)->getBuffer());
    if (!indexJson)
      return fail(index + ": bad JSON: " + toString(indexJson.takeError()));
    const json::Object *map =
        indexJson->getAsObject() ? indexJson->getAsObject()->getObject("weight_map") : nullptr;
    if (!map)
      return fail(index + ": missing object 'weight_map'");
    for (auto &[key, value] : *map) {
      auto file = value.getAsString();
      if (!file || file->contains('/') || file->contains('\\'))
        return fail(index + ": weight_map['" + StringRef(key) + "'] must be a file name in " + dir);
      SmallString<256> path(dir);
      sys::path::append(path, *file);
      if (!llvm::is_contained(shardFiles, path.str().str()))
        shardFiles.push_back(path.str().str());
    }
  } else {
    return fail(dir + ": no model.safetensors or model.safetensors.index.json");
  }

  StringMap<TensorInfo> tensors;
  std::string all;
  for (const std::string &file : shardFiles) {
    auto header = readSafetensorsHeader(file);
    if (!header)
      return header.takeError();
    for (auto &[key, info] : *header) {
      if (tensors.contains(key))
        return fail(file + ": tensor '" + key + "' is also in " + files.lookup(key));
      tensors[key] = info;
      files[key] = file;
    }
    all += (all.empty() ? "" : ", ") + file;
  }
  files["__all__"] = all;

  GraphBuilder builder(context, *config, std::move(files), std::move(tensors));
  return builder.build(options, (*configText)->getBuffer());
}
} // namespace bmsys::hf
