// Training end to end on the CPU backend: the executor's step T and optimizer state,
// token files, the training loop, checkpoints (layout, atomic replacement, corruption)
// and bit-exact resume, and `bmsys-run train` / `tokenize`.
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "runtime/backends/cpu/cpu_backend.h"
#include "runtime/core/executor.h"
#include "runtime/train/checkpoint.h"
#include "runtime/train/token_data.h"
#include "runtime/train/trainer.h"
#include "train_models.h"

using namespace bmsys::rt;
using namespace bmsys::rt::test;
namespace fs = std::filesystem;

namespace {

std::string save_artifact(const TempDir& dir, const ArtifactBuilder& a, const std::string& name = "m.bmsys") {
  auto bytes = a.finish();
  write_bytes(dir.file(name), std::string(bytes.begin(), bytes.end()));
  return dir.file(name);
}

// A tiny model, its weights and a 37-token data file in `dir`.
struct TrainSetup {
  TempDir dir;
  TinyTrainConfig cfg;
  std::string artifact, data;
  explicit TrainSetup(TinyTrainConfig c = {}) : cfg(c) {
    artifact = save_artifact(dir, tiny_train_model(cfg));
    write_tiny_weights(dir.file("w.safetensors"), cfg);
    std::vector<int64_t> toks;
    for (int i = 0; i < 37; ++i) toks.push_back((i * 7 + i / 5) % cfg.V);
    data = dir.file("data.bin");
    write_token_file(data, toks, TokenDtype::U16);
  }
  std::unique_ptr<Executor> executor() const {
    return std::make_unique<Executor>(load_artifact(artifact), std::make_shared<CpuBackend>());
  }
  TrainOptions options(int64_t steps) const {
    TrainOptions o;
    o.data = data;
    o.batch = 2;
    o.seq = 5;
    o.steps = steps;
    return o;
  }
};

std::vector<double> losses(const std::vector<StepMetrics>& m) {
  std::vector<double> v;
  for (const StepMetrics& s : m) v.push_back(s.loss);
  return v;
}

}  // namespace

TEST(TokenData, BatchesAreConsecutiveWindowsWrappingAtTheEnd) {
  TempDir dir;
  write_token_file(dir.file("t.bin"), {0, 1, 2, 3, 4, 5, 6}, TokenDtype::U32);
  auto f = TokenFile::open(dir.file("t.bin"), TokenDtype::U32);
  EXPECT_EQ(f->size(), 7);
  std::vector<int64_t> out(6);
  int64_t next = f->read_batch(5, 2, 3, out.data());
  EXPECT_EQ(out, (std::vector<int64_t>{5, 6, 0, 1, 2, 3}));
  EXPECT_EQ(next, 4);
  expect_error([&] { f->read_batch(0, 1, 8, out.data()); }, {"t.bin", "fewer than one window"});
  write_bytes(dir.file("odd.bin"), "abc");
  expect_error([&] { TokenFile::open(dir.file("odd.bin"), TokenDtype::U16); }, {"odd.bin", "not a whole number"});
  write_bytes(dir.file("u16.bin"), std::string("\x01\x02\xff\xff", 4));
  auto g = TokenFile::open(dir.file("u16.bin"), TokenDtype::U16);
  EXPECT_EQ(g->token(0), 0x0201);
  EXPECT_EQ(g->token(1), 0xffff);
  expect_error([&] { write_token_file(dir.file("x.bin"), {70000}, TokenDtype::U16); }, {"token 70000", "u16"});
}

TEST(Train, OptimizerStateIsKeptByResetStateAndStepMustBePositive) {
  TrainSetup s;
  auto ex = s.executor();
  auto in = std::map<std::string, HostTensor>{{"input_ids", HostTensor::from_i64({1, 5}, {1, 2, 3, 4, 5})}};
  expect_error([&] { ex->run("train_step", in, 0, 0); }, {"adamw", "training step T must be >= 1"});
  ex->run("train_step", in, 0, 1);
  uint32_t m = ex->buffer_index("lm_head.weight.exp_avg");
  auto before = ex->read_buffer(m).to_f32();
  EXPECT_NE(std::abs(before[0]) + std::abs(before[1]), 0.f);
  ex->reset_state();
  EXPECT_EQ(ex->read_buffer(m).to_f32(), before);
  expect_error([&] { ex->read_buffer(ex->buffer_index("logits")); }, {"cannot read", "'logits'", "activation"});
  expect_error([&] { ex->write_buffer(m, HostTensor::from_f32({2}, {1, 2})); }, {"shape [2]", "expects [13,6]"});
}

TEST(Train, LossDecreasesAndMetricsAreWritten) {
  for (std::string opt : {"adamw", "sgd"}) {
    SCOPED_TRACE(opt);
    TinyTrainConfig c;
    c.optimizer = opt;
    TrainSetup s(c);
    auto ex = s.executor();
    TrainOptions o = s.options(10);
    o.metrics = s.dir.file("m.jsonl");
    auto m = train(*ex, o);
    ASSERT_EQ(m.size(), 10u);
    EXPECT_LT(m.back().loss, m.front().loss - 0.1);
    for (const StepMetrics& x : m) {
      EXPECT_TRUE(std::isfinite(x.loss));
      EXPECT_GT(x.grad_norm, 0);
    }
    // lr by the cosine schedule of the optimizer's attributes (warmup 2, total 10).
    EXPECT_DOUBLE_EQ(m[0].lr, (opt == "adamw" ? 0.05 : 0.5) / 2);
    EXPECT_DOUBLE_EQ(m[9].lr, 1e-3);
    std::string text = read_bytes(o.metrics);
    int lines = 0;
    for (size_t p = 0; (p = text.find('\n', p)) != std::string::npos; ++p) ++lines;
    EXPECT_EQ(lines, 10);
    auto first = nlohmann::json::parse(text.substr(0, text.find('\n')));
    for (const char* k : {"step", "loss", "lr", "grad_norm", "loss_scale", "tokens_per_s"})
      EXPECT_TRUE(first.contains(k)) << k;
    EXPECT_EQ(first["step"], 1);
    EXPECT_EQ(first["loss_scale"], 1.0);
    EXPECT_FLOAT_EQ(first["loss"].get<double>(), m[0].loss);
  }
}

TEST(Train, GradientsMatchFiniteDifferencesOfTheLoss) {
  // A step's grad outputs against central differences of a loss-only function over
  // the same weights (float32, h = 1e-2).
  TinyTrainConfig c;
  auto a = tiny_train_model(c);
  ArtifactBuilder::Fn lossfn{"loss", a.functions[0].inputs, {}, {}, {}};
  lossfn.insts.assign(a.functions[0].insts.begin(), a.functions[0].insts.begin() + 4);
  lossfn.outputs = {a.functions[0].outputs[0]};
  lossfn.output_names = {"loss"};
  a.functions.push_back(lossfn);
  TempDir dir;
  write_tiny_weights(dir.file("w.safetensors"), c);
  auto path = save_artifact(dir, a);
  std::map<std::string, HostTensor> in{{"input_ids", HostTensor::from_i64({2, 5}, {1, 2, 3, 4, 5, 12, 0, 7, 7, 3})}};
  // train_step's grad outputs are computed before adamw updates the weights.
  Executor ex(load_artifact(path), std::make_shared<CpuBackend>());
  auto grad = ex.run("train_step", in, 0, 1).at("grad.model.norm.weight").to_f32();
  Executor ex2(load_artifact(path), std::make_shared<CpuBackend>());
  auto w = ex2.read_buffer(ex2.buffer_index("norm")).to_f32();
  for (int64_t i = 0; i < c.H; ++i) {
    const float h = 1e-2f;
    auto f = [&](float delta) {
      auto p = w;
      p[i] += delta;
      ex2.write_buffer(ex2.buffer_index("norm"), HostTensor::from_f32({c.H}, p));
      return double(ex2.run("loss", in).at("loss").to_f32()[0]);
    };
    double fd = (f(h) - f(-h)) / (2 * h);
    EXPECT_NEAR(grad[i], fd, 2e-3 * (1 + std::abs(fd))) << i;
  }
}

TEST(Train, CheckpointLayout) {
  TinyTrainConfig c;
  c.tied_duplicate = true;
  TrainSetup s(c);
  auto ex = s.executor();
  TrainOptions o = s.options(3);
  o.save_dir = s.dir.file("ckpt");
  o.seed = 1234;
  train(*ex, o);
  for (const char* f : {"model.safetensors", "config.json", "optimizer.safetensors", "trainer_state.json"})
    EXPECT_TRUE(fs::exists(s.dir.file(std::string("ckpt/") + f))) << f;
  auto model = SafetensorsFile::open(s.dir.file("ckpt/model.safetensors"));
  EXPECT_EQ(model->names(), (std::vector<std::string>{"lm_head.weight", "model.embed_tokens.weight", "model.norm.weight"}));
  EXPECT_EQ(model->info("lm_head.weight").dtype, DType::F32);
  EXPECT_EQ(model->metadata().at("format"), "pt");
  EXPECT_EQ(model->read("lm_head.weight").to_f32(), ex->read_buffer(ex->buffer_index("head")).to_f32());
  auto optim = SafetensorsFile::open(s.dir.file("ckpt/optimizer.safetensors"));
  EXPECT_EQ(optim->names().size(), 6u);
  EXPECT_TRUE(optim->contains("model.norm.weight.exp_avg_sq"));
  EXPECT_EQ(read_bytes(s.dir.file("ckpt/config.json")), R"({"model_type": "tiny", "vocab_size": 13})");
  auto st = nlohmann::json::parse(read_bytes(s.dir.file("ckpt/trainer_state.json")));
  EXPECT_EQ(st["step"], 3);
  EXPECT_EQ(st["data_position"], (3 * 10) % 37);
  EXPECT_EQ(st["seed"], 1234);
  EXPECT_EQ(st["token_dtype"], "u16");
  EXPECT_EQ(st["batch"], 2);
  EXPECT_EQ(st["seq"], 5);
  uint64_t size = 0;
  EXPECT_EQ(st["files"]["model.safetensors"]["fnv1a64"], fnv1a64_file(s.dir.file("ckpt/model.safetensors"), &size));
  EXPECT_EQ(st["files"]["model.safetensors"]["bytes"], size);
  // Saving again replaces the directory and leaves nothing else beside it.
  save_checkpoint(s.dir.file("ckpt"), *ex, TrainerState{});
  EXPECT_EQ(nlohmann::json::parse(read_bytes(s.dir.file("ckpt/trainer_state.json")))["step"], 0);
  for (const auto& e : fs::directory_iterator(s.dir.path()))
    EXPECT_EQ(e.path().filename().string().find("ckpt."), std::string::npos) << e.path();
  // Loading writes every buffer of a key (the tied duplicate too).
  ex->write_buffer(ex->buffer_index("head_tied"), HostTensor::from_f32({c.V, c.H}, std::vector<float>(c.V * c.H, 0.f)));
  load_checkpoint(s.dir.file("ckpt"), *ex);
  EXPECT_EQ(ex->read_buffer(ex->buffer_index("head_tied")).to_f32(), model->read("lm_head.weight").to_f32());
}

TEST(Train, ResumeContinuesTheSameTrajectoryBitForBit) {
  TrainSetup s;
  auto straight = s.executor();
  TrainOptions o = s.options(10);
  o.save_dir = s.dir.file("full");
  auto all = losses(train(*straight, o));
  ASSERT_EQ(all.size(), 10u);

  auto first = s.executor();
  TrainOptions a = s.options(5);
  a.save_dir = s.dir.file("half");
  a.metrics = s.dir.file("m.jsonl");
  auto part1 = losses(train(*first, a));
  // A crash after step 7 left metrics lines 6 and 7 behind: resuming drops them.
  write_bytes(a.metrics, read_bytes(a.metrics) + "{\"step\":6}\n{\"step\":7}\n");

  auto second = s.executor();  // fresh weights from disk: the checkpoint must restore everything
  TrainOptions b = s.options(10);
  b.resume_dir = s.dir.file("half");
  b.save_dir = s.dir.file("half");
  b.metrics = a.metrics;
  auto part2 = losses(train(*second, b));
  ASSERT_EQ(part2.size(), 5u);
  part1.insert(part1.end(), part2.begin(), part2.end());
  EXPECT_EQ(part1, all);  // exact equality
  EXPECT_EQ(read_bytes(s.dir.file("half/model.safetensors")), read_bytes(s.dir.file("full/model.safetensors")));
  EXPECT_EQ(read_bytes(s.dir.file("half/optimizer.safetensors")), read_bytes(s.dir.file("full/optimizer.safetensors")));
  std::string metrics = read_bytes(a.metrics);
  int lines = 0;
  for (size_t p = 0; (p = metrics.find('\n', p)) != std::string::npos; ++p) ++lines;
  EXPECT_EQ(lines, 10);
  EXPECT_EQ(metrics.find("{\"step\":6}"), std::string::npos);

  // Already at step 10: nothing to do.
  TrainOptions c = s.options(10);
  c.resume_dir = s.dir.file("half");
  EXPECT_TRUE(train(*s.executor(), c).empty());
  // Other sizes are refused.
  c.batch = 1;
  expect_error([&] { train(*s.executor(), c); }, {"trainer_state.json", "--batch 2 --seq 5"});
}

TEST(Train, SaveEveryKeepsTheLatestCheckpoint) {
  TrainSetup s;
  auto ex = s.executor();
  TrainOptions o = s.options(7);
  o.save_dir = s.dir.file("ck");
  o.save_every = 3;
  train(*ex, o);
  EXPECT_EQ(nlohmann::json::parse(read_bytes(s.dir.file("ck/trainer_state.json")))["step"], 7);
  TrainOptions p = s.options(6);
  p.save_dir = s.dir.file("ck6");
  p.save_every = 3;
  train(*s.executor(), p);  // saved at 3 and 6, not twice at 6
  EXPECT_EQ(nlohmann::json::parse(read_bytes(s.dir.file("ck6/trainer_state.json")))["step"], 6);
}

TEST(Train, CorruptCheckpointsAreRefusedNamingTheFile) {
  TrainSetup s;
  TrainOptions o = s.options(2);
  o.save_dir = s.dir.file("good");
  train(*s.executor(), o);
  auto copy = [&](const std::string& name) {
    fs::remove_all(s.dir.file(name));
    fs::copy(s.dir.file("good"), s.dir.file(name));
    return s.dir.file(name);
  };
  auto load = [&](const std::string& d) { auto ex = s.executor(); load_checkpoint(d, *ex); };

  std::string d = copy("flip");
  std::string bytes = read_bytes(d + "/model.safetensors");
  bytes[bytes.size() - 3] ^= 0x40;
  write_bytes(d + "/model.safetensors", bytes);
  expect_error([&] { load(d); }, {"flip/model.safetensors", "checksum mismatch"});

  d = copy("trunc");
  bytes = read_bytes(d + "/optimizer.safetensors");
  write_bytes(d + "/optimizer.safetensors", bytes.substr(0, bytes.size() / 2));
  expect_error([&] { load(d); }, {"trunc/optimizer.safetensors", "truncated"});

  d = copy("missing");
  fs::remove(d + "/config.json");
  expect_error([&] { load(d); }, {"missing/config.json", "missing"});

  d = copy("nostate");
  fs::remove(d + "/trainer_state.json");
  expect_error([&] { load(d); }, {"nostate/trainer_state.json", "missing"});

  d = copy("badjson");
  write_bytes(d + "/trainer_state.json", "{\"format\": \"bmsys-trainer-state\", \"step\": ");
  expect_error([&] { load(d); }, {"badjson/trainer_state.json", "invalid trainer state"});

  expect_error([&] { load(s.dir.file("nope")); }, {"nope", "no such checkpoint directory"});

  // A valid checkpoint of another model (H = 8): shapes differ from this artifact.
  TinyTrainConfig other;
  other.H = 8;
  TrainSetup s2(other);
  TrainOptions o2 = s2.options(1);
  o2.save_dir = s2.dir.file("other");
  train(*s2.executor(), o2);
  expect_error([&] { load(s2.dir.file("other")); }, {"other/model.safetensors", "has shape [13,8]", "[13,6]"});

  // An SGD checkpoint has other optimizer tensors.
  TinyTrainConfig sg;
  sg.optimizer = "sgd";
  TrainSetup s3(sg);
  TrainOptions o3 = s3.options(1);
  o3.save_dir = s3.dir.file("sgd");
  train(*s3.executor(), o3);
  expect_error([&] { load(s3.dir.file("sgd")); }, {"sgd/optimizer.safetensors", "no tensor", "exp_avg"});
}

TEST(Train, FunctionContractIsChecked) {
  TrainSetup s;
  TrainOptions o = s.options(1);
  o.function = "forward";
  expect_error([&] { train(*s.executor(), o); }, {"no function 'forward'"});
  o = s.options(1);
  o.seq = 6;  // beyond max_seq
  expect_error([&] { train(*s.executor(), o); }, {"sequence length 6", "max_seq=5"});
  TempDir d;
  write_token_file(d.file("short.bin"), {1, 2, 3}, TokenDtype::U16);
  o = s.options(1);
  o.data = d.file("short.bin");
  expect_error([&] { train(*s.executor(), o); }, {"short.bin", "fewer than one window of --seq 5"});
}

TEST(Train, ArtifactRulesForOptimizerKernels) {
  // Only optimizer kernels write weights, and only in place.
  TempDir dir;
  {
    auto a = tiny_train_model();
    auto& f = a.functions[0];
    for (auto& in : f.insts)
      if (in.kernel == "adamw") {
        in.outputs[1] = in.inputs[3];  // exp_avg's output is exp_avg_sq
        break;
      }
    expect_error([&] { load_artifact(save_artifact(dir, a)); }, {"kernel 'adamw'", "must be input 2", "in place"});
  }
  {
    auto a = tiny_train_model();
    auto& f = a.functions[0];
    f.insts[1].outputs[0] = f.insts[1].inputs[1];  // rms_norm writes its gamma
    expect_error([&] { load_artifact(save_artifact(dir, a)); }, {"kernel 'rms_norm'", "writes buffer 'norm' of kind weight"});
  }
  {
    auto a = tiny_train_model();
    a.optimizer_state("dyn", {Bd(), C(3)});
    expect_error([&] { load_artifact(save_artifact(dir, a)); }, {"'dyn'", "optimizer state must have a static shape"});
  }
  {
    // Overlapping operands are refused at launch (here: an output over an input).
    auto a = tiny_train_model();
    for (auto& b : a.buffers)
      if (b.name == "n") b.offset = 0;  // 'e' lives at 0 too
    write_tiny_weights(dir.file("w.safetensors"));
    Executor ex(load_artifact(save_artifact(dir, a)), std::make_shared<CpuBackend>());
    expect_error([&] { ex.run("train_step", {{"input_ids", HostTensor::from_i64({1, 2}, {1, 2})}}, 0, 1); },
                 {"kernel 'rms_norm'", "output 0 overlaps input 0"});
  }
}

// --- bmsys-run train / tokenize --------------------------------------------------------

TEST(BmsysRunTrain, TrainResumeAndTokenize) {
  TrainSetup s;
  write_bytes(s.dir.file("a.txt"), "hello ");
  write_bytes(s.dir.file("b.txt"), std::string("w\0rld\xff", 6));
  CliResult c = run_cli(s.dir, "tokenize " + s.dir.file("a.txt") + " " + s.dir.file("b.txt") + " -o " + s.dir.file("t.bin"));
  ASSERT_EQ(c.rc, 0) << c.err;
  EXPECT_EQ(c.out, "12 tokens\n");
  auto t = TokenFile::open(s.dir.file("t.bin"), TokenDtype::U16);
  ASSERT_EQ(t->size(), 12);
  EXPECT_EQ(t->token(0), 'h');
  EXPECT_EQ(t->token(7), 0);
  EXPECT_EQ(t->token(11), 255);
  c = run_cli(s.dir, "tokenize " + s.dir.file("a.txt") + " -o " + s.dir.file("t32.bin") + " --dtype u32");
  ASSERT_EQ(c.rc, 0) << c.err;
  EXPECT_EQ(read_bytes(s.dir.file("t32.bin")).size(), 24u);

  const std::string common = "train " + s.artifact + " --data " + s.data + " --batch 2 --seq 5 --threads 1";
  c = run_cli(s.dir, common + " --steps 10 --metrics " + s.dir.file("full.jsonl"));
  ASSERT_EQ(c.rc, 0) << c.err;
  // Not a terminal: plain progress lines at the first, every 10% and the last step.
  EXPECT_NE(c.err.find("step 1/10  loss "), std::string::npos) << c.err;
  EXPECT_NE(c.err.find("step 10/10  loss "), std::string::npos) << c.err;
  EXPECT_EQ(c.err.find('\r'), std::string::npos);

  c = run_cli(s.dir, common + " --steps 5 --save " + s.dir.file("ck") + " --metrics " + s.dir.file("resumed.jsonl"));
  ASSERT_EQ(c.rc, 0) << c.err;
  c = run_cli(s.dir, common + " --steps 10 --resume " + s.dir.file("ck") + " --save " + s.dir.file("ck") +
                         " --metrics " + s.dir.file("resumed.jsonl"));
  ASSERT_EQ(c.rc, 0) << c.err;
  auto loss_lines = [&](const std::string& path) {
    std::vector<double> v;
    std::string text = read_bytes(path);
    size_t p = 0, q;
    while ((q = text.find('\n', p)) != std::string::npos) {
      v.push_back(nlohmann::json::parse(text.substr(p, q - p))["loss"].get<double>());
      p = q + 1;
    }
    return v;
  };
  auto full = loss_lines(s.dir.file("full.jsonl"));
  EXPECT_EQ(full.size(), 10u);
  EXPECT_EQ(loss_lines(s.dir.file("resumed.jsonl")), full);

  // infer runs train_step once (T = 1): its grad outputs, before the update.
  write_safetensors(s.dir.file("in.safetensors"), {{"input_ids", HostTensor::from_i64({2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10})},
                                                    {"unrelated", HostTensor::from_f32({1}, {0.f})}});
  c = run_cli(s.dir, "infer " + s.artifact + " --function train_step --input " + s.dir.file("in.safetensors") +
                         " --output " + s.dir.file("grads.safetensors"));
  ASSERT_EQ(c.rc, 0) << c.err;
  auto grads = SafetensorsFile::open(s.dir.file("grads.safetensors"));
  EXPECT_TRUE(grads->contains("grad.lm_head.weight"));
  EXPECT_TRUE(grads->contains("loss"));

  c = run_cli(s.dir, common + " --steps 2 --save-every 1");
  EXPECT_EQ(c.rc, 1);
  EXPECT_NE(c.err.find("--save-every needs --save"), std::string::npos) << c.err;
  c = run_cli(s.dir, common + " --steps 2 --token-dtype u8");
  EXPECT_EQ(c.rc, 2);
  std::string bytes = read_bytes(s.dir.file("ck/model.safetensors"));
  bytes[bytes.size() - 1] ^= 1;
  write_bytes(s.dir.file("ck/model.safetensors"), bytes);
  c = run_cli(s.dir, common + " --steps 12 --resume " + s.dir.file("ck"));
  EXPECT_EQ(c.rc, 1);
  EXPECT_NE(c.err.find("ck/model.safetensors: checksum mismatch"), std::string::npos) << c.err;
}
