// The training kernels of the CUDA backend except attention's gradient
// (attention_grad.cu): embedding/norm/rope/activation/cross-entropy gradients, column
// sums, slice gradients, the global norm, AdamW and SGD, fake quantization, and a SIMT
// GEMM fallback. Semantics: docs/kernels.md; reference: backends/cpu/cpu_kernels.cpp.
// Every reduction runs in a fixed order (no floating-point atomics), so a training run
// on the GPU is reproducible bit for bit, and a resumed run continues exactly.
#include <cub/cub.cuh>

#include "runtime/backends/cuda/device_util.cuh"
#include "runtime/backends/cuda/train_kernels.h"
#include "runtime/backends/cuda/train_ops.h"

namespace bmsys::rt::cuda::train {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ int64_t dev_step(const Launch& L) {
  return L.scalars ? L.scalars[kScalarStep] : 1;
}
__device__ __forceinline__ double dev_loss_scale(const Launch& L) {
  return L.scalars ? __longlong_as_double(static_cast<long long>(L.scalars[kScalarLossScale])) : 1.0;
}

// One element of a float tensor of any compute dtype, as float.
__device__ __forceinline__ float load_any(const void* p, int t, int64_t i) {
  switch (t) {
    case (int)DType::F16: return __half2float(static_cast<const __half*>(p)[i]);
    case (int)DType::BF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

size_t align_up(size_t v, size_t a = 256) { return (v + a - 1) / a * a; }

// --- embedding_grad -------------------------------------------------------------------
// Keys for the sort: the id (less `start`), or V for an id outside this rank's rows
// [start, start+V) (sorted last and ignored; reported when outside [0, vocab) too);
// values: the positions.
__global__ void emb_keys_kernel(Launch L, const int64_t* ids, int64_t n, int64_t V, int* keys,
                                int* vals, int64_t start, int64_t vocab) {
  pdl_trigger();
  pdl_wait();
  for (int64_t i = gtid(); i < n; i += gstride()) {
    const int64_t id = ids[i], local = id - start;
    if (id < 0 || id >= vocab) report_error(L, kErrTokenId, id, i, vocab);
    if (id < 0 || id >= vocab || local < 0 || local >= V) {
      keys[i] = static_cast<int>(V);
    } else {
      keys[i] = static_cast<int>(local);
    }
    vals[i] = static_cast<int>(i);
  }
}

// start[v] = the first sorted index whose key is >= v, for v in [0, V].
__global__ void emb_starts_kernel(const int* sk, int64_t n, int64_t V, int* start) {
  pdl_trigger();
  pdl_wait();
  for (int64_t k = gtid(); k <= n; k += gstride()) {
    const int64_t a = k == 0 ? 0 : static_cast<int64_t>(sk[k - 1]) + 1;
    const int64_t b = k == n ? V : static_cast<int64_t>(sk[k]);
    for (int64_t v = a; v <= b; ++v) start[v] = static_cast<int>(k);
  }
}

// dtable[v, h] = sum of dy[pos, h] over the positions of id v, in position order.
template <class T>
__global__ void emb_accum_kernel(T* dtable, const T* dy, const int* order, const int* start,
                                 int64_t V, int64_t H) {
  pdl_trigger();
  pdl_wait();
  const int64_t h = blockIdx.y * (int64_t)blockDim.x + threadIdx.x;
  if (h >= H) return;
  for (int64_t v = blockIdx.x; v < V; v += gridDim.x) {
    float acc = 0.f;
    for (int j = start[v]; j < start[v + 1]; ++j) acc += to_f(dy[static_cast<int64_t>(order[j]) * H + h]);
    dtable[v * H + h] = from_f<T>(acc);
  }
}

int key_bits(int64_t V) {
  int bits = 1;
  while ((int64_t{1} << bits) <= V) ++bits;
  return bits;
}

size_t cub_sort_bytes(int64_t n, int64_t V) {
  size_t bytes = 0;
  check_cuda(cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const int*>(nullptr),
                                             static_cast<int*>(nullptr),
                                             static_cast<const int*>(nullptr),
                                             static_cast<int*>(nullptr), static_cast<int>(n), 0,
                                             key_bits(V)),
             "cub::DeviceRadixSort::SortPairs", "embedding_grad: sizing the sort");
  return bytes;
}

// --- column sums ----------------------------------------------------------------------
constexpr int64_t kChunkRows = 256;

int64_t chunk_rows(int64_t rows) {
  return std::max<int64_t>(kChunkRows, (rows + 65534) / 65535);
}

// Mode 0: g += dy; 1 (layer norm): g += dy·(x − mean)·rstd, b += dy; 2 (RMS norm):
// g += dy·x·rstd. Block (32, 8): 32 columns, rows of one chunk strided by 8.
template <class T, int kMode>
__global__ void col_partial_kernel(const T* dy, const T* x, const float* mean, const float* rstd,
                                   int64_t rows, int64_t H, int64_t per_chunk, float* pg, float* pb) {
  pdl_trigger();
  pdl_wait();
  __shared__ float sg[8][33], sb[8][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = blockIdx.x * 32 + tx;
  const int64_t chunk = blockIdx.y;
  const int64_t r0 = chunk * per_chunk, r1 = min(rows, r0 + per_chunk);
  float ag = 0.f, ab = 0.f;
  if (c < H) {
    for (int64_t r = r0 + ty; r < r1; r += 8) {
      const float d = to_f(dy[r * H + c]);
      if (kMode == 0) {
        ag += d;
      } else if (kMode == 1) {
        ag += d * (to_f(x[r * H + c]) - mean[r]) * rstd[r];
        ab += d;
      } else {
        ag += d * to_f(x[r * H + c]) * rstd[r];
      }
    }
  }
  sg[ty][tx] = ag;
  sb[ty][tx] = ab;
  __syncthreads();
  if (ty == 0 && c < H) {
    float s = 0.f, t = 0.f;
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      s += sg[k][tx];
      t += sb[k][tx];
    }
    pg[chunk * H + c] = s;
    if (kMode == 1) pb[chunk * H + c] = t;
  }
}

template <class T>
__global__ void col_final_kernel(T* out_g, T* out_b, const float* pg, const float* pb,
                                 int64_t chunks, int64_t H) {
  pdl_trigger();
  pdl_wait();
  for (int64_t c = gtid(); c < H; c += gstride()) {
    double s = 0, t = 0;
    for (int64_t k = 0; k < chunks; ++k) {
      s += pg[k * H + c];
      if (out_b) t += pb[k * H + c];
    }
    out_g[c] = from_f<T>(static_cast<float>(s));
    if (out_b) out_b[c] = from_f<T>(static_cast<float>(t));
  }
}

template <class T, int kMode>
void column_sums(const Launch& L, T* out_g, T* out_b, const T* dy, const T* x, const float* mean,
                 const float* rstd, int64_t rows, int64_t H, float* pg, float* pb) {
  const int64_t per = chunk_rows(rows);
  const int64_t chunks = (rows + per - 1) / per;
  dim3 grid(static_cast<unsigned>((H + 31) / 32), static_cast<unsigned>(chunks));
  launch_kernel(L, "column sums", grid, dim3(32, 8), 0, col_partial_kernel<T, kMode>, dy, x, mean,
                rstd, rows, H, per, pg, pb);
  launch_kernel(L, "column sums", grid_for(H, kThreads), kThreads, 0, col_final_kernel<T>, out_g,
                out_b, static_cast<const float*>(pg), static_cast<const float*>(pb), chunks, H);
}

// --- slice_grad -----------------------------------------------------------------------
template <class E>
__global__ void slice_grad_kernel(E* dx, const E* dy, int64_t rows, int64_t N, int64_t off,
                                  int64_t K) {
  pdl_trigger();
  pdl_wait();
  const int64_t n = rows * K;
  for (int64_t i = gtid(); i < n; i += gstride()) {
    const int64_t r = i / K, c = i - r * K;
    dx[i] = c >= off && c < off + N ? dy[r * N + c - off] : E(0);
  }
}

// --- norm gradients (rows) ------------------------------------------------------------
// One block per row: dx, and the row's mean / rstd for the column sums.
template <class T, bool kLayer>
__global__ void norm_grad_rows_kernel(T* dx, const T* x, const T* gamma, const T* dy, int64_t rows,
                                      int64_t H, double eps, float* mean_out, float* rstd_out,
                                      const T* residual) {
  pdl_trigger();
  pdl_wait();
  __shared__ float sh[33];
  const float invH = 1.f / static_cast<float>(H);
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * H;
    const T* dr = dy + r * H;
    T* o = dx + r * H;
    if (kLayer) {
      float s = 0.f;
      for (int64_t j = threadIdx.x; j < H; j += blockDim.x) s += to_f(xr[j]);
      const float mu = block_sum(s, sh) * invH;
      float v = 0.f;
      for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
        const float d = to_f(xr[j]) - mu;
        v += d * d;
      }
      const float var = block_sum(v, sh) * invH;
      const float rs = static_cast<float>(1.0 / sqrt(static_cast<double>(var) + eps));
      float sg = 0.f, sgx = 0.f;
      for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
        const float g = to_f(dr[j]) * to_f(gamma[j]);
        sg += g;
        sgx += g * (to_f(xr[j]) - mu) * rs;
      }
      sg = block_sum(sg, sh) * invH;
      sgx = block_sum(sgx, sh) * invH;
      for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
        const float g = to_f(dr[j]) * to_f(gamma[j]);
        o[j] = from_f<T>(rs * (g - sg - (to_f(xr[j]) - mu) * rs * sgx));
      }
      if (threadIdx.x == 0) {
        mean_out[r] = mu;
        rstd_out[r] = rs;
      }
    } else {
      float ss = 0.f, sgx = 0.f;
      for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
        const float xv = to_f(xr[j]);
        ss += xv * xv;
        sgx += to_f(dr[j]) * to_f(gamma[j]) * xv;
      }
      ss = block_sum(ss, sh);
      sgx = block_sum(sgx, sh);
      const double rsd = 1.0 / sqrt(static_cast<double>(ss) / static_cast<double>(H) + eps);
      const float rs = static_cast<float>(rsd);
      const float k = static_cast<float>(rsd * rsd * rsd * sgx / static_cast<double>(H));
      // rms_norm_grad_add (bmsys-fuse-elementwise): the residual's gradient added before
      // the one rounding to T.
      const T* rr = residual ? residual + r * H : nullptr;
      for (int64_t j = threadIdx.x; j < H; j += blockDim.x)
        o[j] = from_f<T>(rs * to_f(gamma[j]) * to_f(dr[j]) - k * to_f(xr[j]) + (rr ? to_f(rr[j]) : 0.f));
      if (threadIdx.x == 0) rstd_out[r] = rs;
    }
  }
}

// --- rope_grad ------------------------------------------------------------------------
template <class T>
__global__ void rope_grad_kernel(T* dx, const T* dy, const int64_t* pos, int64_t T_, int64_t N,
                                 int64_t D, double theta) {
  pdl_trigger();
  pdl_wait();
  const int64_t half = D / 2;
  const int64_t n = T_ * half;
  for (int64_t idx = gtid(); idx < n; idx += gstride()) {
    const int64_t t = idx / half, i = idx - t * half;
    const double f = pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(D));
    const double ang = static_cast<double>(pos[t]) * f;
    double s, c;
    sincos(ang, &s, &c);
    for (int64_t h = 0; h < N; ++h) {
      const int64_t base = (t * N + h) * D;
      const double a = to_f(dy[base + i]), b = to_f(dy[base + i + half]);
      dx[base + i] = from_f<T>(static_cast<float>(a * c + b * s));
      dx[base + i + half] = from_f<T>(static_cast<float>(b * c - a * s));
    }
  }
}

// --- activation gradients -------------------------------------------------------------
// Computed in double for f32 data (as the reference), in float for f16/bf16.
__device__ __forceinline__ float m_tanh(float v) { return tanhf(v); }
__device__ __forceinline__ double m_tanh(double v) { return tanh(v); }
__device__ __forceinline__ float m_erf(float v) { return erff(v); }
__device__ __forceinline__ double m_erf(double v) { return erf(v); }
__device__ __forceinline__ float m_exp(float v) { return expf(v); }
__device__ __forceinline__ double m_exp(double v) { return exp(v); }

template <class T, class C, int kOp>
__global__ void act_grad_kernel(T* dx, const T* x, const T* dy, int64_t n) {
  pdl_trigger();
  pdl_wait();
  const C k = C(0.7978845608028654);        // sqrt(2/pi)
  const C inv_sqrt_2pi = C(0.3989422804014327);
  for (int64_t i = gtid(); i < n; i += gstride()) {
    const C v = static_cast<C>(to_f(x[i]));
    C d;
    if (kOp == 0) {  // gelu tanh
      const C t = m_tanh(k * (v + C(0.044715) * v * v * v));
      d = C(0.5) * (C(1) + t) + C(0.5) * v * (C(1) - t * t) * k * (C(1) + C(3) * C(0.044715) * v * v);
    } else if (kOp == 1) {  // gelu erf
      d = C(0.5) * (C(1) + m_erf(v * C(0.7071067811865476))) + v * m_exp(C(-0.5) * v * v) * inv_sqrt_2pi;
    } else {  // silu
      const C sg = C(1) / (C(1) + m_exp(-v));
      d = sg * (C(1) + v * (C(1) - sg));
    }
    dx[i] = from_f<T>(static_cast<float>(static_cast<C>(to_f(dy[i])) * d));
  }
}

// --- cross_entropy_grad ---------------------------------------------------------------
template <class T>
__global__ void xent_grad_kernel(Launch L, T* out, const T* logits, const int64_t* labels, int64_t B,
                                 int64_t S, int64_t V, int shift, int loss_scaling) {
  pdl_trigger();
  pdl_wait();
  __shared__ float sh[33];
  const int64_t per = S - shift;
  const double count = static_cast<double>(B * per);
  const double scale = loss_scaling ? dev_loss_scale(L) : 1.0;
  for (int64_t r = blockIdx.x; r < B * S; r += gridDim.x) {
    const int64_t b = r / S, s = r - b * S;
    const T* x = logits + r * V;
    T* o = out + r * V;
    if (s >= per) {
      for (int64_t i = threadIdx.x; i < V; i += blockDim.x) o[i] = from_f<T>(0.f);
      continue;
    }
    const int64_t lab = labels[b * S + s + shift];
    if (threadIdx.x == 0 && (lab < 0 || lab >= V)) report_error(L, kErrLabel, lab, b * S + s + shift, V);
    float mx, sum;
    row_softmax_stats(x, V, sh, mx, sum);
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
      const double p = static_cast<double>(expf(to_f(x[i]) - mx)) / sum;
      o[i] = from_f<T>(static_cast<float>((p - (i == lab ? 1.0 : 0.0)) / count * scale));
    }
  }
}

// --- global_norm ----------------------------------------------------------------------
template <class T>
__global__ void sumsq_kernel(const T* x, int64_t n, double* part) {
  pdl_trigger();
  pdl_wait();
  __shared__ double sh[33];
  double acc = 0;
  for (int64_t i = gtid(); i < n; i += gstride()) {
    const double v = to_f(x[i]);
    acc += v * v;
  }
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

template <class O>
__global__ void norm_final_kernel(const double* part, int64_t count, O* out) {
  pdl_trigger();
  pdl_wait();
  __shared__ double sh[33];
  double s = 0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) s += part[i];
  s = block_sum(s, sh);
  if (threadIdx.x == 0) out[0] = from_f<O>(static_cast<float>(sqrt(s)));
}

int64_t norm_blocks(int64_t n) {
  int64_t b = (n + kThreads * 8 - 1) / (kThreads * 8);
  return std::min<int64_t>(std::max<int64_t>(b, 1), 1024);
}

// --- optimizers -----------------------------------------------------------------------
__device__ double scheduled_lr(const OptimArgs& a, int64_t T) {
  if (a.warmup_steps > 0 && T <= a.warmup_steps)
    return a.lr * static_cast<double>(T) / static_cast<double>(a.warmup_steps);
  const long long span = a.total_steps - a.warmup_steps;
  double p = static_cast<double>(T - a.warmup_steps) / static_cast<double>(span > 1 ? span : 1);
  p = fmin(1.0, fmax(0.0, p));
  switch (a.sched_kind) {
    case 1: return a.min_lr + (a.lr - a.min_lr) * (1.0 + cos(3.141592653589793 * p)) / 2.0;
    case 2: return a.lr + (a.min_lr - a.lr) * p;
    default: return a.lr;
  }
}

__device__ __forceinline__ double clip_coefficient(double max_norm, double norm) {
  return max_norm > 0 ? fmin(1.0, max_norm / (norm + 1e-6)) : 1.0;
}

// The gradient coefficient c (or c/L); false: the unscaled norm is not finite, skip.
__device__ __forceinline__ bool grad_coefficient(const Launch& L, const OptimArgs& a,
                                                 const void* norm, int nt, double* coef) {
  double nrm = load_any(norm, nt, 0);
  if (!a.loss_scaling) {
    *coef = clip_coefficient(a.max_norm, nrm);
    return true;
  }
  const double Ls = dev_loss_scale(L);
  nrm /= Ls;
  if (!isfinite(nrm)) return false;
  *coef = clip_coefficient(a.max_norm, nrm) / Ls;
  return true;
}

template <class G>
__global__ void adamw_kernel(Launch L, float* param, const G* grad, float* m, float* v,
                             const void* norm, int nt, int64_t n, OptimArgs a) {
  pdl_trigger();
  pdl_wait();
  double coef;
  if (!grad_coefficient(L, a, norm, nt, &coef)) return;  // overflow: the step is skipped
  const int64_t T = dev_step(L);
  const double lr = scheduled_lr(a, T);
  const double bc1 = 1.0 - pow(a.beta1, static_cast<double>(T));
  const double bc2 = 1.0 - pow(a.beta2, static_cast<double>(T));
  const double decay = 1.0 - lr * a.weight_decay;
  for (int64_t i = gtid(); i < n; i += gstride()) {
    const double g = coef * static_cast<double>(to_f(grad[i]));
    double w = static_cast<double>(param[i]) * decay;
    const double mi = a.beta1 * m[i] + (1.0 - a.beta1) * g;
    const double vi = a.beta2 * v[i] + (1.0 - a.beta2) * g * g;
    w -= lr * (mi / bc1) / (sqrt(vi / bc2) + a.eps);
    m[i] = static_cast<float>(mi);
    v[i] = static_cast<float>(vi);
    param[i] = static_cast<float>(w);
  }
}

template <class G>
__global__ void sgd_kernel(Launch L, float* param, const G* grad, float* buf, const void* norm,
                           int nt, int64_t n, OptimArgs a) {
  pdl_trigger();
  pdl_wait();
  double coef;
  if (!grad_coefficient(L, a, norm, nt, &coef)) return;
  const int64_t T = dev_step(L);
  const double lr = scheduled_lr(a, T);
  const bool fresh = T == 1 || a.momentum == 0;
  for (int64_t i = gtid(); i < n; i += gstride()) {
    const double g = coef * static_cast<double>(to_f(grad[i])) + a.weight_decay * param[i];
    const double b = fresh ? g : a.momentum * buf[i] + g;
    buf[i] = static_cast<float>(b);
    param[i] = static_cast<float>(param[i] - lr * b);
  }
}

// --- fake_quant -----------------------------------------------------------------------
// One block per quantized row (elements w[n*step + k*stride]); the same float
// arithmetic as the CPU reference and bmsys-quantize, so the results are bit-identical.
__global__ void fake_quant_kernel(float* y, const float* w, int64_t rows, int64_t len, int64_t step,
                                  int64_t stride) {
  pdl_trigger();
  pdl_wait();
  __shared__ float sh[33];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    float amax = 0.f;
    for (int64_t k = threadIdx.x; k < len; k += blockDim.x) amax = fmaxf(amax, fabsf(w[r * step + k * stride]));
    amax = block_max(amax, sh);
    const float scale = amax > 0.f ? amax / 127.0f : 1.0f;
    for (int64_t k = threadIdx.x; k < len; k += blockDim.x) {
      const int64_t i = r * step + k * stride;
      y[i] = fminf(fmaxf(rintf(w[i] / scale), -127.f), 127.f) * scale;
    }
  }
}

// --- SIMT GEMM ------------------------------------------------------------------------
template <class T>
__global__ void gemm_simt_kernel(T* C, const T* A, const T* B, int64_t m, int64_t n, int64_t k,
                                 bool tA, bool tB) {
  pdl_trigger();
  pdl_wait();
  __shared__ float As[16][17], Bs[16][17];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t col = blockIdx.x * 16 + tx;
  for (int64_t by = blockIdx.y; by * 16 < m; by += gridDim.y) {
    const int64_t row = by * 16 + ty;
    float acc = 0.f;
    for (int64_t k0 = 0; k0 < k; k0 += 16) {
      const int64_t ak = k0 + tx, bk = k0 + ty;
      As[ty][tx] = row < m && ak < k ? to_f(tA ? A[ak * m + row] : A[row * k + ak]) : 0.f;
      Bs[ty][tx] = bk < k && col < n ? to_f(tB ? B[col * k + bk] : B[bk * n + col]) : 0.f;
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < 16; ++kk) acc += As[ty][kk] * Bs[kk][tx];
      __syncthreads();
    }
    if (row < m && col < n) C[row * n + col] = from_f<T>(acc);
  }
}

__global__ void set_train_scalars_kernel(int64_t* s, int64_t step, long long loss_scale_bits) {
  s[kScalarStep] = step;
  s[kScalarLossScale] = loss_scale_bits;
}

}  // namespace

// ======================================================================================

size_t embedding_grad_scratch_bytes(int64_t n, int64_t V) {
  const size_t ints = align_up(static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(int));
  return 4 * ints + align_up(static_cast<size_t>(V + 1) * sizeof(int)) + align_up(cub_sort_bytes(n, V));
}

void embedding_grad(const Launch& L, DType t, void* dtable, const int64_t* ids, int64_t n,
                    const void* dy, int64_t V, int64_t H, void* scratch, size_t scratch_bytes,
                    int64_t first, int64_t vocab) {
  if (vocab <= 0) vocab = V;  // the whole table
  if (n >= (int64_t{1} << 31) || V >= (int64_t{1} << 31) - 1)
    fail("cuda backend: embedding_grad: {} positions over a vocabulary of {} (at most 2^31 each)", n, V);
  char* p = static_cast<char*>(scratch);
  const size_t ints = align_up(static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(int));
  int* keys = reinterpret_cast<int*>(p);
  int* vals = reinterpret_cast<int*>(p + ints);
  int* skeys = reinterpret_cast<int*>(p + 2 * ints);
  int* svals = reinterpret_cast<int*>(p + 3 * ints);
  int* start = reinterpret_cast<int*>(p + 4 * ints);
  char* temp = p + 4 * ints + align_up(static_cast<size_t>(V + 1) * sizeof(int));
  size_t temp_bytes = scratch_bytes - static_cast<size_t>(temp - p);
  launch_kernel(L, "embedding_grad", grid_for(n, kThreads), kThreads, 0, emb_keys_kernel, L, ids, n,
                V, keys, vals, first, vocab);
  if (n > 0)
    check_cuda(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, static_cast<const int*>(keys), skeys,
                                               static_cast<const int*>(vals), svals,
                                               static_cast<int>(n), 0, key_bits(V), L.stream),
               "cub::DeviceRadixSort::SortPairs", "embedding_grad");
  launch_kernel(L, "embedding_grad", grid_for(n + 1, kThreads), kThreads, 0, emb_starts_kernel,
                static_cast<const int*>(skeys), n, V, start);
  BMSYS_DISPATCH_FLOAT(t, T, "embedding_grad", {
    dim3 grid(static_cast<unsigned>(std::min<int64_t>(V, 1 << 20)), static_cast<unsigned>((H + 127) / 128));
    launch_kernel(L, "embedding_grad", grid, 128, 0, emb_accum_kernel<T>, static_cast<T*>(dtable),
                  static_cast<const T*>(dy), static_cast<const int*>(svals),
                  static_cast<const int*>(start), V, H);
  });
}

size_t column_sum_scratch_bytes(int64_t rows, int64_t H) {
  const int64_t per = chunk_rows(rows);
  const int64_t chunks = std::max<int64_t>(1, (rows + per - 1) / per);
  return 2 * align_up(static_cast<size_t>(chunks * H) * sizeof(float));
}

void sum_rows(const Launch& L, DType t, void* db, const void* dy, int64_t rows, int64_t N,
              void* scratch) {
  float* pg = static_cast<float*>(scratch);
  BMSYS_DISPATCH_FLOAT(t, T, "sum_rows", {
    column_sums<T, 0>(L, static_cast<T*>(db), static_cast<T*>(nullptr), static_cast<const T*>(dy),
                      static_cast<const T*>(nullptr), nullptr, nullptr, rows, N, pg, nullptr);
  });
}

void slice_grad(const Launch& L, void* dx, const void* dy, size_t es, int64_t rows, int64_t N,
                int64_t off, int64_t K) {
  const unsigned grid = grid_for(rows * K, kThreads);
  dispatch_element_size(es, "slice_grad", [&](auto e) {
    using E = decltype(e);
    launch_kernel(L, "slice_grad", grid, kThreads, 0, slice_grad_kernel<E>, static_cast<E*>(dx),
                  static_cast<const E*>(dy), rows, N, off, K);
  });
}

size_t norm_grad_scratch_bytes(int64_t rows, int64_t H) {
  return 2 * align_up(static_cast<size_t>(std::max<int64_t>(rows, 1)) * sizeof(float)) +
         column_sum_scratch_bytes(rows, H);
}

namespace {
template <bool kLayer>
void norm_grad(const Launch& L, DType t, void* dx, void* dgamma, void* dbeta, const void* x,
               const void* gamma, const void* dy, int64_t rows, int64_t H, double eps,
               void* scratch, const void* residual = nullptr) {
  char* p = static_cast<char*>(scratch);
  const size_t row_bytes = align_up(static_cast<size_t>(std::max<int64_t>(rows, 1)) * sizeof(float));
  float* mean = reinterpret_cast<float*>(p);
  float* rstd = reinterpret_cast<float*>(p + row_bytes);
  float* pg = reinterpret_cast<float*>(p + 2 * row_bytes);
  float* pb = reinterpret_cast<float*>(p + 2 * row_bytes + column_sum_scratch_bytes(rows, H) / 2);
  BMSYS_DISPATCH_FLOAT(t, T, kLayer ? "layer_norm_grad" : "rms_norm_grad", {
    const unsigned grid = static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(rows, 1), 1 << 20));
    if (rows > 0)
      launch_kernel(L, kLayer ? "layer_norm_grad" : "rms_norm_grad", grid, 256, 0,
                    norm_grad_rows_kernel<T, kLayer>, static_cast<T*>(dx), static_cast<const T*>(x),
                    static_cast<const T*>(gamma), static_cast<const T*>(dy), rows, H, eps, mean, rstd,
                    static_cast<const T*>(residual));
    column_sums<T, kLayer ? 1 : 2>(L, static_cast<T*>(dgamma), static_cast<T*>(dbeta),
                                   static_cast<const T*>(dy), static_cast<const T*>(x), mean, rstd,
                                   rows, H, pg, pb);
  });
}
}  // namespace

void layer_norm_grad(const Launch& L, DType t, void* dx, void* dgamma, void* dbeta, const void* x,
                     const void* gamma, const void* dy, int64_t rows, int64_t H, double eps,
                     void* scratch) {
  norm_grad<true>(L, t, dx, dgamma, dbeta, x, gamma, dy, rows, H, eps, scratch);
}

void rms_norm_grad(const Launch& L, DType t, void* dx, void* dgamma, const void* x,
                   const void* gamma, const void* dy, int64_t rows, int64_t H, double eps,
                   void* scratch) {
  norm_grad<false>(L, t, dx, dgamma, nullptr, x, gamma, dy, rows, H, eps, scratch);
}

void rms_norm_grad_add(const Launch& L, DType t, void* dx, void* dgamma, const void* x,
                       const void* gamma, const void* dy, const void* residual, int64_t rows,
                       int64_t H, double eps, void* scratch) {
  norm_grad<false>(L, t, dx, dgamma, nullptr, x, gamma, dy, rows, H, eps, scratch, residual);
}

void rope_grad(const Launch& L, DType t, void* dx, const void* dy, const int64_t* pos, int64_t T_,
               int64_t N, int64_t D, double theta) {
  BMSYS_DISPATCH_FLOAT(t, T, "rope_grad", {
    launch_kernel(L, "rope_grad", grid_for(T_ * (D / 2), 128), 128, 0, rope_grad_kernel<T>,
                  static_cast<T*>(dx), static_cast<const T*>(dy), pos, T_, N, D, theta);
  });
}

void act_grad(const Launch& L, DType t, ActGrad op, void* dx, const void* x, const void* dy,
              int64_t n) {
  const unsigned grid = grid_for(n, kThreads);
  const char* name = op == ActGrad::Silu ? "silu_grad" : "gelu_grad";
  BMSYS_DISPATCH_FLOAT(t, T, name, {
    using C = typename std::conditional<std::is_same<T, float>::value, double, float>::type;
    T* o = static_cast<T*>(dx);
    const T* xi = static_cast<const T*>(x);
    const T* gi = static_cast<const T*>(dy);
    switch (op) {
      case ActGrad::GeluTanh:
        launch_kernel(L, name, grid, kThreads, 0, act_grad_kernel<T, C, 0>, o, xi, gi, n);
        break;
      case ActGrad::GeluErf:
        launch_kernel(L, name, grid, kThreads, 0, act_grad_kernel<T, C, 1>, o, xi, gi, n);
        break;
      case ActGrad::Silu:
        launch_kernel(L, name, grid, kThreads, 0, act_grad_kernel<T, C, 2>, o, xi, gi, n);
        break;
    }
  });
}

void cross_entropy_grad(const Launch& L, DType t, void* dlogits, const void* logits,
                        const int64_t* labels, int64_t B, int64_t S, int64_t V, bool shift,
                        bool loss_scaling) {
  BMSYS_DISPATCH_FLOAT(t, T, "cross_entropy_grad", {
    const unsigned grid = static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(B * S, 1), 1 << 20));
    launch_kernel(L, "cross_entropy_grad", grid, kThreads, 0, xent_grad_kernel<T>, L,
                  static_cast<T*>(dlogits), static_cast<const T*>(logits), labels, B, S, V,
                  shift ? 1 : 0, loss_scaling ? 1 : 0);
  });
}

size_t global_norm_scratch_bytes(const NormInput* ins, int count) {
  int64_t parts = 0;
  for (int i = 0; i < count; ++i) parts += norm_blocks(ins[i].n);
  return align_up(static_cast<size_t>(std::max<int64_t>(parts, 1)) * sizeof(double));
}

void global_norm(const Launch& L, const NormInput* ins, int count, void* norm, DType nt,
                 void* scratch) {
  double* part = static_cast<double*>(scratch);
  int64_t off = 0;
  for (int i = 0; i < count; ++i) {
    const int64_t nb = norm_blocks(ins[i].n);
    BMSYS_DISPATCH_FLOAT(ins[i].dtype, T, "global_norm", {
      launch_kernel(L, "global_norm", static_cast<unsigned>(nb), kThreads, 0, sumsq_kernel<T>,
                    static_cast<const T*>(ins[i].data), ins[i].n, part + off);
    });
    off += nb;
  }
  BMSYS_DISPATCH_FLOAT(nt, O, "global_norm", {
    launch_kernel(L, "global_norm", 1, 1024, 0, norm_final_kernel<O>, static_cast<const double*>(part),
                  off, static_cast<O*>(norm));
  });
}

void adamw(const Launch& L, float* param, DType gt, const void* grad, float* m, float* v,
           const void* norm, DType nt, int64_t n, const OptimArgs& a) {
  BMSYS_DISPATCH_FLOAT(gt, G, "adamw", {
    launch_kernel(L, "adamw", grid_for(n, kThreads, 132 * 8), kThreads, 0, adamw_kernel<G>, L, param,
                  static_cast<const G*>(grad), m, v, norm, static_cast<int>(nt), n, a);
  });
}

void sgd(const Launch& L, float* param, DType gt, const void* grad, float* buf, const void* norm,
         DType nt, int64_t n, const OptimArgs& a) {
  BMSYS_DISPATCH_FLOAT(gt, G, "sgd", {
    launch_kernel(L, "sgd", grid_for(n, kThreads, 132 * 8), kThreads, 0, sgd_kernel<G>, L, param,
                  static_cast<const G*>(grad), buf, norm, static_cast<int>(nt), n, a);
  });
}

void fake_quant(const Launch& L, float* y, const float* w, int64_t R, int64_t C, int64_t axis) {
  const int64_t rows = axis == 0 ? R : C, len = axis == 0 ? C : R;
  const int64_t step = axis == 0 ? C : 1, stride = axis == 0 ? 1 : C;
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(rows, 1), 1 << 20));
  if (rows > 0)
    launch_kernel(L, "fake_quant", grid, 256, 0, fake_quant_kernel, y, w, rows, len, step, stride);
}

void gemm_simt(const Launch& L, DType t, void* C, const void* A, const void* B, int64_t m,
               int64_t n, int64_t k, bool transA, bool transB) {
  BMSYS_DISPATCH_FLOAT(t, T, "gemm (simt)", {
    dim3 grid(static_cast<unsigned>((n + 15) / 16),
              static_cast<unsigned>(std::min<int64_t>((m + 15) / 16, 65535)));
    launch_kernel(L, "gemm (simt)", grid, dim3(16, 16), 0, gemm_simt_kernel<T>, static_cast<T*>(C),
                  static_cast<const T*>(A), static_cast<const T*>(B), m, n, k, transA, transB);
  });
}

}  // namespace bmsys::rt::cuda::train

namespace bmsys::rt::cuda {
void set_train_scalars(cudaStream_t stream, int64_t* scalars, int64_t step, double loss_scale) {
  Launch L;
  L.stream = stream;
  long long bits;
  std::memcpy(&bits, &loss_scale, sizeof(bits));
  launch_kernel(L, "set step and loss scale", 1, 1, 0, train::set_train_scalars_kernel, scalars, step, bits);
}
}  // namespace bmsys::rt::cuda
