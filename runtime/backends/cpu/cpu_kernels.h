// The CPU reference kernels on raw float32/int64 arrays (docs/kernels.md).
// Reductions accumulate in double; loops are OpenMP-parallel; GEMMs go to
// OpenBLAS cblas_sgemm. Callers (CpuBackend::launch, tests) pass valid sizes.
#pragma once

#include <cstddef>
#include <cstdint>
#include "runtime/backends/cpu/adamw.h"

namespace bmsys::rt::cpu {

// Input checks shared by the kernels and their tensor-parallel forms: they throw
// bmsys::rt::Error naming the first token id outside [0, V) ...
void check_ids(const int64_t* ids, int64_t n, int64_t V);
// ... or the first scored label outside [0, V) (shift: position s is scored against
// label s+1); returns the scored positions per row, S - shift.
int64_t check_labels(const int64_t* labels, int64_t B, int64_t S, int64_t V, bool shift);

void positions(int64_t* pos, int64_t B, int64_t S, int64_t P);
// Throws bmsys::rt::Error naming the first id outside [0, V).
void embedding(float* y, const int64_t* ids, int64_t n, const float* table, int64_t V, int64_t H);
// x [M,K]; w [N,K] (w_transposed false) or [K,N] (true); bias [N] or null; y [M,N].
// y[M,N] = x[M,K] · (q[N,K] · scale[N])ᵀ + bias, q row-wise INT8. With
// int8_activations each row of x is quantized symmetrically (max|x|/127) and
// the products are summed exactly in int32 (docs/kernels.md "Quantization").
// y = the weight w [R, C] rounded to row-wise symmetric INT8 and back; rows
// run along `axis` (0: the rows of w; 1: its columns).
void fake_quant(float* y, const float* w, int64_t R, int64_t C, int64_t axis);

void linear_int8(float* y, const float* x, const int8_t* q, const float* scale, const float* bias,
                 int64_t M, int64_t K, int64_t N, bool int8_activations);

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

// --- Training kernels (docs/kernels.md "Training kernels") ---------------------------
// Every reduction accumulates in double in a fixed order, independent of the thread
// count, so a training run is reproducible bit for bit.

// dtable [V,H] = 0, then dtable[ids[i],:] += dy[i,:]; throws naming an id outside [0, V).
void embedding_grad(float* dtable, const int64_t* ids, int64_t n, const float* dy, int64_t V,
                    int64_t H);
// dy [M,N]; w [N,K] (w_transposed false) or [K,N] (true); dx [M,K] = dy·w or dy·wᵀ.
void linear_grad_input(float* dx, const float* dy, const float* w, int64_t M, int64_t K, int64_t N,
                       bool w_transposed);
// dy [M,N], x [M,K]; dw = dyᵀ·x [N,K] or, transposed, xᵀ·dy [K,N].
void linear_grad_weight(float* dw, const float* dy, const float* x, int64_t M, int64_t K, int64_t N,
                        bool w_transposed);
// db[n] = sum over rows of dy[r,n].
void sum_rows(float* db, const float* dy, int64_t rows, int64_t N);
// dx [rows,K] = 0; dx[r, offset:offset+N] = dy[r,:].
void slice_grad(void* dx, const void* dy, size_t elem_size, int64_t rows, int64_t N, int64_t offset,
                int64_t K);
void layer_norm_grad(float* dx, float* dgamma, float* dbeta, const float* x, const float* gamma,
                     const float* dy, int64_t rows, int64_t H, double eps);
void rms_norm_grad(float* dx, float* dgamma, const float* x, const float* gamma, const float* dy,
                   int64_t rows, int64_t H, double eps);
// The inverse rotation of rope (angle -a) applied to dy.
void rope_grad(float* dx, const float* dy, const int64_t* pos, int64_t T, int64_t N, int64_t D,
               double theta);
// Gradients of attention without a cache (p.k_cache must be null).
void attention_grad(float* dq, float* dk, float* dv, const float* q, const float* k, const float* v,
                    const float* dy, const AttentionParams& p);
void gelu_grad(float* dx, const float* x, const float* dy, int64_t n, bool tanh_approx);
void silu_grad(float* dx, const float* x, const float* dy, int64_t n);
// (softmax(logits) - onehot(label)) / count at scored positions, 0 elsewhere; times
// `scale` (the loss scale L of a loss_scaling launch, else 1).
void cross_entropy_grad(float* dlogits, const float* logits, const int64_t* labels, int64_t B,
                        int64_t S, int64_t V, bool shift, double scale = 1.0);
// Sum of squares of n elements, in double (fixed-size blocks, summed in order).
double sum_squares(const float* x, int64_t n);

// AdamWParams and adamw(): runtime/backends/cpu/adamw.h (vectorized, multithreaded).

struct SgdParams {
  double lr = 0;  // lr_T
  double momentum = 0, weight_decay = 0, clip = 1;
  int64_t step = 1;
};
void sgd(float* param, const float* grad, float* buf, int64_t n, const SgdParams& p);

// The clipping coefficient: max_norm > 0 ? min(1, max_norm / (norm + 1e-6)) : 1.
double clip_coefficient(double max_norm, double norm);

}  // namespace bmsys::rt::cpu
