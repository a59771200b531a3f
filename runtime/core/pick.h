// Choosing the next token from one row of logits (docs/inference.md, "Sampling"): the
// part of sampling that needs nothing but the logits, shared by the host sampler
// (runtime/infer/generate.h, which applies the penalties first) and the backends'
// queue_pick (decoding fed on the device: CUDA's kernel follows the same definition).
#pragma once

#include <cstdint>
#include <vector>

namespace bmsys::rt {

struct PickOptions {
  double temperature = 0;  // 0: greedy (argmax, first maximum)
  int64_t top_k = 0;       // keep the k largest (0: all)
  double top_p = 1;        // keep the smallest prefix of probability >= p (1: all)
  bool greedy() const { return temperature <= 0; }
};

// Scratch of V entries, kept between calls (a 128K vocabulary would otherwise be three
// fresh megabytes a token).
struct PickScratch {
  std::vector<double> p;
  std::vector<int32_t> cand;
};

// The uniform in [0, 1) a draw uses, from 64 random bits (53 of them).
inline double pick_uniform(uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }

// The token picked from x (V values, NaN already replaced by -inf), which it divides by
// the temperature. Greedy: the first maximum. Otherwise the candidates (all, or the
// top_k largest) in decreasing order (ties: lower id first), of those the smallest prefix
// whose probability reaches top_p (always one), then the first token of that prefix (in
// that order; in id order when nothing is cut) whose cumulative probability exceeds
// `uniform` times the prefix's total. If every candidate is -inf (or one is +inf): the
// first maximum.
int64_t pick_token(std::vector<double>& x, const PickOptions& o, double uniform, PickScratch& scratch);

}  // namespace bmsys::rt
