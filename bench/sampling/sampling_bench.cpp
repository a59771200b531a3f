// bmsys-bench-sampling: host time of one Sampler::next (runtime/infer/generate.h) per
// sampling setting, on logits shaped like a language model's (Google Benchmark).
//
// Why: `bmsys-run generate` samples on the host from the last position's logits, so
// with any sampling option the decode loop pays this per token on top of the device
// step (2.6 ms for the INT8 6.7B on an H200, docs/inference.md). Greedy decoding is fed
// on the device and does not run it.
//
// Logits: V draws of N(0, 2.5) with 20 tokens raised by 6-12, so that top-p 0.9 keeps a
// few hundred tokens, as for a model's usual next-token distribution.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "runtime/infer/generate.h"

using namespace bmsys::rt;

namespace {

std::vector<float> model_like_logits(int64_t V, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> noise(0.f, 2.5f);
  std::uniform_real_distribution<float> lift(6.f, 12.f);
  std::uniform_int_distribution<int64_t> id(0, V - 1);
  std::vector<float> x(static_cast<size_t>(V));
  for (float& v : x) v = noise(rng);
  for (int i = 0; i < 20; ++i) x[static_cast<size_t>(id(rng))] += lift(rng);
  return x;
}

// A prompt + output of 512 tokens, the last 256 generated (for the penalties).
std::vector<int64_t> context_of(int64_t V) {
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<int64_t> id(0, V - 1);
  std::vector<int64_t> c(512);
  for (int64_t& t : c) t = id(rng);
  return c;
}

void run(benchmark::State& state, const SamplingOptions& o) {
  const int64_t V = state.range(0);
  const std::vector<float> logits = model_like_logits(V, 1);
  const std::vector<int64_t> context = context_of(V);
  Sampler s(o, 7);
  for (auto _ : state) benchmark::DoNotOptimize(s.next(logits.data(), V, context, 256));
}

SamplingOptions with(double temperature, int64_t top_k, double top_p, double repetition = 1,
                     double frequency = 0) {
  SamplingOptions o;
  o.temperature = temperature;
  o.top_k = top_k;
  o.top_p = top_p;
  o.repetition_penalty = repetition;
  o.frequency_penalty = frequency;
  return o;
}

// Vocabularies: GPT-2 (50257), Llama 1/2 (32000), Llama 3 (128256).
#define VOCABS ->Arg(32000)->Arg(50257)->Arg(128256)->Unit(benchmark::kMicrosecond)
BENCHMARK_CAPTURE(run, greedy, with(0, 0, 1)) VOCABS;
BENCHMARK_CAPTURE(run, temperature_0_8, with(0.8, 0, 1)) VOCABS;
BENCHMARK_CAPTURE(run, top_k_50, with(0.8, 50, 1)) VOCABS;
BENCHMARK_CAPTURE(run, top_p_0_9, with(0.8, 0, 0.9)) VOCABS;
BENCHMARK_CAPTURE(run, top_k_50_top_p_0_9, with(0.8, 50, 0.9)) VOCABS;
BENCHMARK_CAPTURE(run, top_p_0_9_penalties, with(0.8, 0, 0.9, 1.1, 0.2)) VOCABS;
BENCHMARK_CAPTURE(run, top_p_0_99_temperature_1_5, with(1.5, 0, 0.99)) VOCABS;

}  // namespace

BENCHMARK_MAIN();
