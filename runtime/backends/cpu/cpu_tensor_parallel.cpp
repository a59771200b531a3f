#include "runtime/backends/cpu/cpu_tensor_parallel.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/backends/cpu/cpu_kernels.h"
#include "runtime/collectives/communicator.h"
#include "runtime/core/error.h"

namespace bmsys::rt::cpu {

namespace {

// The rows the loss scores: (b, s) for s < S - shift, in order, with their label.
struct ScoredRows {
  int64_t terms_per_row = 0, count = 0;
  ScoredRows(const int64_t* labels, int64_t B, int64_t S, int64_t vocab, bool shift)
      : terms_per_row(check_labels(labels, B, S, vocab, shift)), count(B * terms_per_row) {}
};

// Row maxima over the whole vocabulary (all-reduce max) and, in `sums`, the sums
// of exp(logit - max) over it (all-reduce sum); with `targets`, also the labels'
// logits (held by one rank, zero on the others), summed in the same all-reduce.
void softmax_stats(const float* logits, const int64_t* labels, int64_t B, int64_t S, int64_t V, bool shift,
                   int rank, Communicator& tp, const ScoredRows& rows, std::vector<double>& mx,
                   std::vector<double>& sums, bool targets) {
  const int64_t n = rows.count, T = rows.terms_per_row, start = static_cast<int64_t>(rank) * V;
  mx.assign(static_cast<size_t>(n), -INFINITY);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits + ((i / T) * S + i % T) * V;
    double m = -INFINITY;
    for (int64_t v = 0; v < V; ++v) m = std::max(m, static_cast<double>(row[v]));
    mx[i] = m;
  }
  tp.all_reduce(mx.data(), DType::F64, n, ReduceOp::Max);
  sums.assign(static_cast<size_t>(targets ? 2 * n : n), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const int64_t b = i / T, s = i % T;
    const float* row = logits + (b * S + s) * V;
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(row[v] - mx[i]);
    sums[i] = sum;
    if (targets) {
      int64_t lab = labels[b * S + s + (shift ? 1 : 0)] - start;
      sums[n + i] = lab >= 0 && lab < V ? static_cast<double>(row[lab]) : 0.0;
    }
  }
  tp.all_reduce(sums.data(), DType::F64, static_cast<int64_t>(sums.size()), ReduceOp::Sum);
}

}  // namespace

void embedding_vocab_parallel(float* y, const int64_t* ids, int64_t n, const float* table, int64_t V,
                              int64_t H, int rank, int R) {
  check_ids(ids, n, V * R);
  const int64_t start = static_cast<int64_t>(rank) * V;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    int64_t local = ids[i] - start;
    if (local >= 0 && local < V)
      std::memcpy(y + i * H, table + local * H, static_cast<size_t>(H) * sizeof(float));
    else
      std::memset(y + i * H, 0, static_cast<size_t>(H) * sizeof(float));
  }
}

void embedding_grad_vocab_parallel(float* dtable, const int64_t* ids, int64_t n, const float* dy, int64_t V,
                                   int64_t H, int rank, int R) {
  check_ids(ids, n, V * R);
  // The positions whose token is in this rank's rows, in order, with local ids:
  // then exactly the single-rank kernel (same summation order per row).
  const int64_t start = static_cast<int64_t>(rank) * V;
  std::vector<int64_t> local_ids;
  std::vector<float> local_dy;
  for (int64_t i = 0; i < n; ++i) {
    int64_t local = ids[i] - start;
    if (local < 0 || local >= V) continue;
    local_ids.push_back(local);
    local_dy.insert(local_dy.end(), dy + i * H, dy + (i + 1) * H);
  }
  embedding_grad(dtable, local_ids.data(), static_cast<int64_t>(local_ids.size()), local_dy.data(), V, H);
}

double cross_entropy_vocab_parallel(const float* logits, const int64_t* labels, int64_t B, int64_t S, int64_t V,
                                    bool shift, int rank, Communicator& tp) {
  ScoredRows rows(labels, B, S, V * tp.world_size(), shift);
  std::vector<double> mx, sums;
  softmax_stats(logits, labels, B, S, V, shift, rank, tp, rows, mx, sums, /*targets=*/true);
  const int64_t n = rows.count;
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += mx[i] + std::log(sums[i]) - sums[n + i];
  return total / static_cast<double>(n);
}

void cross_entropy_grad_vocab_parallel(float* dlogits, const float* logits, const int64_t* labels, int64_t B,
                                       int64_t S, int64_t V, bool shift, double scale, int rank, Communicator& tp) {
  ScoredRows rows(labels, B, S, V * tp.world_size(), shift);
  std::vector<double> mx, sums;
  softmax_stats(logits, labels, B, S, V, shift, rank, tp, rows, mx, sums, /*targets=*/false);
  const int64_t T = rows.terms_per_row, start = static_cast<int64_t>(rank) * V;
  const double count = static_cast<double>(rows.count);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s) {
      const float* row = logits + (b * S + s) * V;
      float* out = dlogits + (b * S + s) * V;
      if (s >= T) {
        std::memset(out, 0, static_cast<size_t>(V) * sizeof(float));
        continue;
      }
      const int64_t i = b * T + s;
      int64_t lab = labels[b * S + s + (shift ? 1 : 0)] - start;
      for (int64_t v = 0; v < V; ++v) {
        double pr = std::exp(row[v] - mx[i]) / sums[i];
        out[v] = static_cast<float>((pr - (v == lab ? 1.0 : 0.0)) / count * scale);
      }
    }
}

}  // namespace bmsys::rt::cpu
