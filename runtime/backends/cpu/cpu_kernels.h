// The CPU reference kernels on raw float32/int64 arrays (docs/kernels.md).
// Reductions accumulate in double; loops are OpenMP-parallel; GEMMs go to
// OpenBLAS cblas_sgemm. Callers (CpuBackend::launch, tests) pass valid sizes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace bmsys::rt::cpu {

void positions(int64_t* pos, int64_t B, int64_t S, int64_t P);
// Throws bmsys::rt::Error naming the first id outside [0, V).
void embedding(float* y, const int64_t* ids, int64_t n, const float* table, int64_t V, int64_t H);
// x [M,K]; w [N,K] (w_transposed false) or [K,N] (true); bias [N] or null; y [M,N].
void linear(float* y, const float* x, const float* w, const float* bias, int64_t M, int64_t K,
            int64_t N, bool w_transposed);
// Element-size generic: y[r, :] = x[r, offset:offset+N] for rows of K elements.
void slice(void* y, const void* x, size_t elem_size, int64_t rows, int64_t K, int64_t offset,
           int64_t N);
void layer_norm(float* y, const float* x, const float* gamma, const float* beta, int64_t rows,
                int64_t H, double eps);
void rms_norm(float* y, const float* x, const float* gamma, int64_t rows, int64_t H, double eps);
// x, y [T, N*D] with T = B*S tokens; pos [T].
void rope(float* y, const float* x, const int64_t* pos, int64_t T, int64_t N, int64_t D,
          double theta);

struct AttentionParams {
  int64_t B = 1, S = 1, Nq = 1, Nkv = 1, D = 1;
  double scale = 1.0;
  bool causal = true;
  int64_t P = 0;              // start_pos (used with a cache)
  float* k_cache = nullptr;   // [Bmax, Smax, Nkv, D] or null
  float* v_cache = nullptr;
  int64_t Bmax = 0, Smax = 0;
};
// q [B,S,Nq*D], k, v [B,S,Nkv*D], y [B,S,Nq*D].
void attention(float* y, const float* q, const float* k, const float* v, const AttentionParams& p);

void gelu(float* y, const float* x, int64_t n, bool tanh_approx);
void silu(float* y, const float* x, int64_t n);
void add(float* y, const float* a, const float* b, int64_t n);
void mul(float* y, const float* a, const float* b, int64_t n);
// Mean of logsumexp(logits) - logits[label]; throws naming a label outside [0, V).
double cross_entropy(const float* logits, const int64_t* labels, int64_t B, int64_t S, int64_t V,
                     bool shift);

}  // namespace bmsys::rt::cpu
