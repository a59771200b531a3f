#include "runtime/core/kernels.h"

#include <algorithm>
#include <climits>
#include <cmath>

#include "runtime/collectives/communicator.h"
#include "runtime/core/error.h"

namespace bmsys::rt {

namespace {

const char* attr_type_name(AttrType t) {
  switch (t) {
    case AttrType::Int: return "int";
    case AttrType::Float: return "float";
    case AttrType::String: return "string";
    case AttrType::Ints: return "ints";
    case AttrType::Floats: return "floats";
  }
  return "?";
}

std::vector<AttrSpec> cat(std::vector<AttrSpec> a, const std::vector<AttrSpec>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const std::vector<KernelSpec>& table() {
  // Attributes several kernels share: attention's and its gradient's; the optimizers'
  // (after their hyperparameters); a pipeline transfer's.
  static const std::vector<AttrSpec> attention = {{"num_heads", AttrType::Int, true},
                                                  {"num_kv_heads", AttrType::Int, true},
                                                  {"head_dim", AttrType::Int, true},
                                                  {"scale", AttrType::Float, true},
                                                  {"causal", AttrType::Int, true}};
  static const std::vector<AttrSpec> optimizer = {{"max_norm", AttrType::Float, false},
                                                  {"schedule", AttrType::String, false},
                                                  {"warmup_steps", AttrType::Int, false},
                                                  {"total_steps", AttrType::Int, false},
                                                  {"min_lr", AttrType::Float, false},
                                                  {"zero_ranks", AttrType::Int, false},
                                                  {"param_sharded", AttrType::Int, false},
                                                  {"loss_scaling", AttrType::Int, false}};
  static const std::vector<AttrSpec> transfer = {
      {"peer", AttrType::Int, true}, {"micro_batch", AttrType::Int, true}, {"channel", AttrType::Int, true}};
  static const std::vector<KernelSpec> t = {
      {KernelId::Positions, "positions", 1, 1, 1, {}, {}},
      {KernelId::Embedding, "embedding", 2, 2, 1, {{"vocab_shards", AttrType::Int, false}}, {}},
      {KernelId::Linear, "linear", 2, 3, 1, {{"weight_transposed", AttrType::Int, false}}, {}},
      {KernelId::Slice, "slice", 1, 1, 1,
       {{"offset", AttrType::Int, true}, {"size", AttrType::Int, true}}, {}},
      {KernelId::LayerNorm, "layer_norm", 3, 3, 1, {{"eps", AttrType::Float, true}}, {}},
      {KernelId::RmsNorm, "rms_norm", 2, 2, 1, {{"eps", AttrType::Float, true}}, {}},
      {KernelId::Rope, "rope", 2, 2, 1,
       {{"head_dim", AttrType::Int, true}, {"theta", AttrType::Float, true}}, {}},
      {KernelId::Attention, "attention", 3, 5, 1, attention, {3, 4}},
      {KernelId::Gelu, "gelu", 1, 1, 1, {{"approximate", AttrType::String, true}}, {}},
      {KernelId::Silu, "silu", 1, 1, 1, {}, {}},
      {KernelId::Add, "add", 2, 2, 1, {}, {}},
      {KernelId::Mul, "mul", 2, 2, 1, {}, {}},
      {KernelId::CrossEntropy, "cross_entropy", 2, 2, 1,
       {{"shift", AttrType::Int, false}, {"vocab_shards", AttrType::Int, false}}, {}},
      // Training kernels.
      {KernelId::EmbeddingGrad, "embedding_grad", 2, 2, 1, {{"vocab_shards", AttrType::Int, false}}, {}},
      {KernelId::LinearGradInput, "linear_grad_input", 2, 2, 1,
       {{"weight_transposed", AttrType::Int, false}}, {}},
      {KernelId::LinearGradWeight, "linear_grad_weight", 2, 2, 1,
       {{"weight_transposed", AttrType::Int, false}}, {}},
      {KernelId::SumRows, "sum_rows", 1, 1, 1, {}, {}},
      {KernelId::SliceGrad, "slice_grad", 1, 1, 1,
       {{"offset", AttrType::Int, true}, {"width", AttrType::Int, true}}, {}},
      {KernelId::LayerNormGrad, "layer_norm_grad", 3, 3, 3, {{"eps", AttrType::Float, true}}, {}},
      {KernelId::RmsNormGrad, "rms_norm_grad", 3, 3, 2, {{"eps", AttrType::Float, true}}, {}},
      {KernelId::RopeGrad, "rope_grad", 2, 2, 1,
       {{"head_dim", AttrType::Int, true}, {"theta", AttrType::Float, true}}, {}},
      {KernelId::AttentionGrad, "attention_grad", 4, 4, 3, attention, {}},
      {KernelId::GeluGrad, "gelu_grad", 2, 2, 1, {{"approximate", AttrType::String, true}}, {}},
      {KernelId::SiluGrad, "silu_grad", 2, 2, 1, {}, {}},
      {KernelId::CrossEntropyGrad, "cross_entropy_grad", 2, 2, 1,
       {{"shift", AttrType::Int, false},
        {"loss_scaling", AttrType::Int, false},
        {"vocab_shards", AttrType::Int, false}},
       {}},
      {KernelId::GlobalNorm, "global_norm", 1, INT_MAX, 1,
       {{"ranks", AttrType::Int, false}, {"tp_sharded", AttrType::Ints, false}, {"pp_stages", AttrType::Int, false}},
       {}},
      {KernelId::AdamW, "adamw", 5, 5, 3,
       cat(cat({{"lr", AttrType::Float, true},
                {"beta1", AttrType::Float, true},
                {"beta2", AttrType::Float, true},
                {"eps", AttrType::Float, true},
                {"weight_decay", AttrType::Float, true}},
               optimizer),
           {{"offload", AttrType::Int, false}}),
       {0, 2, 3},
       {0, 2, 3}},
      {KernelId::Sgd, "sgd", 4, 4, 2,
       cat({{"lr", AttrType::Float, true}, {"momentum", AttrType::Float, true}, {"weight_decay", AttrType::Float, true}},
           optimizer),
       {0, 2},
       {0, 2}},
      // Collectives.
      {KernelId::AllReduce, "all_reduce", 1, 1, 1,
       {{"ranks", AttrType::Int, true}, {"reduction", AttrType::String, true}}, {}},
      {KernelId::ReduceScatter, "reduce_scatter", 1, 1, 1,
       {{"ranks", AttrType::Int, true}, {"reduction", AttrType::String, true}}, {}},
      {KernelId::AllGather, "all_gather", 1, 1, 1, {{"ranks", AttrType::Int, true}}, {}},
      {KernelId::SyncParam, "sync_param", 1, 1, 1, {{"ranks", AttrType::Int, true}}, {0}, {0}},
      {KernelId::LinearInt8, "linear_int8", 3, 4, 1, {{"activations", AttrType::String, true}}, {}},
      {KernelId::FakeQuant, "fake_quant", 1, 1, 1, {{"axis", AttrType::Int, true}}, {}},
      {KernelId::TpAllReduce, "tp_all_reduce", 1, 1, 1, {{"ranks", AttrType::Int, true}}, {}},
      {KernelId::Cast, "cast", 1, 1, 1, {}, {}},
      {KernelId::DistillSoftCe, "distill_soft_ce", 2, 2, 1,
       {{"temperature", AttrType::Float, true}, {"scale", AttrType::Float, true}}, {}},
      {KernelId::DistillSoftCeGrad, "distill_soft_ce_grad", 2, 2, 1,
       {{"temperature", AttrType::Float, true}, {"scale", AttrType::Float, true}}, {}},
      {KernelId::DistillHiddenMse, "distill_hidden_mse", 2, 2, 1,
       {{"eps", AttrType::Float, true}, {"scale", AttrType::Float, true}}, {}},
      {KernelId::DistillHiddenMseGrad, "distill_hidden_mse_grad", 2, 2, 1,
       {{"eps", AttrType::Float, true}, {"scale", AttrType::Float, true}}, {}},
      {KernelId::MoeFfn, "moe_ffn", 4, 7, 1,
       {{"experts", AttrType::Int, true},
        {"top_k", AttrType::Int, true},
        {"activation", AttrType::String, true},
        {"gated", AttrType::Int, false},
        {"bias", AttrType::Int, false}},
       {}},
      {KernelId::ToHost, "to_host", 1, 1, 1, {}, {}},
      {KernelId::UploadMaster, "upload_master", 1, 1, 1,
       {{"zero_ranks", AttrType::Int, false}, {"param_sharded", AttrType::Int, false}}, {}},
      {KernelId::PpSend, "pp_send", 1, 1, 0, transfer, {}},
      {KernelId::PpRecv, "pp_recv", 0, 0, 1, transfer, {}},
      {KernelId::PpBroadcast, "pp_broadcast", 0, 1, 1, {{"root", AttrType::Int, true}}, {}},
      {KernelId::PpMean, "pp_mean", 1, 1, 1, {{"micro_batches", AttrType::Int, true}}, {}},
      {KernelId::SwiGlu, "swiglu", 2, 2, 1, {}, {}},
      {KernelId::SwiGluGrad, "swiglu_grad", 3, 3, 2, {}, {}},
      {KernelId::AddRmsNorm, "add_rms_norm", 3, 3, 2, {{"eps", AttrType::Float, true}}, {}},
      {KernelId::RmsNormGradAdd, "rms_norm_grad_add", 4, 4, 2, {{"eps", AttrType::Float, true}}, {}},
      {KernelId::RopeAttention, "rope_attention", 4, 6, 1, cat(attention, {{"theta", AttrType::Float, true}}),
       {4, 5}},
  };
  return t;
}

}  // namespace

// The table is indexed by KernelId: its rows must follow the enum's order.
const KernelSpec& kernel_spec(KernelId id) {
  const KernelSpec& s = table().at(static_cast<size_t>(id));
  if (s.id != id) fail("internal error: kernel table row {} is '{}', out of KernelId order", static_cast<int>(id), s.name);
  return s;
}

std::optional<KernelId> kernel_from_name(const std::string& name) {
  for (const KernelSpec& s : table())
    if (name == s.name) return s.id;
  return std::nullopt;
}

const char* kernel_name(KernelId id) { return kernel_spec(id).name; }

bool is_optimizer_kernel(KernelId id) { return id == KernelId::AdamW || id == KernelId::Sgd; }

bool writes_persistent(KernelId id) {
  return is_optimizer_kernel(id) || id == KernelId::SyncParam || id == KernelId::UploadMaster;
}

bool is_collective_kernel(KernelId id) {
  return id == KernelId::AllReduce || id == KernelId::ReduceScatter || id == KernelId::AllGather ||
         id == KernelId::SyncParam || id == KernelId::TpAllReduce || id == KernelId::PpSend ||
         id == KernelId::PpRecv || id == KernelId::PpBroadcast;
}

// --- Learning-rate schedule ----------------------------------------------------------

LrSchedule LrSchedule::from_attrs(const Attrs& a) {
  LrSchedule s;
  s.lr = a.get_float("lr");
  std::string kind = a.has("schedule") ? a.get_string("schedule") : "constant";
  if (kind == "constant") s.kind = Kind::Constant;
  else if (kind == "cosine") s.kind = Kind::Cosine;
  else if (kind == "linear") s.kind = Kind::Linear;
  else fail("attribute 'schedule' must be \"constant\", \"cosine\" or \"linear\", not \"{}\"", kind);
  s.warmup_steps = a.get_int("warmup_steps", 0);
  s.total_steps = a.get_int("total_steps", 0);
  s.min_lr = a.has("min_lr") ? a.get_float("min_lr") : 0.0;
  if (s.warmup_steps < 0) fail("attribute 'warmup_steps' must be >= 0, not {}", s.warmup_steps);
  if (s.total_steps < 0) fail("attribute 'total_steps' must be >= 0, not {}", s.total_steps);
  return s;
}

double LrSchedule::at(int64_t T) const {
  if (warmup_steps > 0 && T <= warmup_steps)
    return lr * static_cast<double>(T) / static_cast<double>(warmup_steps);
  double p = static_cast<double>(T - warmup_steps) /
             static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  p = std::min(1.0, std::max(0.0, p));
  switch (kind) {
    case Kind::Constant: return lr;
    case Kind::Cosine: return min_lr + (lr - min_lr) * (1.0 + std::cos(M_PI * p)) / 2.0;
    case Kind::Linear: return lr + (min_lr - lr) * p;
  }
  return lr;
}

// --- Attrs ---------------------------------------------------------------------

const AttrValue& Attrs::get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) fail("attribute '{}' is missing", name);
  return it->second;
}

int64_t Attrs::get_int(const std::string& name) const {
  const AttrValue& v = get(name);
  if (v.type != AttrType::Int || v.ints.size() != 1)
    fail("attribute '{}' must be an int, not {}", name, attr_type_name(v.type));
  return v.ints[0];
}

int64_t Attrs::get_int(const std::string& name, int64_t dflt) const {
  return has(name) ? get_int(name) : dflt;
}

double Attrs::get_float(const std::string& name) const {
  const AttrValue& v = get(name);
  if (v.type == AttrType::Float && v.floats.size() == 1) return v.floats[0];
  if (v.type == AttrType::Int && v.ints.size() == 1) return static_cast<double>(v.ints[0]);
  fail("attribute '{}' must be a float, not {}", name, attr_type_name(v.type));
}

std::string Attrs::get_string(const std::string& name) const {
  const AttrValue& v = get(name);
  if (v.type != AttrType::String)
    fail("attribute '{}' must be a string, not {}", name, attr_type_name(v.type));
  return v.str;
}

// --- Launch checks ---------------------------------------------------------------

namespace {

void expect_shape(const TensorView& t, const Shape& want, const char* what) {
  if (t.shape != want)
    fail("{} has shape {}, expected {}", what, shape_str(t.shape), shape_str(want));
}

void expect_float(const TensorView& t, const char* what) {
  if (!dtype_is_float(t.dtype)) fail("{} must be a float tensor, not {}", what, dtype_name(t.dtype));
}

void expect_dtype(const TensorView& t, DType d, const char* what) {
  if (t.dtype != d) fail("{} must be {}, not {}", what, dtype_name(d), dtype_name(t.dtype));
}

void expect_rank_at_least(const TensorView& t, size_t r, const char* what) {
  if (t.shape.size() < r)
    fail("{} has shape {}, expected rank >= {}", what, shape_str(t.shape), r);
}

// A 0/1 attribute; an optional one (not `required`) defaults to 0.
int64_t expect_flag(const Attrs& a, const char* name, bool required = false) {
  const int64_t v = required ? a.get_int(name) : a.get_int(name, 0);
  if (v != 0 && v != 1) fail("attribute '{}' must be 0 or 1, not {}", name, v);
  return v;
}

Shape with_last(Shape s, int64_t last) {
  s.back() = last;
  return s;
}

// [B,S,...] viewed as [B,S,rest]; returns rest.
int64_t trailing(const TensorView& t, const char* what) {
  expect_rank_at_least(t, 3, what);
  return shape_numel(Shape(t.shape.begin() + 2, t.shape.end()));
}

bool overlaps(const TensorView& x, const TensorView& y) {
  size_t xb = x.bytes(), yb = y.bytes();
  if (xb == 0 || yb == 0) return false;
  auto xs = reinterpret_cast<uintptr_t>(x.data), ys = reinterpret_cast<uintptr_t>(y.data);
  return xs < ys + yb && ys < xs + xb;
}

// Outputs must not overlap any other operand, except that an optimizer kernel's
// outputs are exactly its in-place inputs (spec.in_place).
void check_aliasing(const KernelLaunch& l, const KernelSpec& spec) {
  const int nin = static_cast<int>(l.inputs.size()), nout = static_cast<int>(l.outputs.size());
  std::vector<int> same_as(nout, -1);
  for (int o = 0; o < nout && o < static_cast<int>(spec.in_place.size()); ++o) {
    const TensorView& in = l.inputs[spec.in_place[o]];
    const TensorView& out = l.outputs[o];
    if (out.data != in.data || out.dtype != in.dtype || out.shape != in.shape)
      fail("output {} must be the same buffer as input {} (updated in place)", o, spec.in_place[o]);
    same_as[o] = spec.in_place[o];
  }
  for (int o = 0; o < nout; ++o) {
    for (int i = 0; i < nin; ++i)
      if (i != same_as[o] && overlaps(l.outputs[o], l.inputs[i]))
        fail("output {} overlaps input {}", o, i);
    for (int p = o + 1; p < nout; ++p)
      if (overlaps(l.outputs[o], l.outputs[p])) fail("outputs {} and {} overlap", o, p);
  }
}

// A collective's `ranks` must be the run's world size (0 or 1 allowed where the
// attribute means "not distributed").
void check_ranks(const KernelLaunch& l, int64_t ranks, bool local_allowed) {
  if (local_allowed && ranks <= 1) return;
  if (ranks < 1) fail("attribute 'ranks' must be >= 1, not {}", ranks);
  if (ranks != l.ctx.world_size)
    fail("compiled for {} data-parallel ranks (attribute 'ranks'), but this run has {}", ranks,
         l.ctx.world_size);
  if (ranks > 1 && !l.ctx.comm) fail("a collective needs a communicator, and the launch has none");
}

// Tensor parallelism: `vocab_shards` (0 or 1: none) must be the run's tensor-parallel size.
void check_vocab_shards(const KernelLaunch& l) {
  int64_t v = l.attrs->get_int("vocab_shards", 0);
  if (v < 0) fail("attribute 'vocab_shards' must be >= 0, not {}", v);
  if (v > 1 && v != l.ctx.tp_size)
    fail("compiled for {} tensor-parallel ranks (attribute 'vocab_shards'), but this run has {}", v, l.ctx.tp_size);
  if (v > 1 && !l.ctx.tp_comm) fail("a vocab-parallel kernel needs a tensor-parallel communicator, and the launch has none");
}

// `loss_scaling` is 0 or 1, and the call's loss scale L a positive number.
void check_loss_scaling(const KernelLaunch& l) {
  int64_t ls = expect_flag(*l.attrs, "loss_scaling");
  if (ls && !(l.ctx.loss_scale > 0))
    fail("the loss scale must be a positive number, not {}", l.ctx.loss_scale);
}

// A float input 0 and an output 0 of its dtype and shape (copies, collectives).
void expect_float_copy(const KernelLaunch& l) {
  expect_float(l.inputs[0], "input 0");
  expect_dtype(l.outputs[0], l.inputs[0].dtype, "output 0");
  expect_shape(l.outputs[0], l.inputs[0].shape, "output 0");
}

void expect_gelu_approximate(const Attrs& a) {
  std::string ap = a.get_string("approximate");
  if (ap != "tanh" && ap != "none") fail("attribute 'approximate' must be \"tanh\" or \"none\", not \"{}\"", ap);
}

// linear and linear_grad_input: a float activation of rank >= 1 (x, or dy for the
// gradient) and a float matrix w (input 1); returns weight_transposed.
int64_t check_act_weight(const KernelLaunch& l, const char* act) {
  const int64_t wt = expect_flag(*l.attrs, "weight_transposed");
  expect_float(l.inputs[0], act);
  expect_float(l.inputs[1], "w (input 1)");
  expect_rank_at_least(l.inputs[0], 1, act);
  if (l.inputs[1].shape.size() != 2) fail("w (input 1) must be rank 2, got {}", shape_str(l.inputs[1].shape));
  return wt;
}

// layer/RMS norm and their gradients: x [..., H], gamma [H], eps >= 0; returns H.
int64_t check_norm_input(const KernelLaunch& l) {
  expect_float(l.inputs[0], "x (input 0)");
  expect_rank_at_least(l.inputs[0], 1, "x (input 0)");
  const int64_t H = l.inputs[0].shape.back();
  expect_shape(l.inputs[1], {H}, "gamma (input 1)");
  if (!(l.attrs->get_float("eps") >= 0)) fail("attribute 'eps' must be >= 0");
  return H;
}

// rope and rope_grad: the rotated tensor [B,S,N*D] (x, or dy for the gradient) with
// head_dim D, and pos [B,S].
void check_rope_input(const KernelLaunch& l, const char* what) {
  const TensorView& x = l.inputs[0];
  expect_float(x, what);
  int64_t rest = trailing(x, what);
  int64_t D = l.attrs->get_int("head_dim");
  if (D <= 0 || D % 2 != 0) fail("attribute 'head_dim' must be positive and even, not {}", D);
  if (rest % D != 0) fail("{} {}: N*D is not a multiple of head_dim {}", what, shape_str(x.shape), D);
  expect_dtype(l.inputs[1], DType::I64, "pos (input 1)");
  expect_shape(l.inputs[1], {x.shape[0], x.shape[1]}, "pos (input 1)");
}

struct Heads {
  int64_t Nq, Nkv, D;
};

// attention and attention_grad: the head counts, head_dim, causal and scale.
Heads check_attention_attrs(const Attrs& a) {
  const Heads h{a.get_int("num_heads"), a.get_int("num_kv_heads"), a.get_int("head_dim")};
  if (h.Nq <= 0 || h.Nkv <= 0 || h.D <= 0) fail("num_heads, num_kv_heads and head_dim must be positive");
  if (h.Nq % h.Nkv != 0) fail("num_heads {} is not a multiple of num_kv_heads {}", h.Nq, h.Nkv);
  expect_flag(a, "causal", true);
  a.get_float("scale");
  return h;
}

// attention and rope_attention: q [B,S,Nq*D], k and v [B,S,Nkv*D], y as q, and either
// no cache or k_cache, v_cache [Bmax,Smax,Nkv,D] at inputs `cache_at`, `cache_at` + 1
// (rows batch_offset.. and positions P..P+S-1 within them).
void check_attention(const KernelLaunch& l, int cache_at) {
  const auto& in = l.inputs;
  const int nin = static_cast<int>(in.size());
  const auto [Nq, Nkv, D] = check_attention_attrs(*l.attrs);
  const std::string kc = fmt::format("k_cache (input {})", cache_at), vc = fmt::format("v_cache (input {})", cache_at + 1);
  const char* names[] = {"q (input 0)", "k (input 1)", "v (input 2)"};
  for (int i = 0; i < 3; ++i) expect_float(in[i], names[i]);
  if (trailing(in[0], names[0]) != Nq * D) fail("q (input 0) {} is not [B,S,{}*{}]", shape_str(in[0].shape), Nq, D);
  for (int i = 1; i < 3; ++i) {
    if (trailing(in[i], names[i]) != Nkv * D || in[i].shape[0] != in[0].shape[0] || in[i].shape[1] != in[0].shape[1])
      fail("{} has shape {}, expected [{},{},{}*{}]", names[i], shape_str(in[i].shape), in[0].shape[0], in[0].shape[1], Nkv, D);
  }
  if (nin == cache_at + 1) fail("{} takes both k_cache and v_cache or neither", kernel_name(l.kernel));
  if (nin == cache_at + 2) {
    for (int i = cache_at; i < cache_at + 2; ++i) {
      const char* what = i == cache_at ? kc.c_str() : vc.c_str();
      expect_float(in[i], what);
      const Shape& c = in[i].shape;
      if (c.size() != 4 || c[2] != Nkv || c[3] != D)
        fail("{} has shape {}, expected [Bmax,Smax,{},{}]", what, shape_str(c), Nkv, D);
      if (c != in[cache_at].shape) fail("k_cache and v_cache shapes differ");
      const int64_t off = l.ctx.batch_offset;
      if (off < 0 || in[0].shape[0] + off > c[0])
        fail("batch {}{} exceeds the cache's {}", in[0].shape[0],
             off ? fmt::format(" at cache row offset {}", off) : std::string(), c[0]);
      int64_t P = l.ctx.start_pos, S = in[0].shape[1];
      if (P < 0 || P + S > c[1])
        fail("start_pos {} + seq {} exceeds the cache length {}", P, S, c[1]);
    }
  }
  expect_shape(l.outputs[0], in[0].shape, "y (output 0)");
}

// cross_entropy and its gradient: logits [B,S,V] and labels [B,S] with at least one
// token to score (shift: each position predicts the next label).
void check_logits_labels(const KernelLaunch& l) {
  check_vocab_shards(l);
  const int64_t shift = expect_flag(*l.attrs, "shift");
  const TensorView& logits = l.inputs[0];
  expect_float(logits, "logits (input 0)");
  if (logits.shape.size() != 3) fail("logits (input 0) must be [B,S,V], got {}", shape_str(logits.shape));
  expect_dtype(l.inputs[1], DType::I64, "labels (input 1)");
  expect_shape(l.inputs[1], {logits.shape[0], logits.shape[1]}, "labels (input 1)");
  if (logits.shape[0] * (logits.shape[1] - shift) <= 0) fail("no tokens to score");
}

}  // namespace

void check_launch(const KernelLaunch& l) {
  const KernelSpec& spec = kernel_spec(l.kernel);
  int nin = static_cast<int>(l.inputs.size());
  if (nin < spec.min_inputs || nin > spec.max_inputs ||
      static_cast<int>(l.outputs.size()) != spec.outputs)
    fail("wrong operand count: {} inputs, {} outputs", nin, l.outputs.size());
  const Attrs& a = *l.attrs;
  const auto& in = l.inputs;
  static const TensorView kNoOutput;  // pp_send has none
  const TensorView& y = l.outputs.empty() ? kNoOutput : l.outputs[0];
  switch (l.kernel) {
    case KernelId::Positions:
      expect_dtype(in[0], DType::I64, "ids (input 0)");
      if (in[0].shape.size() != 2) fail("ids (input 0) must be [B,S], got {}", shape_str(in[0].shape));
      expect_dtype(y, DType::I64, "pos (output 0)");
      expect_shape(y, in[0].shape, "pos (output 0)");
      break;
    case KernelId::Embedding: {
      check_vocab_shards(l);
      expect_dtype(in[0], DType::I64, "ids (input 0)");
      expect_float(in[1], "table (input 1)");
      if (in[1].shape.size() != 2) fail("table (input 1) must be [V,H], got {}", shape_str(in[1].shape));
      Shape want = in[0].shape;
      want.push_back(in[1].shape[1]);
      expect_float(y, "y (output 0)");
      expect_shape(y, want, "y (output 0)");
      break;
    }
    case KernelId::Linear: {
      int64_t wt = check_act_weight(l, "x (input 0)");
      int64_t K = in[0].shape.back();
      int64_t N = wt ? in[1].shape[1] : in[1].shape[0];
      int64_t wk = wt ? in[1].shape[0] : in[1].shape[1];
      if (wk != K)
        fail("x (input 0) {} and w (input 1) {} disagree on K (weight_transposed={})",
             shape_str(in[0].shape), shape_str(in[1].shape), wt);
      if (nin == 3) {
        expect_float(in[2], "bias (input 2)");
        expect_shape(in[2], {N}, "bias (input 2)");
      }
      expect_float(y, "y (output 0)");
      expect_shape(y, with_last(in[0].shape, N), "y (output 0)");
      break;
    }
    case KernelId::FakeQuant: {
      int64_t axis = a.get_int("axis");
      expect_dtype(in[0], DType::F32, "w (input 0)");
      if (in[0].shape.size() != 2) fail("w (input 0) must be a matrix, got {}", shape_str(in[0].shape));
      if (axis != 0 && axis != 1) fail("attribute 'axis' must be 0 or 1, not {}", axis);
      expect_shape(y, in[0].shape, "y (output 0)");
      break;
    }
    case KernelId::LinearInt8: {
      std::string act = a.get_string("activations");
      if (act != "float" && act != "int8")
        fail("attribute 'activations' must be \"float\" or \"int8\", not \"{}\"", act);
      expect_float(in[0], "x (input 0)");
      expect_rank_at_least(in[0], 1, "x (input 0)");
      expect_dtype(in[1], DType::I8, "weight (input 1)");
      if (in[1].shape.size() != 2) fail("weight (input 1) must be [N, K], got {}", shape_str(in[1].shape));
      int64_t N = in[1].shape[0], K = in[1].shape[1];
      if (in[0].shape.back() != K)
        fail("x (input 0) {} and weight (input 1) {} disagree on K", shape_str(in[0].shape),
             shape_str(in[1].shape));
      expect_dtype(in[2], DType::F32, "scale (input 2)");
      expect_shape(in[2], {N}, "scale (input 2)");
      if (nin == 4) {
        expect_float(in[3], "bias (input 3)");
        expect_shape(in[3], {N}, "bias (input 3)");
      }
      expect_float(y, "y (output 0)");
      expect_shape(y, with_last(in[0].shape, N), "y (output 0)");
      break;
    }
    case KernelId::Slice: {
      expect_rank_at_least(in[0], 1, "x (input 0)");
      int64_t off = a.get_int("offset"), size = a.get_int("size"), K = in[0].shape.back();
      if (off < 0 || size < 0 || off > K || size > K - off)
        fail("slice [{}, {}+{}) out of range for last dimension {}", off, off, size, K);
      if (y.dtype != in[0].dtype) fail("y (output 0) dtype differs from x (input 0)");
      expect_shape(y, with_last(in[0].shape, size), "y (output 0)");
      break;
    }
    case KernelId::LayerNorm:
    case KernelId::RmsNorm: {
      int64_t H = check_norm_input(l);
      if (l.kernel == KernelId::LayerNorm) expect_shape(in[2], {H}, "beta (input 2)");
      expect_shape(y, in[0].shape, "y (output 0)");
      break;
    }
    case KernelId::Rope:
      check_rope_input(l, "x (input 0)");
      expect_shape(y, in[0].shape, "y (output 0)");
      break;
    case KernelId::Attention:
      check_attention(l, 3);
      break;
    case KernelId::Gelu:
      expect_gelu_approximate(a);
      [[fallthrough]];
    case KernelId::Silu:
      expect_float(in[0], "x (input 0)");
      expect_shape(y, in[0].shape, "y (output 0)");
      break;
    case KernelId::Add:
    case KernelId::Mul:
      expect_float(in[0], "a (input 0)");
      expect_shape(in[1], in[0].shape, "b (input 1)");
      expect_shape(y, in[0].shape, "y (output 0)");
      break;
    case KernelId::CrossEntropy:
      check_logits_labels(l);
      expect_float(y, "loss (output 0)");
      if (y.numel() != 1) fail("loss (output 0) must have one element, has shape {}", shape_str(y.shape));
      break;
    // --- Training kernels ---
    case KernelId::EmbeddingGrad: {
      check_vocab_shards(l);
      expect_dtype(in[0], DType::I64, "ids (input 0)");
      expect_float(in[1], "dy (input 1)");
      if (y.shape.size() != 2 || y.shape[0] <= 0)
        fail("dtable (output 0) must be [vocab, H], has shape {}", shape_str(y.shape));
      int64_t V = y.shape[0];
      if (in[1].shape.size() != in[0].shape.size() + 1 ||
          !std::equal(in[0].shape.begin(), in[0].shape.end(), in[1].shape.begin()))
        fail("dy (input 1) has shape {}, expected ids' shape {} + [H]", shape_str(in[1].shape),
             shape_str(in[0].shape));
      expect_float(y, "dtable (output 0)");
      expect_shape(y, {V, in[1].shape.back()}, "dtable (output 0)");
      break;
    }
    case KernelId::LinearGradInput: {
      int64_t wt = check_act_weight(l, "dy (input 0)");
      int64_t N = wt ? in[1].shape[1] : in[1].shape[0];
      int64_t K = wt ? in[1].shape[0] : in[1].shape[1];
      if (in[0].shape.back() != N)
        fail("dy (input 0) {} and w (input 1) {} disagree on N (weight_transposed={})",
             shape_str(in[0].shape), shape_str(in[1].shape), wt);
      expect_float(y, "dx (output 0)");
      expect_shape(y, with_last(in[0].shape, K), "dx (output 0)");
      break;
    }
    case KernelId::LinearGradWeight: {
      int64_t wt = expect_flag(a, "weight_transposed");
      expect_float(in[0], "dy (input 0)");
      expect_float(in[1], "x (input 1)");
      expect_rank_at_least(in[0], 1, "dy (input 0)");
      if (in[1].shape.size() != in[0].shape.size() ||
          !std::equal(in[0].shape.begin(), in[0].shape.end() - 1, in[1].shape.begin()))
        fail("dy (input 0) {} and x (input 1) {} differ in their leading dimensions",
             shape_str(in[0].shape), shape_str(in[1].shape));
      int64_t N = in[0].shape.back(), K = in[1].shape.back();
      expect_float(y, "dw (output 0)");
      expect_shape(y, wt ? Shape{K, N} : Shape{N, K}, "dw (output 0)");
      break;
    }
    case KernelId::SumRows:
      expect_float(in[0], "dy (input 0)");
      expect_rank_at_least(in[0], 1, "dy (input 0)");
      expect_float(y, "db (output 0)");
      expect_shape(y, {in[0].shape.back()}, "db (output 0)");
      break;
    case KernelId::SliceGrad: {
      expect_rank_at_least(in[0], 1, "dy (input 0)");
      int64_t off = a.get_int("offset"), K = a.get_int("width"), N = in[0].shape.back();
      if (off < 0 || K < 0 || off > K || N > K - off)
        fail("slice [{}, {}+{}) out of range for width {}", off, off, N, K);
      if (y.dtype != in[0].dtype) fail("dx (output 0) dtype differs from dy (input 0)");
      expect_shape(y, with_last(in[0].shape, K), "dx (output 0)");
      break;
    }
    case KernelId::LayerNormGrad:
    case KernelId::RmsNormGrad: {
      int64_t H = check_norm_input(l);
      expect_float(in[2], "dy (input 2)");
      expect_shape(in[2], in[0].shape, "dy (input 2)");
      expect_float(y, "dx (output 0)");
      expect_shape(y, in[0].shape, "dx (output 0)");
      expect_float(l.outputs[1], "dgamma (output 1)");
      expect_shape(l.outputs[1], {H}, "dgamma (output 1)");
      if (l.kernel == KernelId::LayerNormGrad) {
        expect_float(l.outputs[2], "dbeta (output 2)");
        expect_shape(l.outputs[2], {H}, "dbeta (output 2)");
      }
      break;
    }
    case KernelId::RopeGrad:
      check_rope_input(l, "dy (input 0)");
      expect_float(y, "dx (output 0)");
      expect_shape(y, in[0].shape, "dx (output 0)");
      break;
    case KernelId::AttentionGrad: {
      const auto [Nq, Nkv, D] = check_attention_attrs(a);
      const char* names[] = {"q (input 0)", "k (input 1)", "v (input 2)", "dy (input 3)"};
      for (int i = 0; i < 4; ++i) expect_float(in[i], names[i]);
      if (trailing(in[0], names[0]) != Nq * D || in[0].shape.size() != 3)
        fail("q (input 0) {} is not [B,S,{}*{}]", shape_str(in[0].shape), Nq, D);
      for (int i = 1; i < 3; ++i)
        expect_shape(in[i], {in[0].shape[0], in[0].shape[1], Nkv * D}, names[i]);
      expect_shape(in[3], in[0].shape, names[3]);
      const char* onames[] = {"dq (output 0)", "dk (output 1)", "dv (output 2)"};
      for (int i = 0; i < 3; ++i) {
        expect_float(l.outputs[i], onames[i]);
        expect_shape(l.outputs[i], in[i].shape, onames[i]);
      }
      break;
    }
    case KernelId::GeluGrad:
      expect_gelu_approximate(a);
      [[fallthrough]];
    case KernelId::SiluGrad:
      expect_float(in[0], "x (input 0)");
      expect_float(in[1], "dy (input 1)");
      expect_shape(in[1], in[0].shape, "dy (input 1)");
      expect_float(y, "dx (output 0)");
      expect_shape(y, in[0].shape, "dx (output 0)");
      break;
    case KernelId::CrossEntropyGrad:
      check_logits_labels(l);
      check_loss_scaling(l);
      expect_float(y, "dlogits (output 0)");
      expect_shape(y, in[0].shape, "dlogits (output 0)");
      break;
    case KernelId::GlobalNorm:
      if (a.has("ranks")) check_ranks(l, a.get_int("ranks"), true);
      if (a.get_int("pp_stages", 0) > 1 && a.get_int("pp_stages", 0) != l.ctx.pp_size)
        fail("compiled for {} pipeline stages (attribute 'pp_stages'), but this run has {}", a.get_int("pp_stages", 0),
             l.ctx.pp_size);
      if (a.has("tp_sharded") && a.all().at("tp_sharded").type == AttrType::Ints) {
        const auto& flags = a.all().at("tp_sharded").ints;
        if (static_cast<int>(flags.size()) != nin)
          fail("attribute 'tp_sharded' has {} flags for {} inputs", flags.size(), nin);
        for (int64_t f : flags)
          if (f != 0 && f != 1) fail("attribute 'tp_sharded' must hold 0 or 1, not {}", f);
        if (!l.ctx.tp_comm) fail("tp_sharded needs a tensor-parallel communicator, and the launch has none");
      }
      for (int i = 0; i < nin; ++i)
        if (!dtype_is_float(in[i].dtype))
          fail("input {} must be a float tensor, not {}", i, dtype_name(in[i].dtype));
      expect_float(y, "norm (output 0)");
      if (y.numel() != 1) fail("norm (output 0) must have one element, has shape {}", shape_str(y.shape));
      break;
    case KernelId::AdamW:
    case KernelId::Sgd: {
      const bool adam = l.kernel == KernelId::AdamW;
      const int norm_index = adam ? 4 : 3;
      const char* adam_names[] = {"param (input 0)", "grad (input 1)", "exp_avg (input 2)", "exp_avg_sq (input 3)"};
      const char* sgd_names[] = {"param (input 0)", "grad (input 1)", "momentum_buffer (input 2)"};
      // ZeRO: grad and states are this rank's flat shard [ceil(n/R)] of a param of n
      // elements (zero_ranks = R > 1); the param is the full tensor, or the shard
      // itself with param_sharded.
      const int64_t zr = a.get_int("zero_ranks", 0);
      const bool param_sharded = a.get_int("param_sharded", 0) != 0;
      if (zr > 1) check_ranks(l, zr, false);
      Shape state_shape = in[0].shape;
      if (zr > 1 && !param_sharded) state_shape = {shard_size(in[0].numel(), zr)};
      if (zr > 1 && param_sharded && in[0].shape.size() != 1)
        fail("param (input 0) is a shard (param_sharded) and must be flat, not {}", shape_str(in[0].shape));
      for (int i = 0; i < norm_index; ++i) {
        const char* n = adam ? adam_names[i] : sgd_names[i];
        expect_float(in[i], n);
        if (i) expect_shape(in[i], state_shape, n);
      }
      expect_float(in[norm_index], "norm");
      if (in[norm_index].numel() != 1)
        fail("norm (input {}) must have one element, has shape {}", norm_index, shape_str(in[norm_index].shape));
      if (l.ctx.step < 1) fail("the training step T must be >= 1, not {}", l.ctx.step);
      expect_flag(a, "offload");
      if (a.get_int("offload", 0) && zr > 1 && !param_sharded)
        fail("an offloaded update (offload = 1) with zero_ranks {} updates the master's shard: it needs param_sharded",
             zr);
      check_loss_scaling(l);
      double lr = a.get_float("lr"), wd = a.get_float("weight_decay");
      if (!(lr >= 0)) fail("attribute 'lr' must be >= 0");
      if (!(wd >= 0)) fail("attribute 'weight_decay' must be >= 0");
      if (a.has("max_norm") && !(a.get_float("max_norm") >= 0)) fail("attribute 'max_norm' must be >= 0");
      if (adam) {
        double b1 = a.get_float("beta1"), b2 = a.get_float("beta2");
        if (!(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1)) fail("attributes 'beta1', 'beta2' must be in [0, 1)");
        if (!(a.get_float("eps") >= 0)) fail("attribute 'eps' must be >= 0");
      } else if (!(a.get_float("momentum") >= 0)) {
        fail("attribute 'momentum' must be >= 0");
      }
      LrSchedule::from_attrs(a);
      break;
    }
    case KernelId::ToHost:
      expect_float_copy(l);
      break;
    case KernelId::UploadMaster: {
      // The f32 master (this rank's flat shard with zero_ranks = R > 1) into the device
      // parameter: the whole tensor, its shard (param_sharded), or this rank's slice of it.
      const int64_t zr = a.get_int("zero_ranks", 0);
      const bool param_sharded = a.get_int("param_sharded", 0) != 0;
      if (zr > 1) check_ranks(l, zr, false);
      expect_dtype(in[0], DType::F32, "master (input 0)");
      expect_float(y, "param (output 0)");
      if (zr > 1 && !param_sharded) {
        expect_shape(in[0], {shard_size(y.numel(), zr)}, "master (input 0)");
      } else if (in[0].numel() != y.numel()) {
        fail("master (input 0) has {} elements, the parameter (output 0) {}", in[0].numel(), y.numel());
      }
      break;
    }
    case KernelId::PpSend:
    case KernelId::PpRecv: {
      const int64_t peer = a.get_int("peer");
      if (!l.ctx.pp_comm) fail("{} needs a pipeline communicator, and the launch has none", kernel_name(l.kernel));
      if (peer < 0 || peer >= l.ctx.pp_size || (peer != l.ctx.pp_rank - 1 && peer != l.ctx.pp_rank + 1))
        fail("attribute 'peer' {} is not a neighbour of stage {} (of {})", peer, l.ctx.pp_rank, l.ctx.pp_size);
      if (a.get_int("micro_batch") < 0 || a.get_int("channel") < 0)
        fail("attributes 'micro_batch' and 'channel' must be >= 0");
      break;
    }
    case KernelId::PpBroadcast: {
      const int64_t root = a.get_int("root");
      if (!l.ctx.pp_comm) fail("pp_broadcast needs a pipeline communicator, and the launch has none");
      if (root < 0 || root >= l.ctx.pp_size) fail("attribute 'root' {} is not a stage of {}", root, l.ctx.pp_size);
      if ((root == l.ctx.pp_rank) != (nin == 1))
        fail("stage {} must {}pass the value (root {})", l.ctx.pp_rank, root == l.ctx.pp_rank ? "" : "not ", root);
      expect_float(y, "output 0");
      if (nin == 1) {
        expect_dtype(in[0], y.dtype, "input 0");
        expect_shape(in[0], y.shape, "input 0");
      }
      break;
    }
    case KernelId::PpMean:
      if (a.get_int("micro_batches") < 1) fail("attribute 'micro_batches' must be >= 1");
      expect_float_copy(l);
      break;
    case KernelId::TpAllReduce: {
      int64_t R = a.get_int("ranks");
      if (R < 1) fail("attribute 'ranks' must be >= 1, not {}", R);
      if (R != l.ctx.tp_size)
        fail("compiled for {} tensor-parallel ranks (attribute 'ranks'), but this run has {}", R, l.ctx.tp_size);
      if (!l.ctx.tp_comm) fail("tp_all_reduce needs a tensor-parallel communicator, and the launch has none");
      expect_float_copy(l);
      break;
    }
    case KernelId::AllReduce:
      check_ranks(l, a.get_int("ranks"), false);
      reduce_op_from_name(a.get_string("reduction"));
      expect_float_copy(l);
      break;
    case KernelId::ReduceScatter: {
      int64_t R = a.get_int("ranks");
      check_ranks(l, R, false);
      reduce_op_from_name(a.get_string("reduction"));
      expect_float(in[0], "input 0");
      expect_dtype(y, in[0].dtype, "shard (output 0)");
      expect_shape(y, {shard_size(in[0].numel(), R)}, "shard (output 0)");
      break;
    }
    case KernelId::AllGather: {
      int64_t R = a.get_int("ranks");
      check_ranks(l, R, false);
      expect_float(y, "output 0");
      expect_dtype(in[0], y.dtype, "shard (input 0)");
      expect_shape(in[0], {shard_size(y.numel(), R)}, "shard (input 0)");
      break;
    }
    case KernelId::SyncParam:
      check_ranks(l, a.get_int("ranks"), false);
      expect_float(in[0], "param (input 0)");
      break;
    case KernelId::Cast:
      expect_float(in[0], "x (input 0)");
      expect_float(y, "y (output 0)");
      expect_shape(y, in[0].shape, "y (output 0)");
      break;
    case KernelId::DistillSoftCe:
    case KernelId::DistillSoftCeGrad:
    case KernelId::DistillHiddenMse:
    case KernelId::DistillHiddenMseGrad: {
      const bool soft = l.kernel == KernelId::DistillSoftCe || l.kernel == KernelId::DistillSoftCeGrad;
      const bool grad = l.kernel == KernelId::DistillSoftCeGrad || l.kernel == KernelId::DistillHiddenMseGrad;
      const char* attr = soft ? "temperature" : "eps";
      if (!(a.get_float(attr) > 0)) fail("attribute '{}' must be positive, not {}", attr, a.get_float(attr));
      if (!(a.get_float("scale") >= 0)) fail("attribute 'scale' must be >= 0, not {}", a.get_float("scale"));
      expect_float(in[0], "student (input 0)");
      if (in[0].shape.size() != 3) fail("student (input 0) must be [B,S,W], got {}", shape_str(in[0].shape));
      expect_float(in[1], "teacher (input 1)");
      expect_shape(in[1], in[0].shape, "teacher (input 1)");
      expect_float(y, "output 0");
      if (grad)
        expect_shape(y, in[0].shape, "dstudent (output 0)");
      else if (y.numel() != 1)
        fail("loss (output 0) must have one element, has shape {}", shape_str(y.shape));
      break;
    }
    case KernelId::MoeFfn: {
      const int64_t E = a.get_int("experts"), K = a.get_int("top_k");
      const bool gated = a.get_int("gated", 0) != 0, bias = a.get_int("bias", 0) != 0;
      const std::string act = a.get_string("activation");
      if (act != "silu" && act != "gelu" && act != "gelu_tanh")
        fail("attribute 'activation' must be silu, gelu or gelu_tanh, not '{}'", act);
      if (E < 1 || K < 1 || K > E) fail("needs 1 <= top_k <= experts, got top_k {} of {}", K, E);
      if (nin != 4 + (gated ? 1 : 0) + (bias ? 2 : 0))
        fail("{} inputs do not match gated={} bias={}", nin, gated, bias);
      expect_dtype(in[0], DType::F32, "x (input 0)");
      if (in[0].shape.size() != 3) fail("x (input 0) must be [B,S,H], got {}", shape_str(in[0].shape));
      const int64_t H = in[0].shape[2];
      expect_dtype(in[1], DType::F32, "router (input 1)");
      expect_shape(in[1], {E, H}, "router (input 1)");
      expect_dtype(in[2], DType::F32, "w_in (input 2)");
      if (in[2].shape.size() != 2 || in[2].shape[1] != H || in[2].shape[0] % E)
        fail("w_in (input 2) must be [n,{}] with n a multiple of {}, got {}", H, E, shape_str(in[2].shape));
      const int mats = gated ? 3 : 2;
      for (int i = 3; i < 2 + mats; ++i) {
        expect_dtype(in[i], DType::F32, "weight (input 3..)");
        expect_shape(in[i], in[2].shape, "weight (input 3..)");
      }
      if (bias) {
        expect_shape(in[2 + mats], {in[2].shape[0]}, "b_in");
        expect_shape(in[3 + mats], {H}, "b_out");
      }
      expect_dtype(y, DType::F32, "y (output 0)");
      expect_shape(y, in[0].shape, "y (output 0)");
      break;
    }
    // --- Fused elementwise kernels: every float operand of one dtype (they replace ops
    // that each had one), shapes as the ops they replace.
    case KernelId::SwiGlu:
    case KernelId::SwiGluGrad: {
      const char* names[] = {"gate (input 0)", "up (input 1)", "dy (input 2)"};
      for (int i = 0; i < nin; ++i) {
        expect_float(in[i], names[i]);
        expect_dtype(in[i], in[0].dtype, names[i]);
        expect_shape(in[i], in[0].shape, names[i]);
      }
      for (size_t o = 0; o < l.outputs.size(); ++o) {
        const char* what = l.kernel == KernelId::SwiGlu ? "y (output 0)" : o == 0 ? "dgate (output 0)" : "dup (output 1)";
        expect_dtype(l.outputs[o], in[0].dtype, what);
        expect_shape(l.outputs[o], in[0].shape, what);
      }
      break;
    }
    case KernelId::AddRmsNorm:
    case KernelId::RmsNormGradAdd: {
      const bool fwd = l.kernel == KernelId::AddRmsNorm;
      expect_float(in[0], fwd ? "a (input 0)" : "x (input 0)");
      expect_rank_at_least(in[0], 1, fwd ? "a (input 0)" : "x (input 0)");
      const int64_t H = in[0].shape.back();
      const DType t = in[0].dtype;
      const int gi = fwd ? 2 : 1;  // gamma
      expect_dtype(in[gi], t, "gamma");
      expect_shape(in[gi], {H}, "gamma");
      for (int i = 1; i < nin; ++i) {
        if (i == gi) continue;
        const char* what = fwd ? "b (input 1)" : i == 2 ? "dy (input 2)" : "residual (input 3)";
        expect_dtype(in[i], t, what);
        expect_shape(in[i], in[0].shape, what);
      }
      if (!(a.get_float("eps") >= 0)) fail("attribute 'eps' must be >= 0");
      expect_dtype(y, t, fwd ? "sum (output 0)" : "dx (output 0)");
      expect_shape(y, in[0].shape, fwd ? "sum (output 0)" : "dx (output 0)");
      expect_dtype(l.outputs[1], t, fwd ? "y (output 1)" : "dgamma (output 1)");
      expect_shape(l.outputs[1], fwd ? in[0].shape : Shape{H}, fwd ? "y (output 1)" : "dgamma (output 1)");
      break;
    }
    case KernelId::RopeAttention: {
      // attention's operands and rope's: pos [B,S] i64, an even head_dim (rotated pairs).
      check_attention(l, 4);
      const int64_t D = a.get_int("head_dim");
      if (D % 2 != 0) fail("attribute 'head_dim' must be even (rope rotates pairs), not {}", D);
      a.get_float("theta");
      expect_dtype(in[3], DType::I64, "pos (input 3)");
      expect_shape(in[3], {in[0].shape[0], in[0].shape[1]}, "pos (input 3)");
      break;
    }
    case KernelId::kCount:
      fail("invalid kernel id");
  }
  check_aliasing(l, spec);
}

}  // namespace bmsys::rt
