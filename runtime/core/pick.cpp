#include "runtime/core/pick.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "runtime/core/error.h"

namespace bmsys::rt {

int64_t pick_token(std::vector<double>& x, const PickOptions& o, double uniform, PickScratch& scratch) {
  const size_t n = x.size();
  if (n < 1 || n > static_cast<size_t>(INT32_MAX)) fail("pick: a vocabulary of {} tokens", n);
  auto argmax = [&] {
    size_t best = 0;
    for (size_t i = 1; i < n; ++i)
      if (x[i] > x[best]) best = i;  // first maximum
    return static_cast<int64_t>(best);
  };
  if (o.greedy()) return argmax();

  for (double& v : x) v /= o.temperature;
  // Candidates by decreasing logit (ties: lower id first): a strict order, so any
  // selection below gives the same prefix as sorting everything.
  std::vector<int32_t>& cand = scratch.cand;
  cand.resize(n);
  std::iota(cand.begin(), cand.end(), 0);
  auto better = [&](int32_t a, int32_t b) {
    const double xa = x[static_cast<size_t>(a)], xb = x[static_cast<size_t>(b)];
    return xa > xb || (xa == xb && a < b);
  };
  const bool top_k = o.top_k > 0 && o.top_k < static_cast<int64_t>(n);
  if (top_k) {
    std::partial_sort(cand.begin(), cand.begin() + o.top_k, cand.end(), better);
    cand.resize(static_cast<size_t>(o.top_k));
  }
  double mx = -INFINITY;
  for (int32_t c : cand) mx = std::max(mx, x[static_cast<size_t>(c)]);
  if (!std::isfinite(mx)) return argmax();  // nothing to sample from
  auto weight = [&](int32_t c) { return std::exp(x[static_cast<size_t>(c)] - mx); };
  std::vector<double>& p = scratch.p;
  p.clear();
  double total = 0;
  if (o.top_p < 1) {
    // The smallest prefix of the order whose probability reaches top_p (at least one).
    // A nucleus is usually a few hundred tokens: the order is built a block at a time
    // (the next best 256, then 4x more, ...: nth_element, then a sort of the block)
    // until the prefix's mass reaches top_p of the total, instead of sorting V tokens.
    // (With top-k the k are sorted already and form a single block.)
    double all = 0;
    for (int32_t c : cand) all += weight(c);
    const double want = o.top_p * all;
    size_t done = 0, keep = 0, block = top_k ? cand.size() : std::min<size_t>(cand.size(), 256);
    while (keep == 0) {
      if (!top_k) {
        if (block < cand.size()) std::nth_element(cand.begin() + done, cand.begin() + block, cand.end(), better);
        std::sort(cand.begin() + done, cand.begin() + block, better);
      }
      for (size_t i = done; i < block && keep == 0; ++i) {
        p.push_back(weight(cand[i]));
        total += p.back();
        if (total >= want) keep = i + 1;
      }
      if (keep == 0 && block == cand.size()) keep = cand.size();  // rounding: all of them
      done = block;
      block = std::min(cand.size(), block * 4);
    }
    cand.resize(keep);
  } else {
    for (int32_t c : cand) total += p.emplace_back(weight(c));
  }
  const double u = uniform * total;
  double acc = 0;
  for (size_t i = 0; i < cand.size(); ++i) {
    acc += p[i];
    if (u < acc) return cand[i];
  }
  return cand.back();
}

}  // namespace bmsys::rt
