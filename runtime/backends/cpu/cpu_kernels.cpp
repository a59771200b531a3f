#include "runtime/backends/cpu/cpu_kernels.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/core/error.h"

namespace bmsys::rt::cpu {

void check_ids(const int64_t* ids, int64_t n, int64_t V) {
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= V)
      fail("token id {} at position {} is outside the vocabulary [0, {})", ids[i], i, V);
}

int64_t check_labels(const int64_t* labels, int64_t B, int64_t S, int64_t V, bool shift) {
  const int64_t terms_per_row = shift ? S - 1 : S;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < terms_per_row; ++s) {
      int64_t lab = labels[b * S + s + (shift ? 1 : 0)];
      if (lab < 0 || lab >= V)
        fail("label {} at [{},{}] is outside the vocabulary [0, {})", lab, b, s + (shift ? 1 : 0), V);
    }
  return terms_per_row;
}

namespace {

// rope's rotation of each pair (x_i, x_{i+half}) by the angle pos·theta^(-2i/D), times
// `sign`: 1 for rope, -1 for its gradient (the transpose of [[c, −s], [s, c]]).
// Negating sin is exact, so both compute exactly what they would written apart.
void rotate(float* y, const float* x, const int64_t* pos, int64_t T, int64_t N, int64_t D, double theta,
            double sign) {
  const int64_t half = D / 2;
  std::vector<double> freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    freq[i] = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(D));
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    double p = static_cast<double>(pos[t]);
    for (int64_t i = 0; i < half; ++i) {
      double ang = p * freq[i];
      double c = std::cos(ang), s = sign * std::sin(ang);
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

}  // namespace

void positions(int64_t* pos, int64_t B, int64_t S, int64_t P) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s) pos[b * S + s] = P + s;
}

void embedding(float* y, const int64_t* ids, int64_t n, const float* table, int64_t V, int64_t H) {
  check_ids(ids, n, V);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(y + i * H, table + ids[i] * H, static_cast<size_t>(H) * sizeof(float));
}

void fake_quant(float* y, const float* w, int64_t R, int64_t C, int64_t axis) {
  // Quantized "rows": n in [0, rows) with elements at w[n * step + k * stride].
  int64_t rows = axis == 0 ? R : C, len = axis == 0 ? C : R;
  int64_t step = axis == 0 ? C : 1, stride = axis == 0 ? 1 : C;
  for (int64_t n = 0; n < rows; ++n) {
    float amax = 0.f;
    for (int64_t k = 0; k < len; ++k) amax = std::max(amax, std::fabs(w[n * step + k * stride]));
    // The same float arithmetic as bmsys-quantize, so the export matches.
    float scale = amax > 0.f ? amax / 127.0f : 1.0f;
    for (int64_t k = 0; k < len; ++k) {
      int64_t i = n * step + k * stride;
      y[i] = std::clamp(std::nearbyint(w[i] / scale), -127.f, 127.f) * scale;
    }
  }
}

void linear_int8(float* y, const float* x, const int8_t* q, const float* scale, const float* bias,
                 int64_t M, int64_t K, int64_t N, bool int8_activations) {
#pragma omp parallel for schedule(static) if (M * N * K > (1 << 16))
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x + m * K;
    float* yr = y + m * N;
    if (int8_activations) {
      float amax = 0.f;
      for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(xr[k]));
      float sx = amax > 0.f ? amax / 127.f : 1.f;
      std::vector<int8_t> xq(K);
      for (int64_t k = 0; k < K; ++k)
        xq[k] = static_cast<int8_t>(std::clamp(std::nearbyint(xr[k] / sx), -127.f, 127.f));
      for (int64_t n = 0; n < N; ++n) {
        const int8_t* qr = q + n * K;
        int32_t acc = 0;
        for (int64_t k = 0; k < K; ++k) acc += int32_t(xq[k]) * int32_t(qr[k]);
        yr[n] = float(acc) * sx * scale[n] + (bias ? bias[n] : 0.f);
      }
    } else {
      for (int64_t n = 0; n < N; ++n) {
        const int8_t* qr = q + n * K;
        double acc = 0;
        for (int64_t k = 0; k < K; ++k) acc += double(xr[k]) * qr[k];
        yr[n] = float(acc * scale[n]) + (bias ? bias[n] : 0.f);
      }
    }
  }
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
  rotate(y, x, pos, T, N, D, theta, 1.0);
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
  const int64_t terms_per_row = check_labels(labels, B, S, V, shift);
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

// --- Training kernels ------------------------------------------------------------------

namespace bmsys::rt::cpu {

namespace {

constexpr int64_t kColumnBlock = 64;  // columns per task of the column reductions
constexpr int64_t kSumBlock = 8192;   // elements per partial sum of sum_squares

}  // namespace

void embedding_grad(float* dtable, const int64_t* ids, int64_t n, const float* dy, int64_t V,
                    int64_t H) {
  check_ids(ids, n, V);
  // Positions grouped by id (a stable counting sort), so each row of dtable is
  // summed by one thread in position order.
  std::vector<int64_t> start(static_cast<size_t>(V) + 1, 0), order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ++start[ids[i] + 1];
  for (int64_t v = 0; v < V; ++v) start[v + 1] += start[v];
  {
    std::vector<int64_t> next(start.begin(), start.end() - 1);
    for (int64_t i = 0; i < n; ++i) order[next[ids[i]]++] = i;
  }
#pragma omp parallel
  {
    std::vector<double> acc(static_cast<size_t>(H));
#pragma omp for schedule(dynamic, 16)
    for (int64_t v = 0; v < V; ++v) {
      float* row = dtable + v * H;
      if (start[v] == start[v + 1]) {
        std::memset(row, 0, static_cast<size_t>(H) * sizeof(float));
        continue;
      }
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = start[v]; j < start[v + 1]; ++j) {
        const float* d = dy + order[j] * H;
        for (int64_t h = 0; h < H; ++h) acc[h] += d[h];
      }
      for (int64_t h = 0; h < H; ++h) row[h] = static_cast<float>(acc[h]);
    }
  }
}

void linear_grad_input(float* dx, const float* dy, const float* w, int64_t M, int64_t K, int64_t N,
                       bool w_transposed) {
  if (M == 0 || K == 0) return;
  if (N == 0) {
    std::memset(dx, 0, static_cast<size_t>(M * K) * sizeof(float));
    return;
  }
  // w [N,K]: dx = dy·w; w [K,N]: dx = dy·wᵀ.
  cblas_sgemm(CblasRowMajor, CblasNoTrans, w_transposed ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(M), static_cast<blasint>(K), static_cast<blasint>(N), 1.0f, dy,
              static_cast<blasint>(N), w, static_cast<blasint>(w_transposed ? N : K), 0.0f, dx,
              static_cast<blasint>(K));
}

void linear_grad_weight(float* dw, const float* dy, const float* x, int64_t M, int64_t K, int64_t N,
                        bool w_transposed) {
  if (N == 0 || K == 0) return;
  if (M == 0) {
    std::memset(dw, 0, static_cast<size_t>(N * K) * sizeof(float));
    return;
  }
  // The sum runs over every token (M = B*S rows): computed in double (dgemm).
  std::vector<double> dyd(static_cast<size_t>(M * N)), xd(static_cast<size_t>(M * K)),
      out(static_cast<size_t>(N * K));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < M * N; ++i) dyd[i] = dy[i];
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < M * K; ++i) xd[i] = x[i];
  if (!w_transposed)  // dw [N,K] = dyᵀ·x
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<blasint>(N),
                static_cast<blasint>(K), static_cast<blasint>(M), 1.0, dyd.data(),
                static_cast<blasint>(N), xd.data(), static_cast<blasint>(K), 0.0, out.data(),
                static_cast<blasint>(K));
  else  // dw [K,N] = xᵀ·dy
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<blasint>(K),
                static_cast<blasint>(N), static_cast<blasint>(M), 1.0, xd.data(),
                static_cast<blasint>(K), dyd.data(), static_cast<blasint>(N), 0.0, out.data(),
                static_cast<blasint>(N));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N * K; ++i) dw[i] = static_cast<float>(out[i]);
}

void sum_rows(float* db, const float* dy, int64_t rows, int64_t N) {
  const int64_t blocks = (N + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t c0 = blk * kColumnBlock, c1 = std::min(N, c0 + kColumnBlock);
    double acc[kColumnBlock] = {};
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = c0; c < c1; ++c) acc[c - c0] += dy[r * N + c];
    for (int64_t c = c0; c < c1; ++c) db[c] = static_cast<float>(acc[c - c0]);
  }
}

void slice_grad(void* dx, const void* dy, size_t es, int64_t rows, int64_t N, int64_t offset,
                int64_t K) {
  auto* xb = static_cast<uint8_t*>(dx);
  auto* yb = static_cast<const uint8_t*>(dy);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* row = xb + static_cast<size_t>(r * K) * es;
    std::memset(row, 0, static_cast<size_t>(K) * es);
    if (N) std::memcpy(row + static_cast<size_t>(offset) * es, yb + static_cast<size_t>(r * N) * es,
                       static_cast<size_t>(N) * es);
  }
}

void layer_norm_grad(float* dx, float* dgamma, float* dbeta, const float* x, const float* gamma,
                     const float* dy, int64_t rows, int64_t H, double eps) {
  std::vector<double> mean(static_cast<size_t>(rows)), rstd(static_cast<size_t>(rows));
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * H;
    const float* dr = dy + r * H;
    double mu = 0;
    for (int64_t i = 0; i < H; ++i) mu += xr[i];
    mu /= static_cast<double>(H);
    double var = 0;
    for (int64_t i = 0; i < H; ++i) var += (xr[i] - mu) * (xr[i] - mu);
    var /= static_cast<double>(H);
    double rs = 1.0 / std::sqrt(var + eps);
    mean[r] = mu;
    rstd[r] = rs;
    // dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·γ.
    double sg = 0, sgx = 0;
    for (int64_t i = 0; i < H; ++i) {
      double g = static_cast<double>(dr[i]) * gamma[i];
      sg += g;
      sgx += g * (xr[i] - mu) * rs;
    }
    sg /= static_cast<double>(H);
    sgx /= static_cast<double>(H);
    for (int64_t i = 0; i < H; ++i) {
      double g = static_cast<double>(dr[i]) * gamma[i];
      dx[r * H + i] = static_cast<float>(rs * (g - sg - (xr[i] - mu) * rs * sgx));
    }
  }
  const int64_t blocks = (H + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t c0 = blk * kColumnBlock, c1 = std::min(H, c0 + kColumnBlock);
    double ag[kColumnBlock] = {}, ab[kColumnBlock] = {};
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = c0; c < c1; ++c) {
        double d = dy[r * H + c];
        ag[c - c0] += d * (x[r * H + c] - mean[r]) * rstd[r];
        ab[c - c0] += d;
      }
    for (int64_t c = c0; c < c1; ++c) {
      dgamma[c] = static_cast<float>(ag[c - c0]);
      dbeta[c] = static_cast<float>(ab[c - c0]);
    }
  }
}

void rms_norm_grad(float* dx, float* dgamma, const float* x, const float* gamma, const float* dy,
                   int64_t rows, int64_t H, double eps) {
  std::vector<double> inv(static_cast<size_t>(rows));
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * H;
    const float* dr = dy + r * H;
    double ss = 0, sgx = 0;
    for (int64_t i = 0; i < H; ++i) {
      ss += static_cast<double>(xr[i]) * xr[i];
      sgx += static_cast<double>(dr[i]) * gamma[i] * xr[i];
    }
    double rs = 1.0 / std::sqrt(ss / static_cast<double>(H) + eps);
    inv[r] = rs;
    // dx_j = r·γ_j·dy_j − r³·x_j·Σ_i(dy_i·γ_i·x_i)/H
    double k = rs * rs * rs * sgx / static_cast<double>(H);
    for (int64_t i = 0; i < H; ++i)
      dx[r * H + i] = static_cast<float>(rs * gamma[i] * static_cast<double>(dr[i]) - k * xr[i]);
  }
  const int64_t blocks = (H + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t c0 = blk * kColumnBlock, c1 = std::min(H, c0 + kColumnBlock);
    double ag[kColumnBlock] = {};
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = c0; c < c1; ++c)
        ag[c - c0] += static_cast<double>(dy[r * H + c]) * x[r * H + c] * inv[r];
    for (int64_t c = c0; c < c1; ++c) dgamma[c] = static_cast<float>(ag[c - c0]);
  }
}

void rope_grad(float* dx, const float* dy, const int64_t* pos, int64_t T, int64_t N, int64_t D,
               double theta) {
  rotate(dx, dy, pos, T, N, D, theta, -1.0);
}

void attention_grad(float* dq, float* dk, float* dv, const float* q, const float* k, const float* v,
                    const float* dy, const AttentionParams& p) {
  const int64_t B = p.B, S = p.S, Nq = p.Nq, Nkv = p.Nkv, D = p.D;
  const int64_t group = Nq / Nkv;
  const int64_t kv_row = Nkv * D, q_row = Nq * D;
  const double scale = p.scale;
  // One task per (batch row, kv head): it owns dk/dv of that head and every dq of
  // the query heads sharing it, so all sums run in a fixed order.
#pragma omp parallel
  {
    std::vector<double> prob(static_cast<size_t>(S)), dprob(static_cast<size_t>(S));
    std::vector<double> dk_acc(static_cast<size_t>(S * D)), dv_acc(static_cast<size_t>(S * D));
    std::vector<double> dq_acc(static_cast<size_t>(D));
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t kvh = 0; kvh < Nkv; ++kvh) {
        std::fill(dk_acc.begin(), dk_acc.end(), 0.0);
        std::fill(dv_acc.begin(), dv_acc.end(), 0.0);
        const float* kb = k + b * S * kv_row + kvh * D;
        const float* vb = v + b * S * kv_row + kvh * D;
        for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h)
          for (int64_t s = 0; s < S; ++s) {
            const float* qr = q + (b * S + s) * q_row + h * D;
            const float* gr = dy + (b * S + s) * q_row + h * D;
            const int64_t L = p.causal ? s + 1 : S;
            double mx = -INFINITY;
            for (int64_t j = 0; j < L; ++j) {
              double d = 0;
              for (int64_t i = 0; i < D; ++i) d += static_cast<double>(qr[i]) * kb[j * kv_row + i];
              prob[j] = d * scale;
              mx = std::max(mx, prob[j]);
            }
            double sum = 0;
            for (int64_t j = 0; j < L; ++j) sum += (prob[j] = std::exp(prob[j] - mx));
            double pdp = 0;
            for (int64_t j = 0; j < L; ++j) {
              prob[j] /= sum;
              double d = 0;
              for (int64_t i = 0; i < D; ++i) d += static_cast<double>(gr[i]) * vb[j * kv_row + i];
              dprob[j] = d;
              pdp += prob[j] * d;
            }
            std::fill(dq_acc.begin(), dq_acc.end(), 0.0);
            for (int64_t j = 0; j < L; ++j) {
              const double ds = prob[j] * (dprob[j] - pdp) * scale;
              const float* kr = kb + j * kv_row;
              double* dkr = &dk_acc[j * D];
              double* dvr = &dv_acc[j * D];
              for (int64_t i = 0; i < D; ++i) {
                dq_acc[i] += ds * kr[i];
                dkr[i] += ds * qr[i];
                dvr[i] += prob[j] * gr[i];
              }
            }
            float* dqr = dq + (b * S + s) * q_row + h * D;
            for (int64_t i = 0; i < D; ++i) dqr[i] = static_cast<float>(dq_acc[i]);
          }
        for (int64_t j = 0; j < S; ++j)
          for (int64_t i = 0; i < D; ++i) {
            dk[(b * S + j) * kv_row + kvh * D + i] = static_cast<float>(dk_acc[j * D + i]);
            dv[(b * S + j) * kv_row + kvh * D + i] = static_cast<float>(dv_acc[j * D + i]);
          }
      }
  }
}

void gelu_grad(float* dx, const float* x, const float* dy, int64_t n, bool tanh_approx) {
  const double k = std::sqrt(2.0 / M_PI);
  const double inv_sqrt_2pi = 1.0 / std::sqrt(2.0 * M_PI);
  if (tanh_approx) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      double v = x[i];
      double t = std::tanh(k * (v + 0.044715 * v * v * v));
      double d = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * v * v);
      dx[i] = static_cast<float>(dy[i] * d);
    }
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      double v = x[i];
      double d = 0.5 * (1.0 + std::erf(v * M_SQRT1_2)) + v * std::exp(-0.5 * v * v) * inv_sqrt_2pi;
      dx[i] = static_cast<float>(dy[i] * d);
    }
  }
}

void silu_grad(float* dx, const float* x, const float* dy, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    double v = x[i];
    double sg = 1.0 / (1.0 + std::exp(-v));
    dx[i] = static_cast<float>(dy[i] * sg * (1.0 + v * (1.0 - sg)));
  }
}

void cross_entropy_grad(float* dlogits, const float* logits, const int64_t* labels, int64_t B,
                        int64_t S, int64_t V, bool shift, double scale) {
  const int64_t terms_per_row = check_labels(labels, B, S, V, shift);
  const double count = static_cast<double>(B * terms_per_row);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s) {
      const float* row = logits + (b * S + s) * V;
      float* out = dlogits + (b * S + s) * V;
      if (s >= terms_per_row) {
        std::memset(out, 0, static_cast<size_t>(V) * sizeof(float));
        continue;
      }
      int64_t lab = labels[b * S + s + (shift ? 1 : 0)];
      double mx = -INFINITY;
      for (int64_t i = 0; i < V; ++i) mx = std::max(mx, static_cast<double>(row[i]));
      double sum = 0;
      for (int64_t i = 0; i < V; ++i) sum += std::exp(row[i] - mx);
      for (int64_t i = 0; i < V; ++i) {
        double pr = std::exp(row[i] - mx) / sum;
        out[i] = static_cast<float>((pr - (i == lab ? 1.0 : 0.0)) / count * scale);
      }
    }
}

double sum_squares(const float* x, int64_t n) {
  const int64_t blocks = (n + kSumBlock - 1) / kSumBlock;
  std::vector<double> part(static_cast<size_t>(blocks));
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    double acc = 0;
    for (int64_t i = blk * kSumBlock, e = std::min(n, (blk + 1) * kSumBlock); i < e; ++i)
      acc += static_cast<double>(x[i]) * x[i];
    part[blk] = acc;
  }
  double total = 0;
  for (double v : part) total += v;
  return total;
}

double clip_coefficient(double max_norm, double norm) {
  return max_norm > 0 ? std::min(1.0, max_norm / (norm + 1e-6)) : 1.0;
}

void sgd(float* param, const float* grad, float* buf, int64_t n, const SgdParams& p) {
  const bool fresh = p.step == 1 || p.momentum == 0;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    double g = p.clip * grad[i] + p.weight_decay * param[i];
    double b = fresh ? g : p.momentum * buf[i] + g;
    buf[i] = static_cast<float>(b);
    param[i] = static_cast<float>(param[i] - p.lr * b);
  }
}

}  // namespace bmsys::rt::cpu
