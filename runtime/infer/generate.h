// Text generation with the KV cache (docs/inference.md): host-side sampling from the
// last position's logits (greedy, temperature, top-k, top-p, repetition / frequency /
// presence penalties, stop ids, seeded) and batched generation of several prompts, each
// in its own cache row.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "runtime/core/pick.h"

namespace bmsys::rt {

class Executor;

struct SamplingOptions {
  double temperature = 0;          // 0: greedy (argmax, first maximum)
  int64_t top_k = 0;               // keep the k most likely tokens (0: all)
  double top_p = 1;                // keep the smallest set of probability >= p (1: all)
  double repetition_penalty = 1;   // HF: seen logits / R if > 0, * R if < 0 (prompt + output)
  double frequency_penalty = 0;    // OpenAI: logit -= F * count in the output so far
  double presence_penalty = 0;     // OpenAI: logit -= P if it occurs in the output so far
};

// Throws bmsys::rt::Error naming the option when a value is out of range.
void check_sampling_options(const SamplingOptions& o);

// Picks next tokens for one sequence. Penalties first (on the raw logits), then
// greedy argmax (temperature 0), or temperature, top-k, top-p and a draw from this
// sampler's own generator. A NaN logit counts as -inf (never drawn).
class Sampler {
 public:
  Sampler(const SamplingOptions& options, uint64_t seed);
  // `logits`: V values of the last position; `context`: prompt + tokens so far;
  // `generated`: the number of tokens at the end of `context` that were generated.
  int64_t next(const float* logits, int64_t V, const std::vector<int64_t>& context, size_t generated);
  // The uniform of the next sampled token (next() takes one when the temperature is > 0,
  // before it looks at the logits; a decode fed on the device takes it here instead).
  double uniform() { return pick_uniform(rng_()); }

 private:
  SamplingOptions o_;
  std::mt19937_64 rng_;
  // Scratch of V entries, kept between tokens.
  std::vector<double> x_;
  std::vector<char> seen_;
  PickScratch scratch_;
};

// The token choice of `o` without its penalties (those need the host: the sampler).
PickOptions pick_options(const SamplingOptions& o);

// The generator seed of sequence `index` of a run seeded with `seed`.
uint64_t sequence_seed(uint64_t seed, uint64_t index);

struct GenerateOptions {
  int64_t max_new_tokens = 0;
  SamplingOptions sampling;
  std::vector<int64_t> stop_ids;  // a sequence ends after producing one of these
  uint64_t seed = 0;
  std::string function = "forward";  // input "input_ids" [B,S], output "logits" [B,S,V]
};

// Generates for every prompt (prompt + new tokens, in order). Prompts run in batches of
// up to the artifact's max_batch, one KV-cache row each (see docs/inference.md for how
// prompts of different lengths are handled). Sequence i samples from its own generator
// (sequence_seed(seed, i)), so its tokens do not depend on the other prompts. Throws
// when a prompt + max_new_tokens exceeds max_seq (before running anything).
std::vector<std::vector<int64_t>> generate(Executor& executor, const std::vector<std::vector<int64_t>>& prompts,
                                           const GenerateOptions& options);

}  // namespace bmsys::rt
