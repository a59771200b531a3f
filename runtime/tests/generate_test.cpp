// Host-side sampling of `bmsys-run generate` (runtime/infer/generate.h): greedy,
// top-k, top-p, temperature, HF repetition penalty, OpenAI frequency/presence
// penalties, seeds.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "runtime/infer/generate.h"
#include "test_util.h"

using namespace bmsys::rt;
using namespace bmsys::rt::test;

namespace {

int64_t pick(const SamplingOptions& o, std::vector<float> logits, std::vector<int64_t> context = {},
             size_t generated = 0, uint64_t seed = 1) {
  Sampler s(o, seed);
  return s.next(logits.data(), static_cast<int64_t>(logits.size()), context, generated);
}

}  // namespace

TEST(Sampling, GreedyIsTheFirstMaximum) {
  SamplingOptions o;
  EXPECT_EQ(pick(o, {0.5f, 2.0f, 2.0f, -1.0f}), 1);
  EXPECT_EQ(pick(o, {3.0f}), 0);
}

TEST(Sampling, TopK1IsGreedyAtAnyTemperature) {
  auto logits = random_floats(300, 9, -5, 5);
  SamplingOptions g;
  int64_t want = pick(g, logits);
  for (double t : {0.5, 1.0, 10.0}) {
    SamplingOptions o;
    o.temperature = t;
    o.top_k = 1;
    Sampler s(o, 42);
    for (int i = 0; i < 50; ++i) ASSERT_EQ(s.next(logits.data(), 300, {}, 0), want);
  }
}

TEST(Sampling, SeedsAreReproducible) {
  auto logits = random_floats(100, 3, -1, 1);
  SamplingOptions o;
  o.temperature = 1.0;
  auto draws = [&](uint64_t seed) {
    Sampler s(o, seed);
    std::vector<int64_t> v;
    for (int i = 0; i < 40; ++i) v.push_back(s.next(logits.data(), 100, {}, 0));
    return v;
  };
  EXPECT_EQ(draws(7), draws(7));
  EXPECT_NE(draws(7), draws(8));
  EXPECT_NE(sequence_seed(7, 0), sequence_seed(7, 1));
  EXPECT_EQ(sequence_seed(7, 3), sequence_seed(7, 3));
}

TEST(Sampling, TemperatureSamplesTheSoftmax) {
  SamplingOptions o;
  o.temperature = 1.0;
  std::vector<float> logits = {std::log(0.7f), std::log(0.2f), std::log(0.1f)};
  Sampler s(o, 5);
  int counts[3] = {0, 0, 0};
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++counts[s.next(logits.data(), 3, {}, 0)];
  EXPECT_NEAR(counts[0] / double(n), 0.7, 0.02);
  EXPECT_NEAR(counts[1] / double(n), 0.2, 0.02);
  EXPECT_NEAR(counts[2] / double(n), 0.1, 0.02);
  // Temperature 0.5 squares the probabilities (renormalized): 0.49/0.54, ...
  o.temperature = 0.5;
  Sampler c(o, 6);
  int cold = 0;
  for (int i = 0; i < n; ++i) cold += c.next(logits.data(), 3, {}, 0) == 0;
  EXPECT_NEAR(cold / double(n), 0.49 / 0.54, 0.02);
}

TEST(Sampling, TopPKeepsTheSmallestPrefixReachingP) {
  std::vector<float> logits = {std::log(0.2f), std::log(0.5f), std::log(0.3f)};
  SamplingOptions o;
  o.temperature = 1.0;
  o.top_p = 0.45;  // token 1 alone (0.5) reaches it
  Sampler a(o, 1);
  for (int i = 0; i < 200; ++i) ASSERT_EQ(a.next(logits.data(), 3, {}, 0), 1);
  o.top_p = 0.6;  // tokens 1 and 2 (0.8); never 0
  Sampler b(o, 2);
  int seen[3] = {0, 0, 0};
  for (int i = 0; i < 2000; ++i) ++seen[b.next(logits.data(), 3, {}, 0)];
  EXPECT_EQ(seen[0], 0);
  EXPECT_NEAR(seen[1] / 2000.0, 0.5 / 0.8, 0.04);
  // top-k 2 then top-p over the renormalized pair.
  o.top_k = 2;
  o.top_p = 0.62;  // 1: 0.625 of the pair
  Sampler k(o, 3);
  for (int i = 0; i < 200; ++i) ASSERT_EQ(k.next(logits.data(), 3, {}, 0), 1);
}

// The definition top-k and top-p implement, written the plain way: every candidate
// sorted by decreasing logit (ties: lower id first), the prefix reaching top_p of the
// candidates' total, a draw scanning that prefix in order.
struct ReferenceNucleus {
  std::vector<int64_t> cand;
  std::vector<double> p;
  double total = 0;

  ReferenceNucleus(const SamplingOptions& o, const std::vector<float>& logits) {
    const int64_t V = static_cast<int64_t>(logits.size());
    std::vector<double> x(logits.begin(), logits.end());
    for (double& v : x) v /= o.temperature;
    cand.resize(x.size());
    std::iota(cand.begin(), cand.end(), 0);
    std::sort(cand.begin(), cand.end(), [&](int64_t a, int64_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
    if (o.top_k > 0 && o.top_k < V) cand.resize(static_cast<size_t>(o.top_k));
    const double mx = x[static_cast<size_t>(cand[0])];
    for (int64_t c : cand) total += p.emplace_back(std::exp(x[static_cast<size_t>(c)] - mx));
    if (o.top_p < 1) {
      double cum = 0;
      size_t keep = 0;
      while (keep < p.size()) {
        cum += p[keep++];
        if (cum >= o.top_p * total) break;
      }
      cand.resize(keep);
      total = cum;
    }
  }
  int64_t draw(std::mt19937_64& rng) const {
    const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53 * total;
    double acc = 0;
    for (size_t i = 0; i < cand.size(); ++i) {
      acc += p[i];
      if (u < acc) return cand[i];
    }
    return cand.back();
  }
};

// Sampler::next builds the order only as far as the nucleus reaches (blocks of 256, then
// 4x more): it must draw exactly the tokens of the full sort, for nuclei inside the first
// block, across blocks and spanning everything, with ties, and with top-k in front.
TEST(Sampling, TopPDrawsWhatSortingEverythingDraws) {
  std::mt19937_64 gen(21);
  int cases = 0;
  for (int64_t V : {3, 255, 256, 257, 1000, 5000, 32000})
    for (double top_p : {0.3, 0.9, 0.99, 0.9999})
      for (double temperature : {0.5, 1.0, 4.0})
        for (int64_t top_k : {int64_t{0}, int64_t{40}, V}) {
          std::vector<float> logits = random_floats(V, static_cast<uint32_t>(gen()), -6, 6);
          for (int64_t i = 0; i < V / 10; ++i)  // ties
            logits[static_cast<size_t>(gen() % V)] = logits[static_cast<size_t>(gen() % V)];
          SamplingOptions o;
          o.temperature = temperature;
          o.top_p = top_p;
          o.top_k = top_k;
          const uint64_t seed = gen();
          Sampler s(o, seed);
          std::mt19937_64 ref(seed);
          const ReferenceNucleus nucleus(o, logits);
          for (int draw = 0; draw < 10; ++draw)
            ASSERT_EQ(s.next(logits.data(), V, {}, 0), nucleus.draw(ref))
                << "V=" << V << " top_p=" << top_p << " T=" << temperature << " top_k=" << top_k << " draw " << draw;
          ++cases;
        }
  EXPECT_EQ(cases, 7 * 4 * 3 * 3);
}

// A NaN logit (a model's overflow) is never drawn and does not stop greedy from finding
// the maximum, wherever it sits.
TEST(Sampling, NanLogitsAreNeverDrawn) {
  const float nan = std::nanf("");
  EXPECT_EQ(pick({}, {nan, 1.0f, 3.0f, 2.0f}), 2);
  SamplingOptions o;
  o.temperature = 1.0;
  for (double top_p : {1.0, 0.9})
    for (int64_t top_k : {0, 2}) {
      o.top_p = top_p;
      o.top_k = top_k;
      Sampler s(o, 4);
      std::vector<float> logits = {nan, 0.5f, nan, 0.2f, nan};
      for (int i = 0; i < 200; ++i) {
        const int64_t t = s.next(logits.data(), 5, {}, 0);
        ASSERT_TRUE(t == 1 || t == 3) << "drew token " << t << " (NaN) with top_p " << top_p << ", top_k " << top_k;
      }
    }
}

TEST(Sampling, RepetitionPenaltyHasHuggingFaceSemantics) {
  SamplingOptions o;
  o.repetition_penalty = 2.0;
  // Seen positive logit divided: 2.0 -> 1.0 < 1.9.
  EXPECT_EQ(pick(o, {2.0f, 1.9f, -1.0f}, {0}), 1);
  EXPECT_EQ(pick(o, {2.0f, 1.9f, -1.0f}, {2}), 0);
  // Seen negative logit multiplied: -0.5 -> -1.0 < -0.6.
  EXPECT_EQ(pick(o, {-0.5f, -0.6f}, {0}), 1);
  // Counted once however often it was seen; the prompt counts too.
  EXPECT_EQ(pick(o, {2.0f, 0.9f}, {0, 0, 0}), 0);
}

TEST(Sampling, FrequencyAndPresencePenaltiesHaveOpenAISemantics) {
  SamplingOptions f;
  f.frequency_penalty = 0.15;  // 1.0 - 2*0.15 = 0.7 < 0.8
  EXPECT_EQ(pick(f, {1.0f, 0.8f}, {0, 0}, 2), 1);
  EXPECT_EQ(pick(f, {1.0f, 0.8f}, {0}, 1), 0);     // 0.85 > 0.8
  EXPECT_EQ(pick(f, {1.0f, 0.8f}, {0, 0}, 0), 0);  // the prompt does not count
  SamplingOptions p;
  p.presence_penalty = 0.25;  // once: 0.75 < 0.8
  EXPECT_EQ(pick(p, {1.0f, 0.8f}, {5, 0}, 1), 1);
  EXPECT_EQ(pick(p, {1.0f, 0.8f}, {0, 5}, 1), 0);
  SamplingOptions neg;
  neg.presence_penalty = -0.5;  // negative: encourages repeats
  EXPECT_EQ(pick(neg, {0.8f, 1.0f}, {0}, 1), 0);
}

TEST(Sampling, OptionsAreChecked) {
  SamplingOptions o;
  o.top_p = 0;
  expect_error([&] { check_sampling_options(o); }, {"--top-p"});
  o = {};
  o.temperature = -1;
  expect_error([&] { check_sampling_options(o); }, {"--temperature"});
  o = {};
  o.repetition_penalty = 0;
  expect_error([&] { check_sampling_options(o); }, {"--repetition-penalty"});
  o = {};
  o.top_k = -2;
  expect_error([&] { check_sampling_options(o); }, {"--top-k"});
}
