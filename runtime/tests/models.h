// Hand-built artifacts of the golden tiny Llama and GPT-2 (test/data), as the
// compiler would lower them: used to check the CPU backend end to end against
// what transformers computed.
#pragma once

#include <cmath>

#include "artifact_builder.h"

namespace bmsys::rt::test {

struct TinyConfig {
  int64_t V = 256, H = 64, I = 176, L = 2, Nq = 4, Nkv = 2, D = 16;
  double eps = 1e-5, theta = 10000.0;
};

// The outputs of both models' forward: logits, then hidden.0 .. hidden.L (the hidden
// states as transformers returns them).
inline void set_forward_outputs(ArtifactBuilder::Fn& f, uint32_t logits, const std::vector<uint32_t>& hidden) {
  f.outputs = {logits};
  f.output_names = {"logits"};
  for (size_t i = 0; i < hidden.size(); ++i) {
    f.outputs.push_back(hidden[i]);
    f.output_names.push_back("hidden." + std::to_string(i));
  }
}

// forward(input_ids [B,S]) -> logits [B,S,V], hidden.0 .. hidden.L.
inline ArtifactBuilder llama_tiny(int64_t max_batch, int64_t max_seq, const TinyConfig& c = {}) {
  ArtifactBuilder a(max_batch, max_seq);
  const std::string wf = "model.safetensors";
  auto ids = a.input("input_ids", fba::DType_I64, {Bd(), Sd()});
  auto& f = a.function("forward");
  f.inputs = {ids};
  auto act = [&](const std::string& n, int64_t last) { return a.activation(n, {Bd(), Sd(), C(last)}); };
  auto pos = a.activation("pos", {Bd(), Sd()}, fba::DType_I64);
  add_inst(f, "positions", {ids}, {pos});
  auto h = act("hidden.0", c.H);
  add_inst(f, "embedding", {ids, a.weight("embed", {C(c.V), C(c.H)}, wf, "model.embed_tokens.weight")}, {h});
  std::vector<uint32_t> hidden = {h};
  for (int64_t l = 0; l < c.L; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    std::string n = "l" + std::to_string(l) + ".";
    auto w = [&](const std::string& key, int64_t r, int64_t k) { return a.weight(n + key, {C(r), C(k)}, wf, p + key); };
    auto x1 = act(n + "ln1", c.H);
    add_inst(f, "rms_norm", {h, a.weight(n + "ln1.w", {C(c.H)}, wf, p + "input_layernorm.weight")}, {x1}, {AFloat("eps", c.eps)});
    auto q = act(n + "q", c.Nq * c.D), k = act(n + "k", c.Nkv * c.D), v = act(n + "v", c.Nkv * c.D);
    add_inst(f, "linear", {x1, w("self_attn.q_proj.weight", c.Nq * c.D, c.H)}, {q});
    add_inst(f, "linear", {x1, w("self_attn.k_proj.weight", c.Nkv * c.D, c.H)}, {k});
    add_inst(f, "linear", {x1, w("self_attn.v_proj.weight", c.Nkv * c.D, c.H)}, {v});
    auto qr = act(n + "qr", c.Nq * c.D), kr = act(n + "kr", c.Nkv * c.D);
    add_inst(f, "rope", {q, pos}, {qr}, {AInt("head_dim", c.D), AFloat("theta", c.theta)});
    add_inst(f, "rope", {k, pos}, {kr}, {AInt("head_dim", c.D), AFloat("theta", c.theta)});
    auto kc = a.state(n + "k_cache", {C(max_batch), C(max_seq), C(c.Nkv), C(c.D)});
    auto vc = a.state(n + "v_cache", {C(max_batch), C(max_seq), C(c.Nkv), C(c.D)});
    auto at = act(n + "attn", c.Nq * c.D);
    add_inst(f, "attention", {qr, kr, v, kc, vc}, {at},
             {AInt("num_heads", c.Nq), AInt("num_kv_heads", c.Nkv), AInt("head_dim", c.D),
              AFloat("scale", 1.0 / std::sqrt(double(c.D))), AInt("causal", 1)});
    auto o = act(n + "o", c.H), h1 = act(n + "h1", c.H);
    add_inst(f, "linear", {at, w("self_attn.o_proj.weight", c.H, c.Nq * c.D)}, {o});
    add_inst(f, "add", {h, o}, {h1});
    auto x2 = act(n + "ln2", c.H);
    add_inst(f, "rms_norm", {h1, a.weight(n + "ln2.w", {C(c.H)}, wf, p + "post_attention_layernorm.weight")}, {x2}, {AFloat("eps", c.eps)});
    auto g = act(n + "gate", c.I), u = act(n + "up", c.I), sg = act(n + "silu", c.I), m = act(n + "mul", c.I);
    add_inst(f, "linear", {x2, w("mlp.gate_proj.weight", c.I, c.H)}, {g});
    add_inst(f, "linear", {x2, w("mlp.up_proj.weight", c.I, c.H)}, {u});
    add_inst(f, "silu", {g}, {sg});
    add_inst(f, "mul", {sg, u}, {m});
    auto d = act(n + "down", c.H);
    add_inst(f, "linear", {m, w("mlp.down_proj.weight", c.H, c.I)}, {d});
    h = act("hidden." + std::to_string(l + 1) + ".pre", c.H);
    add_inst(f, "add", {h1, d}, {h});
    hidden.push_back(h);
  }
  auto hf = act("hidden.final", c.H);
  add_inst(f, "rms_norm", {h, a.weight("norm", {C(c.H)}, wf, "model.norm.weight")}, {hf}, {AFloat("eps", c.eps)});
  hidden.back() = hf;  // transformers' last hidden state is after the final norm
  auto logits = act("logits", c.V);
  add_inst(f, "linear", {hf, a.weight("lm_head", {C(c.V), C(c.H)}, wf, "lm_head.weight")}, {logits});
  set_forward_outputs(f, logits, hidden);
  return a;
}

inline ArtifactBuilder gpt2_tiny(int64_t max_batch, int64_t max_seq) {
  const int64_t V = 256, H = 64, L = 2, N = 4, D = 16, P = 64;
  ArtifactBuilder a(max_batch, max_seq);
  const std::string wf = "model.safetensors";
  auto ids = a.input("input_ids", fba::DType_I64, {Bd(), Sd()});
  auto& f = a.function("forward");
  f.inputs = {ids};
  auto act = [&](const std::string& n, int64_t last) { return a.activation(n, {Bd(), Sd(), C(last)}); };
  auto vec = [&](const std::string& key, int64_t n) { return a.weight(key, {C(n)}, wf, "transformer." + key); };
  auto mat = [&](const std::string& key, int64_t r, int64_t k) { return a.weight(key, {C(r), C(k)}, wf, "transformer." + key); };
  auto pos = a.activation("pos", {Bd(), Sd()}, fba::DType_I64);
  add_inst(f, "positions", {ids}, {pos});
  auto te = act("te", H), pe = act("pe", H), h = act("hidden.0", H);
  auto wte = mat("wte.weight", V, H);
  add_inst(f, "embedding", {ids, wte}, {te});
  add_inst(f, "embedding", {pos, mat("wpe.weight", P, H)}, {pe});
  add_inst(f, "add", {te, pe}, {h});
  std::vector<uint32_t> hidden = {h};
  for (int64_t l = 0; l < L; ++l) {
    std::string p = "h." + std::to_string(l) + ".";
    auto x1 = act(p + "x1", H);
    add_inst(f, "layer_norm", {h, vec(p + "ln_1.weight", H), vec(p + "ln_1.bias", H)}, {x1}, {AFloat("eps", 1e-5)});
    auto qkv = act(p + "qkv", 3 * H);
    add_inst(f, "linear", {x1, mat(p + "attn.c_attn.weight", H, 3 * H), vec(p + "attn.c_attn.bias", 3 * H)}, {qkv}, {AInt("weight_transposed", 1)});
    auto q = act(p + "q", H), k = act(p + "k", H), v = act(p + "v", H);
    add_inst(f, "slice", {qkv}, {q}, {AInt("offset", 0), AInt("size", H)});
    add_inst(f, "slice", {qkv}, {k}, {AInt("offset", H), AInt("size", H)});
    add_inst(f, "slice", {qkv}, {v}, {AInt("offset", 2 * H), AInt("size", H)});
    auto kc = a.state(p + "k_cache", {C(max_batch), C(max_seq), C(N), C(D)});
    auto vc = a.state(p + "v_cache", {C(max_batch), C(max_seq), C(N), C(D)});
    auto at = act(p + "attn", H);
    add_inst(f, "attention", {q, k, v, kc, vc}, {at},
             {AInt("num_heads", N), AInt("num_kv_heads", N), AInt("head_dim", D),
              AFloat("scale", 1.0 / std::sqrt(double(D))), AInt("causal", 1)});
    auto o = act(p + "o", H), h1 = act(p + "h1", H);
    add_inst(f, "linear", {at, mat(p + "attn.c_proj.weight", H, H), vec(p + "attn.c_proj.bias", H)}, {o}, {AInt("weight_transposed", 1)});
    add_inst(f, "add", {h, o}, {h1});
    auto x2 = act(p + "x2", H), fc = act(p + "fc", 4 * H), g = act(p + "gelu", 4 * H), m = act(p + "m", H);
    add_inst(f, "layer_norm", {h1, vec(p + "ln_2.weight", H), vec(p + "ln_2.bias", H)}, {x2}, {AFloat("eps", 1e-5)});
    add_inst(f, "linear", {x2, mat(p + "mlp.c_fc.weight", H, 4 * H), vec(p + "mlp.c_fc.bias", 4 * H)}, {fc}, {AInt("weight_transposed", 1)});
    add_inst(f, "gelu", {fc}, {g}, {AStr("approximate", "tanh")});
    add_inst(f, "linear", {g, mat(p + "mlp.c_proj.weight", 4 * H, H), vec(p + "mlp.c_proj.bias", H)}, {m}, {AInt("weight_transposed", 1)});
    h = act(p + "out", H);
    add_inst(f, "add", {h1, m}, {h});
    hidden.push_back(h);
  }
  auto hf = act("hidden.final", H);
  add_inst(f, "layer_norm", {h, vec("ln_f.weight", H), vec("ln_f.bias", H)}, {hf}, {AFloat("eps", 1e-5)});
  hidden.back() = hf;
  auto logits = act("logits", V);
  add_inst(f, "linear", {hf, wte}, {logits});  // tied embeddings
  set_forward_outputs(f, logits, hidden);
  return a;
}

}  // namespace bmsys::rt::test
