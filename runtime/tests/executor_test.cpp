// End-to-end: the golden tiny Llama and GPT-2 (test/data, computed by
// transformers in float64) run through hand-built artifacts on the CPU backend,
// plus the KV-cache generate loop and the bmsys-run CLI.
#include "runtime/core/executor.h"

#include <cmath>

#include "models.h"
#include "runtime/backends/cpu/cpu_backend.h"
#include "runtime/io/safetensors.h"
#include "runtime/tests/host_sampling.h"
#include "test_util.h"

using namespace bmsys::rt;
using namespace bmsys::rt::test;

namespace {

std::string data_dir(const std::string& model) { return std::string(BMSYS_SOURCE_DIR) + "/test/data/" + model; }

std::string save(const TempDir& dir, const ArtifactBuilder& a, const std::string& name) {
  auto bytes = a.finish();
  write_bytes(dir.file(name), std::string(bytes.begin(), bytes.end()));
  return dir.file(name);
}

// Largest |got - want| / (1 + |want|).
double max_rel_err(const HostTensor& got, const HostTensor& want) {
  EXPECT_EQ(got.shape, want.shape);
  auto g = got.to_f32(), w = want.to_f32();
  if (g.size() != w.size()) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < g.size(); ++i) m = std::max(m, std::abs(double(g[i]) - w[i]) / (1.0 + std::abs(w[i])));
  return m;
}

std::vector<int64_t> greedy(Executor& ex, std::vector<int64_t> ids, int64_t n) {
  ex.reset_state();
  int64_t P = 0;
  std::vector<int64_t> chunk = ids;
  for (int64_t i = 0; i < n; ++i) {
    auto out = ex.run("forward", {{"input_ids", HostTensor::from_i64({1, int64_t(chunk.size())}, chunk)}}, P);
    const HostTensor& lg = out.at("logits");
    auto v = lg.to_f32();
    int64_t S = lg.shape[1], V = lg.shape[2];
    const float* row = v.data() + (S - 1) * V;
    int64_t best = std::max_element(row, row + V) - row;
    P += int64_t(chunk.size());
    ids.push_back(best);
    chunk = {best};
  }
  return ids;
}

std::vector<int64_t> i64s(const HostTensor& t) { return std::vector<int64_t>(t.as<int64_t>(), t.as<int64_t>() + t.numel()); }

class Golden : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(Golden, ForwardMatchesTransformers) {
  const std::string model = GetParam();
  TempDir dir;
  auto a = model == "llama-tiny" ? llama_tiny(2, 32) : gpt2_tiny(2, 32);
  Executor ex(load_artifact(save(dir, a, "m.bmsys")), std::make_shared<CpuBackend>(),
              ExecutorOptions{data_dir(model)});
  auto golden = SafetensorsFile::open(data_dir(model) + "/golden.safetensors");
  auto out = ex.run("forward", {{"input_ids", golden->read("input_ids")}});
  EXPECT_LT(max_rel_err(out.at("logits"), golden->read("logits", DType::F32)), 1e-4);
  for (const char* h : {"hidden.0", "hidden.1", "hidden.2"})
    EXPECT_LT(max_rel_err(out.at(h), golden->read(h, DType::F32)), 1e-4) << h;
}

TEST_P(Golden, GreedyGenerationWithKvCacheMatchesTransformers) {
  const std::string model = GetParam();
  TempDir dir;
  auto a = model == "llama-tiny" ? llama_tiny(1, 32) : gpt2_tiny(1, 32);
  Executor ex(load_artifact(save(dir, a, "m.bmsys")), std::make_shared<CpuBackend>(),
              ExecutorOptions{data_dir(model) + "/model.safetensors"});
  auto golden = SafetensorsFile::open(data_dir(model) + "/golden.safetensors");
  auto prompt = i64s(golden->read("generate.prompt"));
  auto want = i64s(golden->read("generate.output"));
  EXPECT_EQ(greedy(ex, prompt, int64_t(want.size() - prompt.size())), want);
}

INSTANTIATE_TEST_SUITE_P(Models, Golden, ::testing::Values("llama-tiny", "gpt2-tiny"));

// Greedy decoding fed on the device (queued runs, queue_pick): the same tokens as the
// synchronous loop, and each misuse named.
TEST(Executor, QueuedRunsWithDeviceArgmaxGiveTheGreedyTokens) {
  TempDir dir;
  Executor ex(load_artifact(save(dir, llama_tiny(1, 32), "m.bmsys")), std::make_shared<CpuBackend>(),
              ExecutorOptions{data_dir("llama-tiny") + "/model.safetensors"});
  auto golden = SafetensorsFile::open(data_dir("llama-tiny") + "/golden.safetensors");
  auto prompt = i64s(golden->read("generate.prompt"));
  auto want = i64s(golden->read("generate.output"));
  expect_error([&] { ex.queue_pick("logits", "input_ids"); }, {"no function has run yet"});

  ex.reset_state();
  std::vector<int64_t> got = prompt;
  RunOptions ro;
  ro.queued = true;
  EXPECT_TRUE(ex.run("forward", {{"input_ids", HostTensor::from_i64({1, int64_t(prompt.size())}, prompt)}}, ro).empty());
  uint64_t pending = ex.queue_pick("logits", "input_ids");
  int64_t P = static_cast<int64_t>(prompt.size());
  for (; got.size() < want.size(); ++P) {
    ro.start_pos = P;
    ro.device_inputs = {"input_ids"};
    ex.run("forward", {{"input_ids", HostTensor(DType::I64, {1, 1})}}, ro);  // step P, before P-1's ids are read
    uint64_t next = ex.queue_pick("logits", "input_ids");
    got.push_back(ex.picked_ids(pending).at(0));
    pending = next;
  }
  EXPECT_EQ(got, want);

  expect_error([&] { ex.queue_pick("loss", "input_ids"); }, {"no output 'loss'"});
  expect_error([&] { ex.queue_pick("logits", "labels"); }, {"no input 'labels'"});
  PickOptions draw;
  draw.temperature = 1;
  expect_error([&] { ex.queue_pick("logits", "input_ids", draw); }, {"pick: 0 uniforms for 1 rows"});
  expect_error([&] { ex.queue_pick("logits", "input_ids", draw, {1.5}); }, {"a uniform of 1.5, not in [0, 1)"});
  draw.top_p = 0;
  expect_error([&] { ex.queue_pick("logits", "input_ids", draw, {0.5}); }, {"top_p 0"});
  expect_error([&] { ex.picked_ids(pending + 1); }, {"was never issued"});
  for (int i = 0; i < 8; ++i) ex.queue_pick("logits", "input_ids");
  expect_error([&] { ex.picked_ids(pending); }, {"no longer readable"});
  ro.device_inputs = {"ids"};
  expect_error([&] { ex.run("forward", {{"input_ids", HostTensor(DType::I64, {1, 1})}}, ro); },
               {"device input 'ids' is not an input"});
}

// Sampling without penalties is fed on the device as well (generate() queues each step's
// pick with the sequence's next uniform): the host loop's tokens, for temperature only,
// top-k, top-p and both, several seeds, with a stop id.
TEST(Executor, SampledGenerationFedOnTheDeviceGivesTheHostLoopsTokens) {
  TempDir dir;
  Executor ex(load_artifact(save(dir, llama_tiny(1, 64), "m.bmsys")), std::make_shared<CpuBackend>(),
              ExecutorOptions{data_dir("llama-tiny") + "/model.safetensors"});
  const std::vector<int64_t> prompt = {95, 11, 81, 70, 63};
  struct Case {
    double temperature;
    int64_t top_k;
    double top_p;
  };
  for (const Case& c : {Case{1.0, 0, 1.0}, Case{0.8, 40, 1.0}, Case{1.2, 0, 0.9}, Case{0.7, 50, 0.8}})
    for (uint64_t seed : {1, 2, 3}) {
      GenerateOptions o;
      o.max_new_tokens = 24;
      o.seed = seed;
      o.sampling.temperature = c.temperature;
      o.sampling.top_k = c.top_k;
      o.sampling.top_p = c.top_p;
      const std::vector<int64_t> want = host_loop_generate(ex, prompt, o);
      EXPECT_EQ(generate(ex, {prompt}, o).at(0), want)
          << "T=" << c.temperature << " top_k=" << c.top_k << " top_p=" << c.top_p << " seed " << seed;
      o.stop_ids = {want[prompt.size() + 5]};
      const std::vector<int64_t> stopped = host_loop_generate(ex, prompt, o);
      EXPECT_LE(stopped.size(), prompt.size() + 6);
      EXPECT_EQ(generate(ex, {prompt}, o).at(0), stopped) << "with a stop id, seed " << seed;
    }
}

TEST(Executor, DecodeStepsMatchFullForwardAndStateResets) {
  TempDir dir;
  Executor ex(load_artifact(save(dir, llama_tiny(2, 12), "m.bmsys")), std::make_shared<CpuBackend>(),
              ExecutorOptions{data_dir("llama-tiny")});
  std::vector<int64_t> ids = {5, 9, 200, 31, 7, 7, 100, 1, 3, 250};  // [2,5]
  auto full = ex.run("forward", {{"input_ids", HostTensor::from_i64({2, 5}, ids)}}).at("logits").to_f32();
  // Prefill 3 tokens per row, then 2 single-token steps, batch 2.
  ex.reset_state();
  std::vector<float> got(full.size());
  const int64_t V = 256;
  int64_t P = 0;
  for (int64_t n : {3, 1, 1}) {
    std::vector<int64_t> chunk;
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t s = P; s < P + n; ++s) chunk.push_back(ids[b * 5 + s]);
    auto lg = ex.run("forward", {{"input_ids", HostTensor::from_i64({2, n}, chunk)}}, P).at("logits").to_f32();
    for (int64_t b = 0; b < 2; ++b)
      std::copy(lg.begin() + b * n * V, lg.begin() + (b + 1) * n * V, got.begin() + (b * 5 + P) * V);
    P += n;
  }
  for (size_t i = 0; i < full.size(); ++i) ASSERT_NEAR(got[i], full[i], 1e-4 * (1 + std::abs(full[i]))) << i;
  // P + S beyond max_seq is refused.
  expect_error([&] { ex.run("forward", {{"input_ids", HostTensor::from_i64({1, 3}, {1, 2, 3})}}, 10); },
               {"start_pos 10", "exceeds max_seq 12"});
}

TEST(Executor, LossFunctionSharesWeightsWithForward) {
  TempDir dir;
  auto a = llama_tiny(2, 16);
  // loss(input_ids) = the forward graph + shifted cross-entropy against input_ids.
  auto& fwd = a.functions[0];
  ArtifactBuilder::Fn loss{"loss", fwd.inputs, {}, {}, fwd.insts};
  auto l = a.activation("loss", {});
  add_inst(loss, "cross_entropy", {fwd.outputs[0], fwd.inputs[0]}, {l}, {AInt("shift", 1)});
  loss.outputs = {l};
  loss.output_names = {"loss"};
  a.functions.push_back(loss);
  Executor ex(load_artifact(save(dir, a, "m.bmsys")), std::make_shared<CpuBackend>(), ExecutorOptions{data_dir("llama-tiny")});
  auto golden = SafetensorsFile::open(data_dir("llama-tiny") + "/golden.safetensors");
  auto got = ex.run("loss", {{"input_ids", golden->read("input_ids")}}).at("loss");
  EXPECT_EQ(got.shape, Shape{});
  EXPECT_NEAR(got.to_f32()[0], golden->read("loss", DType::F32).to_f32()[0], 1e-4);
}

// --- bmsys-run ---------------------------------------------------------------------

TEST(BmsysRun, InferGenerateInspect) {
  TempDir dir;
  std::string art = save(dir, llama_tiny(2, 32), "llama.bmsys");
  std::string w = data_dir("llama-tiny");
  auto golden = SafetensorsFile::open(w + "/golden.safetensors");
  write_safetensors(dir.file("in.safetensors"), {{"input_ids", golden->read("input_ids")}});

  CliResult c = run_cli(dir, "infer " + art + " --input " + dir.file("in.safetensors") + " --output " +
                           dir.file("out.safetensors") + " --weights " + w);
  ASSERT_EQ(c.rc, 0) << c.err;
  auto out = SafetensorsFile::open(dir.file("out.safetensors"));
  EXPECT_LT(max_rel_err(out->read("logits"), golden->read("logits", DType::F32)), 1e-4);
  EXPECT_TRUE(out->contains("hidden.2"));

  auto prompt = i64s(golden->read("generate.prompt"));
  auto want = i64s(golden->read("generate.output"));
  std::string ps, ws;
  for (size_t i = 0; i < prompt.size(); ++i) ps += (i ? "," : "") + std::to_string(prompt[i]);
  for (size_t i = 0; i < want.size(); ++i) ws += (i ? "," : "") + std::to_string(want[i]);
  c = run_cli(dir, "generate " + art + " --prompt-ids " + ps + " --max-new-tokens " +
                       std::to_string(want.size() - prompt.size()) + " --weights " + w + "/model.safetensors");
  ASSERT_EQ(c.rc, 0) << c.err;
  EXPECT_EQ(c.out, ws + "\n");

  c = run_cli(dir, "generate " + art + " --prompt-ids " + ps + " --max-new-tokens 25 --weights " + w);
  EXPECT_EQ(c.rc, 1);
  EXPECT_NE(c.err.find("bmsys-run: error: "), std::string::npos) << c.err;
  EXPECT_NE(c.err.find("exceeds max_seq 32"), std::string::npos) << c.err;

  c = run_cli(dir, "generate " + art + " --prompt-ids 1,x --max-new-tokens 1 --weights " + w);
  EXPECT_EQ(c.rc, 1);
  EXPECT_NE(c.err.find("'x' is not a non-negative integer"), std::string::npos) << c.err;

  c = run_cli(dir, "inspect " + art);
  ASSERT_EQ(c.rc, 0) << c.err;
  EXPECT_NE(c.out.find("forward(input_ids) -> (logits="), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("max_seq: 32"), std::string::npos);

  c = run_cli(dir, "infer " + art + " --input " + dir.file("in.safetensors") + " --output " +
                       dir.file("o2.safetensors"));  // weights not next to the artifact
  EXPECT_EQ(c.rc, 1);
  EXPECT_NE(c.err.find("model.safetensors"), std::string::npos) << c.err;

  c = run_cli(dir, "--version");
  EXPECT_EQ(c.rc, 0);
  EXPECT_NE(c.out.find("bmsys-run"), std::string::npos);
  c = run_cli(dir, "frobnicate");
  EXPECT_NE(c.rc, 0);
}
