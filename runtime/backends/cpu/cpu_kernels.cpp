#include "runtime/backends/cpu/cpu_kernels.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/core/error.h"

namespace bmsys::rt::cpu {

void positions(int64_t* pos, int64_t B, int64_t S, int64_t P) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s) pos[b * S + s] = P + s;
}

void embedding(float* y, const int64_t* ids, int64_t n, const float* table, int64_t V, int64_t H) {
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= V)
      fail("token id {} at position {} is outside the vocabulary [0, {})", ids[i], i, V);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(y + i * H, table + ids[i] * H, static_cast<size_t>(H) * sizeof(float));
}

void linear(float* y, const float* x, const float* w, const float* bias, int64_t M, int64_t K,
            int64_t N, bool w_transposed) {
  if (M == 0 || N == 0) return;
  if (bias) {
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; ++m) std::memcpy(y + m * N, bias, static_cast<size_t>(N) * sizeof(float));
  } else {
    std::memset(y, 0, static_cast<size_t>(M * N) * sizeof(float));
  }
  if (K == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, w_transposed ? CblasNoTrans : CblasTrans,
              static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K), 1.0f, x,
              static_cast<blasint>(K), w, static_cast<blasint>(w_transposed ? N : K),
              bias ? 1.0f : 0.0f, y, static_cast<blasint>(N));
}

void slice(void* y, const void* x, size_t es, int64_t rows, int64_t K, int64_t offset, int64_t N) {
  auto* yb = static_cast<uint8_t*>(y);
  auto* xb = static_cast<const uint8_t*>(x);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    std::memmove(yb + static_cast<size_t>(r * N) * es, xb + static_cast<size_t>(r * K + offset) * es,
                 static_cast<size_t>(N) * es);
}

void layer_norm(float* y, const float* x, const float* gamma, const float* beta, int64_t rows,
                int64_t H, double eps) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * H;
    double mean = 0;
    for (int64_t i = 0; i < H; ++i) mean += xr[i];
    mean /= static_cast<double>(H);
    double var = 0;
    for (int64_t i = 0; i < H; ++i) {
      double d = xr[i] - mean;
      var += d * d;
    }
    var /= static_cast<double>(H);
    double inv = 1.0 / std::sqrt(var + eps);
    float* yr = y + r * H;
    for (int64_t i = 0; i < H; ++i)
      yr[i] = static_cast<float>((xr[i] - mean) * inv * gamma[i] + beta[i]);
  }
}

void rms_norm(float* y, const float* x, const float* gamma, int64_t rows, int64_t H, double eps) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * H;
    double ss = 0;
    for (int64_t i = 0; i < H; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    double inv = 1.0 / std::sqrt(ss / static_cast<double>(H) + eps);
    float* yr = y + r * H;
    for (int64_t i = 0; i < H; ++i) yr[i] = static_cast<float>(xr[i] * inv * gamma[i]);
  }
}

void rope(float* y, const float* x, const int64_t* pos, int64_t T, int64_t N, int64_t D,
          double theta) {
  const int64_t half = D / 2;
  std::vector<double> freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    freq[i] = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(D));
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    double p = static_cast<double>(pos[t]);
    for (int64_t i = 0; i < half; ++i) {
      double ang = p * freq[i];
      double c = std::cos(ang), s = std::sin(ang);
      for (int64_t h = 0; h < N; ++h) {
        const float* xh = x + (t * N + h) * D;
        float* yh = y + (t * N + h) * D;
        double a = xh[i], b = xh[i + half];
        yh[i] = static_cast<float>(a * c - b * s);
        yh[i + half] = static_cast<float>(b * c + a * s);
      }
    }
  }
}

void attention(float* y, const float* q, const float* k, const float* v, const AttentionParams& p) {
  const int64_t B = p.B, S = p.S, Nq = p.Nq, Nkv = p.Nkv, D = p.D;
  const int64_t group = Nq / Nkv;
  const bool cached = p.k_cache != nullptr;
  const int64_t P = cached ? p.P : 0;
  const int64_t kv_row = Nkv * D;  // floats per position in k, v and the caches
  if (cached) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t s = 0; s < S; ++s) {
        size_t dst = static_cast<size_t>((b * p.Smax + P + s) * kv_row);
        size_t src = static_cast<size_t>((b * S + s) * kv_row);
        std::memcpy(p.k_cache + dst, k + src, static_cast<size_t>(kv_row) * sizeof(float));
        std::memcpy(p.v_cache + dst, v + src, static_cast<size_t>(kv_row) * sizeof(float));
      }
  }
  const int64_t total = P + S;  // keys visible to the last query
#pragma omp parallel
  {
    std::vector<double> score(static_cast<size_t>(total));
    std::vector<double> acc(static_cast<size_t>(D));
#pragma omp for collapse(3) schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t s = 0; s < S; ++s)
        for (int64_t h = 0; h < Nq; ++h) {
          const int64_t kvh = h / group;
          const float* kb = cached ? p.k_cache + b * p.Smax * kv_row : k + b * S * kv_row;
          const float* vb = cached ? p.v_cache + b * p.Smax * kv_row : v + b * S * kv_row;
          const float* qr = q + ((b * S + s) * Nq + h) * D;
          const int64_t L = p.causal ? P + s + 1 : total;
          double mx = -INFINITY;
          for (int64_t j = 0; j < L; ++j) {
            const float* kr = kb + j * kv_row + kvh * D;
            double d = 0;
            for (int64_t i = 0; i < D; ++i) d += static_cast<double>(qr[i]) * kr[i];
            score[j] = d * p.scale;
            mx = std::max(mx, score[j]);
          }
          double sum = 0;
          for (int64_t j = 0; j < L; ++j) {
            score[j] = std::exp(score[j] - mx);
            sum += score[j];
          }
          std::fill(acc.begin(), acc.end(), 0.0);
          for (int64_t j = 0; j < L; ++j) {
            const float* vr = vb + j * kv_row + kvh * D;
            const double w = score[j];
            for (int64_t i = 0; i < D; ++i) acc[i] += w * vr[i];
          }
          float* yr = y + ((b * S + s) * Nq + h) * D;
          for (int64_t i = 0; i < D; ++i) yr[i] = static_cast<float>(acc[i] / sum);
        }
  }
}

void gelu(float* y, const float* x, int64_t n, bool tanh_approx) {
  const double k = std::sqrt(2.0 / M_PI);
  if (tanh_approx) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      double v = x[i];
      y[i] = static_cast<float>(0.5 * v * (1.0 + std::tanh(k * (v + 0.044715 * v * v * v))));
    }
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      double v = x[i];
      y[i] = static_cast<float>(0.5 * v * (1.0 + std::erf(v * M_SQRT1_2)));
    }
  }
}

void silu(float* y, const float* x, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    double v = x[i];
    y[i] = static_cast<float>(v / (1.0 + std::exp(-v)));
  }
}

void add(float* y, const float* a, const float* b, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

void mul(float* y, const float* a, const float* b, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i];
}

double cross_entropy(const float* logits, const int64_t* labels, int64_t B, int64_t S, int64_t V,
                     bool shift) {
  const int64_t terms_per_row = shift ? S - 1 : S;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < terms_per_row; ++s) {
      int64_t lab = labels[b * S + s + (shift ? 1 : 0)];
      if (lab < 0 || lab >= V)
        fail("label {} at [{},{}] is outside the vocabulary [0, {})", lab, b,
             s + (shift ? 1 : 0), V);
    }
  double total = 0;
#pragma omp parallel for collapse(2) reduction(+ : total) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < terms_per_row; ++s) {
      const float* row = logits + (b * S + s) * V;
      int64_t lab = labels[b * S + s + (shift ? 1 : 0)];
      double mx = -INFINITY;
      for (int64_t i = 0; i < V; ++i) mx = std::max(mx, static_cast<double>(row[i]));
      double sum = 0;
      for (int64_t i = 0; i < V; ++i) sum += std::exp(row[i] - mx);
      total += mx + std::log(sum) - row[lab];
    }
  return total / static_cast<double>(B * terms_per_row);
}

}  // namespace bmsys::rt::cpu
