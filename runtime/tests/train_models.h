// A tiny trainable language model built by hand as the compiler would lower it:
// train_step(input_ids) = embedding -> rms_norm -> linear (lm_head) -> shifted
// cross-entropy, its backward with the training kernels, global_norm and one
// adamw (or sgd) per parameter; outputs loss, grad_norm and grad.<hf name>.
#pragma once

#include "artifact_builder.h"
#include "runtime/io/safetensors.h"
#include "test_util.h"

namespace bmsys::rt::test {

struct TinyTrainConfig {
  int64_t V = 13, H = 6;
  int64_t max_batch = 2, max_seq = 5;
  std::string optimizer = "adamw";  // or "sgd"
  std::string schedule = "cosine";
  int64_t warmup = 2, total = 10;
  bool tied_duplicate = false;  // a second Weight buffer under the lm_head key (tied)
};

inline ArtifactBuilder tiny_train_model(const TinyTrainConfig& c = {}) {
  ArtifactBuilder a(c.max_batch, c.max_seq);
  a.model_config = R"({"model_type": "tiny", "vocab_size": 13})";
  const std::string wf = "w.safetensors";
  auto ids = a.input("input_ids", fba::DType_I64, {Bd(), Sd()});
  struct Param {
    uint32_t w;
    std::string key;
    std::vector<TDim> dims;
    uint32_t grad = 0;
  };
  std::vector<Param> ps = {{a.weight("embed", {C(c.V), C(c.H)}, wf, "model.embed_tokens.weight"), "model.embed_tokens.weight", {C(c.V), C(c.H)}},
                           {a.weight("norm", {C(c.H)}, wf, "model.norm.weight"), "model.norm.weight", {C(c.H)}},
                           {a.weight("head", {C(c.V), C(c.H)}, wf, "lm_head.weight"), "lm_head.weight", {C(c.V), C(c.H)}}};
  auto act = [&](const std::string& n, int64_t last) { return a.activation(n, {Bd(), Sd(), C(last)}); };
  auto& f = a.function("train_step");
  f.inputs = {ids};
  auto e = act("e", c.H), n = act("n", c.H), logits = act("logits", c.V);
  auto loss = a.activation("loss", {});
  add_inst(f, "embedding", {ids, ps[0].w}, {e});
  add_inst(f, "rms_norm", {e, ps[1].w}, {n}, {AFloat("eps", 1e-5)});
  add_inst(f, "linear", {n, ps[2].w}, {logits});
  add_inst(f, "cross_entropy", {logits, ids}, {loss}, {AInt("shift", 1)});
  auto dlogits = act("dlogits", c.V), dn = act("dn", c.H), de = act("de", c.H);
  ps[0].grad = a.activation("grad.embed", ps[0].dims);
  ps[1].grad = a.activation("grad.norm", ps[1].dims);
  ps[2].grad = a.activation("grad.head", ps[2].dims);
  add_inst(f, "cross_entropy_grad", {logits, ids}, {dlogits}, {AInt("shift", 1)});
  add_inst(f, "linear_grad_weight", {dlogits, n}, {ps[2].grad});
  add_inst(f, "linear_grad_input", {dlogits, ps[2].w}, {dn});
  add_inst(f, "rms_norm_grad", {e, ps[1].w, dn}, {de, ps[1].grad}, {AFloat("eps", 1e-5)});
  add_inst(f, "embedding_grad", {ids, de}, {ps[0].grad}, {});
  auto norm = a.activation("grad_norm", {});
  add_inst(f, "global_norm", {ps[0].grad, ps[1].grad, ps[2].grad}, {norm});
  std::vector<TAttr> sched = {AStr("schedule", c.schedule), AInt("warmup_steps", c.warmup),
                              AInt("total_steps", c.total), AFloat("min_lr", 1e-3)};
  for (Param& p : ps) {
    std::vector<TAttr> attrs;
    if (c.optimizer == "adamw") {
      auto m = a.optimizer_state(p.key + ".exp_avg", p.dims), v = a.optimizer_state(p.key + ".exp_avg_sq", p.dims);
      attrs = {AFloat("lr", 0.05), AFloat("beta1", 0.9), AFloat("beta2", 0.95), AFloat("eps", 1e-8),
               AFloat("weight_decay", 0.1), AFloat("max_norm", 1.0)};
      attrs.insert(attrs.end(), sched.begin(), sched.end());
      add_inst(f, "adamw", {p.w, p.grad, m, v, norm}, {p.w, m, v}, attrs);
    } else {
      auto b = a.optimizer_state(p.key + ".momentum_buffer", p.dims);
      attrs = {AFloat("lr", 0.5), AFloat("momentum", 0.9), AFloat("weight_decay", 0.01), AFloat("max_norm", 1.0)};
      attrs.insert(attrs.end(), sched.begin(), sched.end());
      add_inst(f, "sgd", {p.w, p.grad, b, norm}, {p.w, b}, attrs);
    }
  }
  f.outputs = {loss, norm, ps[0].grad, ps[1].grad, ps[2].grad};
  f.output_names = {"loss", "grad_norm", "grad.model.embed_tokens.weight", "grad.model.norm.weight", "grad.lm_head.weight"};
  if (c.tied_duplicate) {
    // A forward-only function reading lm_head through a second buffer of the same key.
    auto head2 = a.weight("head_tied", {C(c.V), C(c.H)}, wf, "lm_head.weight");
    auto& g = a.function("forward");
    g.inputs = {ids};
    auto e2 = act("f.e", c.H), l2 = act("f.logits", c.V);
    add_inst(g, "embedding", {ids, ps[0].w}, {e2});
    add_inst(g, "linear", {e2, head2}, {l2});
    g.outputs = {l2};
    g.output_names = {"logits"};
  }
  return a;
}

inline void write_tiny_weights(const std::string& path, const TinyTrainConfig& c = {}) {
  write_safetensors(path, {{"model.embed_tokens.weight", HostTensor::from_f32({c.V, c.H}, random_floats(c.V * c.H, 31))},
                           {"model.norm.weight", HostTensor::from_f32({c.H}, random_floats(c.H, 32, 0.5f, 1.5f))},
                           {"lm_head.weight", HostTensor::from_f32({c.V, c.H}, random_floats(c.V * c.H, 33))}});
}

}  // namespace bmsys::rt::test
