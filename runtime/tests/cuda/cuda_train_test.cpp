// Training on the CUDA backend end to end, through the trainer of `bmsys-run train`
// and artifacts compiled by the real pipeline (scripts/gpu/prepare.sh writes
// <model>.train.bmsys, .train-bf16.bmsys, .train-f16.bmsys to $BMSYS_GPU_ARTIFACTS):
//  - fp32 (true f32 GEMMs, no TF32): the 10-step AdamW run of recipe.json "train" on
//    the golden batch — losses within 1e-3 of transformers' train.losses, final weights
//    (read back from a saved checkpoint) within 1e-3 relative of train.final.*;
//  - stopping at step 5 and resuming gives the same 10 losses bit for bit (every
//    training kernel is deterministic);
//  - bf16 mixed precision (f32 master weights): each loss within 2% of fp32's;
//  - optimizer offload (bmsys-offload), f32 and bf16: against the run without it;
//  - fp16 with dynamic loss scaling: a forced overflow (BMSYS_TEST_FORCE_OVERFLOW_STEP)
//    skips the step on the device, halves the scale, and training goes on along the
//    golden trajectory one step late.
// Tests skip without a GPU or without the artifacts.
#include <sys/stat.h>

#include "runtime/core/artifact.h"
#include "runtime/core/executor.h"
#include "runtime/io/safetensors.h"
#include "runtime/tests/cuda/cuda_test_util.h"
#include "runtime/tests/test_util.h"
#include "runtime/train/token_data.h"
#include "runtime/train/trainer.h"

namespace bmsys::rt::cudatest {
namespace {

#define BMSYS_NEED_TRAIN_ARTIFACT(path)                                                  \
  do {                                                                                   \
    if (!exists(path))                                                                   \
      GTEST_SKIP() << "artifact " << path                                                \
                   << " not found (compile it with scripts/gpu/prepare.sh): skipped";    \
  } while (0)

const char* const kModels[] = {"llama-tiny", "gpt2-tiny"};

std::shared_ptr<SafetensorsFile> golden(const std::string& model) {
  return SafetensorsFile::open(data_dir(model) + "/golden.safetensors");
}

std::unique_ptr<Executor> make(const std::string& artifact, const std::string& model, std::shared_ptr<Backend> be) {
  ExecutorOptions eo;
  eo.weights = data_dir(model) + "/model.safetensors";
  return std::make_unique<Executor>(load_artifact(artifact), std::move(be), eo);
}

// The golden batch as a token file: batch 4 x seq 32 reads it at every step.
std::string token_file(const test::TempDir& dir, const std::string& model) {
  HostTensor ids = golden(model)->read("train.input_ids");
  std::vector<int64_t> v(ids.as<int64_t>(), ids.as<int64_t>() + ids.numel());
  const std::string path = dir.file("tokens.bin");
  write_token_file(path, v, TokenDtype::U16);
  return path;
}

TrainOptions options(const std::string& data, int64_t steps) {
  TrainOptions o;
  o.data = data;
  o.batch = 4;
  o.seq = 32;
  o.steps = steps;
  return o;
}

std::vector<double> losses(const std::vector<StepMetrics>& m) {
  std::vector<double> v;
  for (const StepMetrics& s : m) v.push_back(s.loss);
  return v;
}

std::string describe(const std::vector<double>& v) {
  std::string s;
  for (double x : v) s += fmt::format("{}{:.6f}", s.empty() ? "" : " ", x);
  return s;
}

TEST(CudaTrain, GoldenAdamWFp32) {
  BMSYS_SKIP_WITHOUT_GPU();
  for (const std::string m : kModels) {
    const std::string art = artifact_dir() + "/" + m + ".train.bmsys";
    BMSYS_NEED_TRAIN_ARTIFACT(art);
    test::TempDir dir;
    auto g = golden(m);
    std::vector<float> want = g->read("train.losses", DType::F32).to_f32();
    auto be = std::make_shared<CudaBackend>(BackendOptions{});
    auto ex = make(art, m, be);
    TrainOptions o = options(token_file(dir, m), 10);
    o.save_dir = dir.file("ckpt");
    std::vector<double> got = losses(train(*ex, o));
    ASSERT_EQ(got.size(), want.size());
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
    std::printf("[golden] %s train fp32 on cuda: losses %s; max |loss - transformers| %.3g (tolerance 1e-3); graph "
                "replays %lld\n",
                m.c_str(), describe(got).c_str(), worst, static_cast<long long>(be->stats().graph_replays));
    EXPECT_LE(worst, 1e-3) << m << " losses differ from transformers'";
    EXPECT_GE(be->stats().graph_replays, 5) << "the training steps did not replay a CUDA graph";

    // Final weights, from the checkpoint (Hugging Face names), against train.final.*.
    auto ck = SafetensorsFile::open(dir.file("ckpt/model.safetensors"));
    int checked = 0;
    double worst_w = 0;
    for (const std::string& name : g->names()) {
      if (name.rfind("train.final.", 0) != 0) continue;
      const std::string key = name.substr(std::string("train.final.").size());
      ASSERT_TRUE(ck->contains(key)) << m << ": checkpoint lacks " << key;
      const double e = rel_err(ck->read(key, DType::F32), g->read(name, DType::F32));
      worst_w = std::max(worst_w, e);
      EXPECT_LE(e, 1e-3) << m << " final " << key;
      ++checked;
    }
    EXPECT_GT(checked, 5);
    std::printf("[golden] %s train fp32 on cuda: %d final weights, worst relative error %.3g (tolerance 1e-3)\n",
                m.c_str(), checked, worst_w);
  }
}

TEST(CudaTrain, ResumeContinuesBitExactly) {
  BMSYS_SKIP_WITHOUT_GPU();
  const std::string m = "llama-tiny";
  const std::string art = artifact_dir() + "/" + m + ".train.bmsys";
  BMSYS_NEED_TRAIN_ARTIFACT(art);
  test::TempDir dir;
  const std::string data = token_file(dir, m);
  std::vector<double> full, first, second;
  {
    auto ex = make(art, m, std::make_shared<CudaBackend>(BackendOptions{}));
    full = losses(train(*ex, options(data, 10)));
  }
  {
    auto ex = make(art, m, std::make_shared<CudaBackend>(BackendOptions{}));
    TrainOptions o = options(data, 5);
    o.save_dir = dir.file("ckpt5");
    first = losses(train(*ex, o));
  }
  {
    auto ex = make(art, m, std::make_shared<CudaBackend>(BackendOptions{}));
    TrainOptions o = options(data, 10);
    o.resume_dir = dir.file("ckpt5");
    second = losses(train(*ex, o));
  }
  first.insert(first.end(), second.begin(), second.end());
  EXPECT_EQ(first, full) << "resumed: " << describe(first) << "\nuninterrupted: " << describe(full);
  std::printf("[golden] %s cuda resume at step 5: %s\n", m.c_str(), first == full ? "bit-identical" : "DIFFERENT");
}

TEST(CudaTrain, Bf16MixedPrecisionWithin2Percent) {
  BMSYS_SKIP_WITHOUT_GPU();
  for (const std::string m : kModels) {
    const std::string art32 = artifact_dir() + "/" + m + ".train.bmsys";
    const std::string art16 = artifact_dir() + "/" + m + ".train-bf16.bmsys";
    BMSYS_NEED_TRAIN_ARTIFACT(art32);
    BMSYS_NEED_TRAIN_ARTIFACT(art16);
    test::TempDir dir;
    const std::string data = token_file(dir, m);
    std::vector<double> f32, bf16;
    {
      auto ex = make(art32, m, std::make_shared<CudaBackend>(BackendOptions{}));
      f32 = losses(train(*ex, options(data, 10)));
    }
    {
      auto ex = make(art16, m, std::make_shared<CudaBackend>(BackendOptions{}));
      bf16 = losses(train(*ex, options(data, 10)));
    }
    ASSERT_EQ(f32.size(), bf16.size());
    double worst = 0;
    for (size_t i = 0; i < f32.size(); ++i) worst = std::max(worst, std::abs(bf16[i] - f32[i]) / std::abs(f32[i]));
    std::printf("[golden] %s train bf16 mixed precision on cuda: losses %s; max relative difference to fp32 %.3g "
                "(tolerance 2e-2)\n",
                m.c_str(), describe(bf16).c_str(), worst);
    EXPECT_LE(worst, 2e-2) << m << " bf16: " << describe(bf16) << "\nfp32: " << describe(f32);
    EXPECT_LT(bf16.back(), bf16.front()) << "the bf16 loss does not fall";
  }
}

// bmsys-offload on the GPU: the same golden run with the f32 master weights and AdamW
// state in pinned host memory, the step on the CPU (the vectorized CPU AdamW), the
// gradients copied device -> host and the parameters host -> device on the offload
// copy stream. Against the run without offload: losses within 1e-4 (only the
// optimizer's rounding differs: the CPU step computes in double), final weights within
// 1e-4 relative and within 1e-3 of transformers; a resume at step 5 is bit-identical.
// bf16 (device parameters bf16, masters f32): every loss within 2% of f32 offload.
TEST(CudaTrain, OffloadMatchesDevice) {
  BMSYS_SKIP_WITHOUT_GPU();
  const std::string m = "llama-tiny";
  const std::string art = artifact_dir() + "/" + m + ".train.bmsys";
  const std::string off = artifact_dir() + "/" + m + ".train-offload.bmsys";
  const std::string off16 = artifact_dir() + "/" + m + ".train-offload-bf16.bmsys";
  BMSYS_NEED_TRAIN_ARTIFACT(art);
  BMSYS_NEED_TRAIN_ARTIFACT(off);
  BMSYS_NEED_TRAIN_ARTIFACT(off16);
  test::TempDir dir;
  const std::string data = token_file(dir, m);
  std::vector<double> plain, offl, first, second, bf16;
  {
    auto ex = make(art, m, std::make_shared<CudaBackend>(BackendOptions{}));
    TrainOptions o = options(data, 10);
    o.save_dir = dir.file("plain");
    plain = losses(train(*ex, o));
  }
  CudaBackend::Stats st;
  {
    auto be = std::make_shared<CudaBackend>(BackendOptions{});
    auto ex = make(off, m, be);
    TrainOptions o = options(data, 10);
    o.save_dir = dir.file("offload");
    offl = losses(train(*ex, o));
    st = be->stats();
  }
  ASSERT_EQ(offl.size(), plain.size());
  double worst = 0;
  for (size_t i = 0; i < offl.size(); ++i) worst = std::max(worst, std::abs(offl[i] - plain[i]));
  std::printf("[golden] %s offload on cuda: losses %s; max |offload - device| %.3g (tolerance 1e-4); %lld copies "
              "(%.1f KiB), %lld CPU steps\n",
              m.c_str(), describe(offl).c_str(), worst, static_cast<long long>(st.offload_copies),
              st.offload_bytes / 1024.0, static_cast<long long>(st.host_steps));
  EXPECT_LE(worst, 1e-4) << "offload " << describe(offl) << "\ndevice " << describe(plain);
  EXPECT_GT(st.host_steps, 0) << "no CPU optimizer step ran";
  EXPECT_GT(st.offload_copies, 2 * st.host_steps) << "gradients and parameters were not copied";

  // Final weights: the offloaded checkpoint (saved from the f32 masters) against the
  // device run and against transformers.
  auto a = SafetensorsFile::open(dir.file("offload/model.safetensors"));
  auto b = SafetensorsFile::open(dir.file("plain/model.safetensors"));
  auto g = golden(m);
  int checked = 0;
  for (const std::string& key : b->names()) {
    ASSERT_TRUE(a->contains(key)) << "the offloaded checkpoint lacks " << key;
    EXPECT_LE(rel_err(a->read(key, DType::F32), b->read(key, DType::F32)), 1e-4) << key;
    if (g->contains("train.final." + key))
      EXPECT_LE(rel_err(a->read(key, DType::F32), g->read("train.final." + key, DType::F32)), 1e-3) << key;
    ++checked;
  }
  EXPECT_GT(checked, 5);

  // Resume at step 5: bit-identical to the uninterrupted offloaded run.
  {
    auto ex = make(off, m, std::make_shared<CudaBackend>(BackendOptions{}));
    TrainOptions o = options(data, 5);
    o.save_dir = dir.file("ckpt5");
    first = losses(train(*ex, o));
  }
  {
    auto ex = make(off, m, std::make_shared<CudaBackend>(BackendOptions{}));
    TrainOptions o = options(data, 10);
    o.resume_dir = dir.file("ckpt5");
    second = losses(train(*ex, o));
  }
  first.insert(first.end(), second.begin(), second.end());
  EXPECT_EQ(first, offl) << "resumed: " << describe(first) << "\nuninterrupted: " << describe(offl);

  // bf16 device parameters, f32 masters on the host.
  {
    auto ex = make(off16, m, std::make_shared<CudaBackend>(BackendOptions{}));
    bf16 = losses(train(*ex, options(data, 10)));
  }
  ASSERT_EQ(bf16.size(), offl.size());
  double worst16 = 0;
  for (size_t i = 0; i < bf16.size(); ++i) worst16 = std::max(worst16, std::abs(bf16[i] - offl[i]) / std::abs(offl[i]));
  std::printf("[golden] %s offload bf16 on cuda: losses %s; max relative difference to f32 offload %.3g (tolerance "
              "2e-2)\n",
              m.c_str(), describe(bf16).c_str(), worst16);
  EXPECT_LE(worst16, 2e-2);
  EXPECT_LT(bf16.back(), bf16.front()) << "the bf16 offloaded loss does not fall";
}

// The initial loss scale of the f16 runs: 2^10 keeps this model's largest gradient
// (lm_head's, summed over 128 tokens) inside f16's range, so the only overflow is the
// forced one (2^16, the default, may overflow on its own and skip a first step).
constexpr double kF16Scale = 1024.0;

TEST(CudaTrain, Fp16LossScalingRecoversFromOverflow) {
  BMSYS_SKIP_WITHOUT_GPU();
  const std::string m = "llama-tiny";
  const std::string art = artifact_dir() + "/" + m + ".train-f16.bmsys";
  BMSYS_NEED_TRAIN_ARTIFACT(art);
  test::TempDir dir;
  const std::string data = token_file(dir, m);
  std::vector<float> golden_losses = golden(m)->read("train.losses", DType::F32).to_f32();
  std::vector<StepMetrics> clean, forced;
  {
    auto ex = make(art, m, std::make_shared<CudaBackend>(BackendOptions{}));
    ASSERT_TRUE(uses_loss_scaling(*ex, "train_step")) << "the f16 artifact has no dynamic loss scaling";
    TrainOptions o = options(data, 10);
    o.loss_scale_init = kF16Scale;
    clean = train(*ex, o);
  }
  {
    ScopedEnv env("BMSYS_TEST_FORCE_OVERFLOW_STEP", "3");
    auto ex = make(art, m, std::make_shared<CudaBackend>(BackendOptions{}));
    TrainOptions o = options(data, 10);
    o.loss_scale_init = kF16Scale;
    o.save_dir = dir.file("ckpt");
    forced = train(*ex, o);
  }
  ASSERT_EQ(forced.size(), 10u);
  // Without the forced overflow: every applied step within 2% of transformers' fp32.
  std::vector<double> applied;
  for (const StepMetrics& s : clean)
    if (!s.skipped) applied.push_back(s.loss);
  double worst = 0;
  for (size_t i = 0; i < applied.size(); ++i)
    worst = std::max(worst, std::abs(applied[i] - golden_losses[i]) / golden_losses[i]);
  EXPECT_LE(worst, 2e-2) << "fp16 losses " << describe(applied);
  // The forced overflow: step 3 skipped at scale L, step 4 at L/2 with step 3's loss
  // (the weights did not change), then clean steps.
  const StepMetrics& s2 = forced[1];
  const StepMetrics& s3 = forced[2];
  const StepMetrics& s4 = forced[3];
  EXPECT_FALSE(s2.skipped);
  EXPECT_TRUE(s3.skipped) << "the forced overflow was not skipped";
  EXPECT_FALSE(std::isfinite(s3.grad_norm));
  EXPECT_FALSE(s4.skipped);
  EXPECT_EQ(s4.loss_scale, s3.loss_scale / 2) << "the scale did not halve";
  EXPECT_EQ(s4.loss, s3.loss) << "the skipped step changed the weights";
  std::vector<double> after;
  for (const StepMetrics& s : forced)
    if (!s.skipped) after.push_back(s.loss);
  ASSERT_EQ(after.size(), 9u);
  double worst_f = 0;
  for (size_t i = 0; i < after.size(); ++i)
    worst_f = std::max(worst_f, std::abs(after[i] - golden_losses[i]) / golden_losses[i]);
  EXPECT_LE(worst_f, 2e-2) << "after the overflow: " << describe(after);
  EXPECT_LT(forced.back().loss, forced.front().loss);
  std::printf("[golden] %s train fp16 loss scaling on cuda: clean max rel. diff to transformers %.3g; forced overflow "
              "at step 3: skipped, scale %g -> %g, 9 applied steps max rel. diff %.3g (tolerance 2e-2)\n",
              m.c_str(), worst, s3.loss_scale, s4.loss_scale, worst_f);
}

}  // namespace
}  // namespace bmsys::rt::cudatest
