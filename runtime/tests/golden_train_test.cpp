// The golden tiny Llama (test/data/llama-tiny, computed by transformers in float64)
// trained through a hand-built train_step as the compiler would lower it: forward,
// backward with the training kernels, global-norm clipping and AdamW. Gradients must
// match transformers' within 1e-4 and the 10-step AdamW losses within 1e-4.
#include <cmath>

#include "models.h"
#include "runtime/backends/cpu/cpu_backend.h"
#include "runtime/core/executor.h"
#include "runtime/io/safetensors.h"
#include "runtime/train/token_data.h"
#include "runtime/train/trainer.h"
#include "test_util.h"

using namespace bmsys::rt;
using namespace bmsys::rt::test;

namespace {

std::string data_dir() { return std::string(BMSYS_SOURCE_DIR) + "/test/data/llama-tiny"; }

// train_step(input_ids) -> loss, grad_norm, grad.<hf name>; AdamW as in recipe.json.
ArtifactBuilder llama_tiny_train(int64_t max_batch, int64_t max_seq, const TinyConfig& c = {}) {
  ArtifactBuilder a(max_batch, max_seq);
  const std::string wf = "model.safetensors";
  auto ids = a.input("input_ids", fba::DType_I64, {Bd(), Sd()});
  auto& f = a.function("train_step");
  f.inputs = {ids};
  int counter = 0;
  auto act = [&](int64_t last) { return a.activation("a" + std::to_string(counter++), {Bd(), Sd(), C(last)}); };
  auto op = [&](const std::string& k, std::vector<uint32_t> in, std::vector<uint32_t> out, std::vector<TAttr> at = {}) {
    add_inst(f, k, std::move(in), std::move(out), std::move(at));
  };
  struct Param {
    std::string key;
    uint32_t w;
    std::vector<TDim> dims;
    uint32_t grad;
  };
  std::vector<Param> params;
  auto param = [&](const std::string& key, std::vector<TDim> dims) -> Param& {
    uint32_t w = a.weight(key, dims, wf, key);
    uint32_t g = a.activation("grad." + key, dims);
    params.push_back({key, w, dims, g});
    return params.back();
  };
  const TAttr eps = AFloat("eps", c.eps);
  const std::vector<TAttr> rope_at = {AInt("head_dim", c.D), AFloat("theta", c.theta)};
  const std::vector<TAttr> attn_at = {AInt("num_heads", c.Nq), AInt("num_kv_heads", c.Nkv), AInt("head_dim", c.D),
                                      AFloat("scale", 1.0 / std::sqrt(double(c.D))), AInt("causal", 1)};
  // Forward.
  auto pos = a.activation("pos", {Bd(), Sd()}, fba::DType_I64);
  op("positions", {ids}, {pos});
  size_t embed = params.size();
  param("model.embed_tokens.weight", {C(c.V), C(c.H)});
  uint32_t h = act(c.H);
  op("embedding", {ids, params[embed].w}, {h});
  struct Layer {
    uint32_t h_in, x1, q, k, v, qr, kr, at, h1, x2, g, u, sg, m;
    size_t ln1, wq, wk, wv, wo, ln2, wg, wu, wd;
  };
  std::vector<Layer> layers;
  for (int64_t l = 0; l < c.L; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    Layer L{};
    auto P = [&](const std::string& k, std::vector<TDim> d) { param(p + k, std::move(d)); return params.size() - 1; };
    L.ln1 = P("input_layernorm.weight", {C(c.H)});
    L.wq = P("self_attn.q_proj.weight", {C(c.Nq * c.D), C(c.H)});
    L.wk = P("self_attn.k_proj.weight", {C(c.Nkv * c.D), C(c.H)});
    L.wv = P("self_attn.v_proj.weight", {C(c.Nkv * c.D), C(c.H)});
    L.wo = P("self_attn.o_proj.weight", {C(c.H), C(c.Nq * c.D)});
    L.ln2 = P("post_attention_layernorm.weight", {C(c.H)});
    L.wg = P("mlp.gate_proj.weight", {C(c.I), C(c.H)});
    L.wu = P("mlp.up_proj.weight", {C(c.I), C(c.H)});
    L.wd = P("mlp.down_proj.weight", {C(c.H), C(c.I)});
    L.h_in = h;
    op("rms_norm", {h, params[L.ln1].w}, {L.x1 = act(c.H)}, {eps});
    op("linear", {L.x1, params[L.wq].w}, {L.q = act(c.Nq * c.D)});
    op("linear", {L.x1, params[L.wk].w}, {L.k = act(c.Nkv * c.D)});
    op("linear", {L.x1, params[L.wv].w}, {L.v = act(c.Nkv * c.D)});
    op("rope", {L.q, pos}, {L.qr = act(c.Nq * c.D)}, rope_at);
    op("rope", {L.k, pos}, {L.kr = act(c.Nkv * c.D)}, rope_at);
    op("attention", {L.qr, L.kr, L.v}, {L.at = act(c.Nq * c.D)}, attn_at);
    uint32_t o = act(c.H);
    op("linear", {L.at, params[L.wo].w}, {o});
    op("add", {h, o}, {L.h1 = act(c.H)});
    op("rms_norm", {L.h1, params[L.ln2].w}, {L.x2 = act(c.H)}, {eps});
    op("linear", {L.x2, params[L.wg].w}, {L.g = act(c.I)});
    op("linear", {L.x2, params[L.wu].w}, {L.u = act(c.I)});
    op("silu", {L.g}, {L.sg = act(c.I)});
    op("mul", {L.sg, L.u}, {L.m = act(c.I)});
    uint32_t d = act(c.H);
    op("linear", {L.m, params[L.wd].w}, {d});
    op("add", {L.h1, d}, {h = act(c.H)});
    layers.push_back(L);
  }
  size_t norm = params.size();
  param("model.norm.weight", {C(c.H)});
  size_t head = params.size();
  param("lm_head.weight", {C(c.V), C(c.H)});
  uint32_t hf = act(c.H), logits = act(c.V), loss = a.activation("loss", {});
  op("rms_norm", {h, params[norm].w}, {hf}, {eps});
  op("linear", {hf, params[head].w}, {logits});
  op("cross_entropy", {logits, ids}, {loss}, {AInt("shift", 1)});

  // Backward.
  uint32_t dlogits = act(c.V), dhf = act(c.H), dh = act(c.H);
  op("cross_entropy_grad", {logits, ids}, {dlogits}, {AInt("shift", 1)});
  op("linear_grad_weight", {dlogits, hf}, {params[head].grad});
  op("linear_grad_input", {dlogits, params[head].w}, {dhf});
  op("rms_norm_grad", {h, params[norm].w, dhf}, {dh, params[norm].grad}, {eps});
  for (int64_t l = c.L - 1; l >= 0; --l) {
    const Layer& L = layers[l];
    auto gw = [&](size_t p) { return params[p].grad; };
    auto w = [&](size_t p) { return params[p].w; };
    uint32_t dm = act(c.I), dsg = act(c.I), du = act(c.I), dg = act(c.I);
    op("linear_grad_weight", {dh, L.m}, {gw(L.wd)});
    op("linear_grad_input", {dh, w(L.wd)}, {dm});
    op("mul", {dm, L.u}, {dsg});
    op("mul", {dm, L.sg}, {du});
    op("silu_grad", {L.g, dsg}, {dg});
    op("linear_grad_weight", {dg, L.x2}, {gw(L.wg)});
    op("linear_grad_weight", {du, L.x2}, {gw(L.wu)});
    uint32_t dx2a = act(c.H), dx2b = act(c.H), dx2 = act(c.H), dh1n = act(c.H), dh1 = act(c.H);
    op("linear_grad_input", {dg, w(L.wg)}, {dx2a});
    op("linear_grad_input", {du, w(L.wu)}, {dx2b});
    op("add", {dx2a, dx2b}, {dx2});
    op("rms_norm_grad", {L.h1, w(L.ln2), dx2}, {dh1n, gw(L.ln2)}, {eps});
    op("add", {dh, dh1n}, {dh1});
    uint32_t dat = act(c.Nq * c.D), dqr = act(c.Nq * c.D), dkr = act(c.Nkv * c.D), dv = act(c.Nkv * c.D);
    op("linear_grad_weight", {dh1, L.at}, {gw(L.wo)});
    op("linear_grad_input", {dh1, w(L.wo)}, {dat});
    op("attention_grad", {L.qr, L.kr, L.v, dat}, {dqr, dkr, dv}, attn_at);
    uint32_t dq = act(c.Nq * c.D), dk = act(c.Nkv * c.D);
    op("rope_grad", {dqr, pos}, {dq}, rope_at);
    op("rope_grad", {dkr, pos}, {dk}, rope_at);
    op("linear_grad_weight", {dq, L.x1}, {gw(L.wq)});
    op("linear_grad_weight", {dk, L.x1}, {gw(L.wk)});
    op("linear_grad_weight", {dv, L.x1}, {gw(L.wv)});
    uint32_t a1 = act(c.H), a2 = act(c.H), a3 = act(c.H), s1 = act(c.H), dx1 = act(c.H), dhn = act(c.H);
    op("linear_grad_input", {dq, w(L.wq)}, {a1});
    op("linear_grad_input", {dk, w(L.wk)}, {a2});
    op("linear_grad_input", {dv, w(L.wv)}, {a3});
    op("add", {a1, a2}, {s1});
    op("add", {s1, a3}, {dx1});
    op("rms_norm_grad", {L.h_in, w(L.ln1), dx1}, {dhn, gw(L.ln1)}, {eps});
    uint32_t dh_next = act(c.H);
    op("add", {dh1, dhn}, {dh_next});
    dh = dh_next;
  }
  op("embedding_grad", {ids, dh}, {params[embed].grad}, {});

  // Optimizer.
  uint32_t gnorm = a.activation("grad_norm", {});
  std::vector<uint32_t> grads;
  for (const Param& p : params) grads.push_back(p.grad);
  op("global_norm", grads, {gnorm});
  for (const Param& p : params) {
    uint32_t m = a.optimizer_state(p.key + ".exp_avg", p.dims), v = a.optimizer_state(p.key + ".exp_avg_sq", p.dims);
    op("adamw", {p.w, p.grad, m, v, gnorm}, {p.w, m, v},
       {AFloat("lr", 1e-3), AFloat("beta1", 0.9), AFloat("beta2", 0.95), AFloat("eps", 1e-8),
        AFloat("weight_decay", 0.1), AFloat("max_norm", 1.0), AStr("schedule", "constant"),
        AInt("warmup_steps", 0), AInt("total_steps", 10), AFloat("min_lr", 0.0)});
  }
  f.outputs = {loss, gnorm};
  f.output_names = {"loss", "grad_norm"};
  for (const Param& p : params) {
    f.outputs.push_back(p.grad);
    f.output_names.push_back("grad." + p.key);
  }
  return a;
}

std::string save(const TempDir& dir, const ArtifactBuilder& a) {
  auto bytes = a.finish();
  write_bytes(dir.file("train.bmsys"), std::string(bytes.begin(), bytes.end()));
  return dir.file("train.bmsys");
}

}  // namespace

TEST(GoldenTrain, LlamaGradientsMatchTransformers) {
  TempDir dir;
  Executor ex(load_artifact(save(dir, llama_tiny_train(2, 16))), std::make_shared<CpuBackend>(),
              ExecutorOptions{data_dir()});
  auto golden = SafetensorsFile::open(data_dir() + "/golden.safetensors");
  auto out = ex.run("train_step", {{"input_ids", golden->read("input_ids")}}, 0, 1);
  EXPECT_NEAR(out.at("loss").to_f32()[0], golden->read("loss", DType::F32).to_f32()[0], 1e-4);
  int checked = 0;
  for (const std::string& name : golden->names()) {
    if (name.rfind("grad.", 0) != 0) continue;
    ASSERT_TRUE(out.count(name)) << name;
    auto got = out.at(name).to_f32(), want = golden->read(name, DType::F32).to_f32();
    ASSERT_EQ(got.size(), want.size()) << name;
    double scale = 0;  // relative to the tensor's largest gradient
    for (float w : want) scale = std::max(scale, double(std::abs(w)));
    double err = 0;
    for (size_t i = 0; i < got.size(); ++i) err = std::max(err, std::abs(double(got[i]) - want[i]));
    EXPECT_LT(err, 1e-4 * scale) << name << " (max |grad| " << scale << ")";
    ++checked;
  }
  EXPECT_EQ(checked, 21);
}

TEST(GoldenTrain, LlamaTenAdamWStepsMatchTransformers) {
  TempDir dir;
  Executor ex(load_artifact(save(dir, llama_tiny_train(4, 32))), std::make_shared<CpuBackend>(),
              ExecutorOptions{data_dir()});
  auto golden = SafetensorsFile::open(data_dir() + "/golden.safetensors");
  HostTensor ids = golden->read("train.input_ids");
  write_token_file(dir.file("train.bin"), std::vector<int64_t>(ids.as<int64_t>(), ids.as<int64_t>() + ids.numel()),
                   TokenDtype::U16);
  TrainOptions o;
  o.data = dir.file("train.bin");
  o.batch = 4;
  o.seq = 32;
  o.steps = 10;
  auto m = train(ex, o);
  auto want = golden->read("train.losses", DType::F32).to_f32();
  ASSERT_EQ(m.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(m[i].loss, want[i], 1e-4) << "step " << i + 1;
  for (const std::string& name : golden->names()) {
    if (name.rfind("train.final.", 0) != 0) continue;
    std::string key = name.substr(12);
    auto got = ex.read_buffer(ex.buffer_index(key), DType::F32).to_f32();
    auto w = golden->read(name, DType::F32).to_f32();
    for (size_t i = 0; i < w.size(); ++i) ASSERT_NEAR(got[i], w[i], 1e-4 * (1 + std::abs(w[i]))) << key << " " << i;
  }
}
