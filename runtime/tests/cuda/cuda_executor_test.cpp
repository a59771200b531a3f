// The golden models end to end on the CUDA backend: logits and hidden states against
// what transformers computed (fp32 within 1e-4 relative, bf16/fp16 within 2e-2),
// greedy generation equal to transformers' in fp32, decode steps replayed from CUDA
// graphs. Artifacts are compiled on a machine with the compiler
// (scripts/gpu/prepare.sh) and found in $BMSYS_GPU_ARTIFACTS; tests skip without a GPU
// or without the artifacts.
#include <sys/stat.h>

#include "runtime/backends/cuda/compute_dtype.h"
#include "runtime/core/artifact.h"
#include "runtime/core/executor.h"
#include "runtime/infer/generate.h"
#include "runtime/io/safetensors.h"
#include "runtime/tests/cuda/cuda_test_util.h"
#include "runtime/tests/host_sampling.h"

namespace bmsys::rt::cudatest {
namespace {

#define BMSYS_NEED_ARTIFACT(path)                                                        \
  do {                                                                                   \
    if (!exists(path))                                                                   \
      GTEST_SKIP() << "artifact " << path                                                \
                   << " not found (compile it with scripts/gpu/prepare.sh): skipped";    \
  } while (0)

struct Model {
  const char* name;
};
const Model kModels[] = {{"llama-tiny"}, {"gpt2-tiny"}};

std::unique_ptr<Executor> make(const std::string& model, DType dtype, std::shared_ptr<Backend> be) {
  auto art = load_artifact(artifact_dir() + "/" + model + ".bmsys");
  if (dtype != DType::F32) art = with_compute_dtype(art, dtype);
  ExecutorOptions eo;
  eo.weights = data_dir(model) + "/model.safetensors";
  return std::make_unique<Executor>(art, be, eo);
}

std::shared_ptr<SafetensorsFile> golden(const std::string& model) {
  return SafetensorsFile::open(data_dir(model) + "/golden.safetensors");
}

TEST(CudaGolden, Forward) {
  BMSYS_SKIP_WITHOUT_GPU();
  for (const Model& m : kModels) {
    BMSYS_NEED_ARTIFACT(artifact_dir() + "/" + m.name + ".bmsys");
    auto g = golden(m.name);
    HostTensor ids = g->read("input_ids");
    HostTensor want = g->read("logits", DType::F32);
    std::map<std::string, HostTensor> cpu_out;
    {
      auto ex = make(m.name, DType::F32, std::make_shared<CpuBackend>());
      cpu_out = ex->run("forward", {{"input_ids", ids}});
    }
    for (DType t : {DType::F32, DType::BF16, DType::F16}) {
      auto be = std::make_shared<CudaBackend>(BackendOptions{});
      auto ex = make(m.name, t, be);
      auto out = ex->run("forward", {{"input_ids", ids}});
      double tol = t == DType::F32 ? 1e-4 : 2e-2;
      double e = rel_err(out.at("logits"), want);
      EXPECT_LE(e, tol) << m.name << " " << dtype_name(t) << " logits";
      std::printf("[golden] %s %s logits relative error %.3g (tolerance %.0e)\n", m.name,
                  dtype_name(t), e, tol);
      for (int i = 0;; ++i) {
        std::string key = "hidden." + std::to_string(i);
        if (!out.count(key) || !g->contains(key)) break;
        double eh = rel_err(out.at(key), g->read(key, DType::F32));
        EXPECT_LE(eh, tol) << m.name << " " << dtype_name(t) << " " << key;
      }
      if (t == DType::F32) {
        double ec = rel_err(out.at("logits"), cpu_out.at("logits"));
        EXPECT_LE(ec, 1e-5) << m.name << " cuda vs cpu";
        std::printf("[golden] %s f32 cuda vs cpu logits relative error %.3g\n", m.name, ec);
      }
    }
  }
}

std::vector<int64_t> greedy(Executor& ex, std::vector<int64_t> ids, int64_t n) {
  int64_t P = 0;
  std::vector<int64_t> chunk = ids;
  for (int64_t step = 0; step < n; ++step) {
    auto out = ex.run("forward", {{"input_ids", HostTensor::from_i64({1, int64_t(chunk.size())}, chunk)}}, P);
    const HostTensor& l = out.at("logits");
    std::vector<float> v = l.to_f32();
    int64_t S = l.shape[1], V = l.shape[2];
    const float* row = v.data() + (S - 1) * V;
    int64_t best = 0;
    for (int64_t i = 1; i < V; ++i)
      if (row[i] > row[best]) best = i;
    P += static_cast<int64_t>(chunk.size());
    ids.push_back(best);
    chunk = {best};
  }
  return ids;
}

TEST(CudaGolden, GreedyGeneration) {
  BMSYS_SKIP_WITHOUT_GPU();
  for (const Model& m : kModels) {
    BMSYS_NEED_ARTIFACT(artifact_dir() + "/" + m.name + ".bmsys");
    auto g = golden(m.name);
    HostTensor prompt = g->read("generate.prompt");
    HostTensor want = g->read("generate.output");
    std::vector<int64_t> p(prompt.as<int64_t>(), prompt.as<int64_t>() + prompt.numel());
    std::vector<int64_t> w(want.as<int64_t>(), want.as<int64_t>() + want.numel());
    const int64_t n = static_cast<int64_t>(w.size() - p.size());
    for (DType t : {DType::F32, DType::BF16}) {
      auto be = std::make_shared<CudaBackend>(BackendOptions{});
      auto ex = make(m.name, t, be);
      std::vector<int64_t> got = greedy(*ex, p, n);
      int same = 0;
      for (size_t i = p.size(); i < w.size(); ++i) same += got[i] == w[i];
      std::printf("[golden] %s %s greedy: %d/%lld new tokens equal to transformers; graph replays %lld\n",
                  m.name, dtype_name(t), same, static_cast<long long>(n),
                  static_cast<long long>(be->stats().graph_replays));
      if (t == DType::F32) {
        EXPECT_EQ(got, w) << m.name << " greedy tokens differ from transformers";
        EXPECT_GE(be->stats().graph_replays, n - 3) << "decode steps did not replay a CUDA graph";
      }
      // generate() (bmsys-run generate) decodes greedily with the next ids chosen on the
      // device, each step queued before the previous one's ids are read: the same tokens,
      // the steps replayed from a graph; a stop id (the third new token) ends the
      // sequence at its first occurrence.
      const auto replays = be->stats().graph_replays;
      GenerateOptions go;
      go.max_new_tokens = n;
      std::vector<int64_t> fed = generate(*ex, {p}, go).at(0);
      EXPECT_EQ(fed, got) << m.name << " " << dtype_name(t) << ": fed on the device differs from the host loop";
      EXPECT_GE(be->stats().graph_replays - replays, n - 3) << "fed decode steps did not replay a graph";
      go.stop_ids = {got[p.size() + 2]};
      size_t end = p.size();
      while (end < got.size() && got[end++] != go.stop_ids[0]) {
      }
      std::vector<int64_t> stopped = generate(*ex, {p}, go).at(0);
      EXPECT_EQ(stopped, std::vector<int64_t>(got.begin(), got.begin() + end)) << m.name << " with a stop id";
    }
  }
}

// Sampled generation without penalties is fed on the device too (pick.cu): the tokens of
// the host loop on the same backend, which samples each token from the logits it reads.
TEST(CudaGolden, SampledGenerationFedOnTheDevice) {
  BMSYS_SKIP_WITHOUT_GPU();
  for (const Model& m : kModels) {
    BMSYS_NEED_ARTIFACT(artifact_dir() + "/" + m.name + ".bmsys");
    HostTensor prompt = golden(m.name)->read("generate.prompt");
    const std::vector<int64_t> p(prompt.as<int64_t>(), prompt.as<int64_t>() + prompt.numel());
    for (DType t : {DType::F32, DType::BF16}) {
      auto be = std::make_shared<CudaBackend>(BackendOptions{});
      auto ex = make(m.name, t, be);
      for (const SamplingOptions& so : {[] { SamplingOptions o; o.temperature = 1.0; return o; }(),
                                        [] { SamplingOptions o; o.temperature = 0.8; o.top_k = 40; return o; }(),
                                        [] { SamplingOptions o; o.temperature = 1.1; o.top_p = 0.9; return o; }()})
        for (uint64_t seed : {5, 6}) {
          GenerateOptions go;
          go.max_new_tokens = 20;
          go.seed = seed;
          go.sampling = so;
          const std::vector<int64_t> want = test::host_loop_generate(*ex, p, go);
          EXPECT_EQ(generate(*ex, {p}, go).at(0), want)
              << m.name << " " << dtype_name(t) << " T=" << so.temperature << " top_k=" << so.top_k
              << " top_p=" << so.top_p << " seed " << seed << ": fed on the device differs from the host loop";
        }
    }
  }
}

// The same decode run with graphs, PDL and fusion off gives the same tokens.
TEST(CudaGolden, SwitchesDoNotChangeResults) {
  BMSYS_SKIP_WITHOUT_GPU();
  const std::string m = "llama-tiny";
  BMSYS_NEED_ARTIFACT(artifact_dir() + "/" + m + ".bmsys");
  auto g = golden(m);
  HostTensor prompt = g->read("generate.prompt");
  std::vector<int64_t> p(prompt.as<int64_t>(), prompt.as<int64_t>() + prompt.numel());
  std::vector<int64_t> base;
  {
    auto be = std::make_shared<CudaBackend>(BackendOptions{});
    auto ex = make(m, DType::F32, be);
    base = greedy(*ex, p, 16);
  }
  for (const char* var : {"BMSYS_CUDA_GRAPHS", "BMSYS_CUDA_PDL", "BMSYS_CUDA_FUSE", "BMSYS_CUDA_GEMV",
                          "BMSYS_CUDA_FORK"}) {
    ScopedEnv env(var, "0");
    auto be = std::make_shared<CudaBackend>(BackendOptions{});
    auto ex = make(m, DType::F32, be);
    EXPECT_EQ(greedy(*ex, p, 16), base) << var << "=0";
  }
  {
    ScopedEnv env("BMSYS_CUDA_SYNC", "1");
    auto be = std::make_shared<CudaBackend>(BackendOptions{});
    auto ex = make(m, DType::F32, be);
    EXPECT_EQ(greedy(*ex, p, 4), std::vector<int64_t>(base.begin(), base.begin() + p.size() + 4));
  }
}

}  // namespace
}  // namespace bmsys::rt::cudatest
