// The gradient of attention without a KV cache (docs/kernels.md `attention_grad`) where
// the tensor-core kernels (attention_grad_tc.cu) do not apply (f32, other head sizes,
// BMSYS_CUDA_FLASH=0): softmax recomputed from q and k, FlashAttention-2 style, in two
// SIMT kernels that need no atomics (so the result is deterministic):
//
//  1. query side, a warp per query row (b, h, s): a first sweep over the keys computes
//     the row's log-sum-exp and delta = sum_j p_j (dy . v_j) with an online softmax; a
//     second sweep accumulates dq = scale * sum_j p_j (dy . v_j - delta) k_j. lse and
//     delta go to scratch.
//  2. key side, a warp per key row (b, kv head, j): over every query head sharing the kv
//     head and every query s that sees j, dv_j += p_sj dy_s and
//     dk_j += scale * p_sj (dy_s . v_j - delta_s) q_s, with p_sj recomputed from lse.
//
// Keys (kernel 1) or queries (kernel 2) are staged 32 at a time in shared memory as
// f32; each lane computes one dot product (rows padded to an odd stride: no bank
// conflicts), then lanes switch to head dimensions to accumulate. f32 throughout.
#include "runtime/backends/cuda/device_util.cuh"
#include "runtime/backends/cuda/train_kernels.h"

namespace bmsys::rt::cuda::train {

namespace {

constexpr int kWarps = 4;  // rows per block
constexpr int kTile = 32;  // keys / queries staged per step
constexpr int kMaxChunks = static_cast<int>(kAttentionGradMaxHeadDim / 32);

struct Params {
  int64_t B, S, Nq, Nkv, D, Dp;
  float scale;
  bool causal;
};

// Rows j0 .. j0+kTile-1 of x and y ([B,S,heads,D] at batch b, head hd) into the shared
// tiles xt, yt (f32, row stride Dp); rows past S are zero.
template <class T>
__device__ __forceinline__ void stage_tile(float* xt, float* yt, const T* x, const T* y, const Params& p, int64_t b,
                                           int64_t heads, int64_t hd, int64_t j0) {
  const int64_t D = p.D, Dp = p.Dp, S = p.S;
  for (int64_t idx = threadIdx.x; idx < kTile * D; idx += blockDim.x) {
    const int64_t r = idx / D, d = idx - r * D, j = j0 + r;
    const int64_t src = ((b * S + j) * heads + hd) * D + d;
    xt[r * Dp + d] = j < S ? to_f(x[src]) : 0.f;
    yt[r * Dp + d] = j < S ? to_f(y[src]) : 0.f;
  }
}

// The warp's own row (D elements of x and y from `offset`) into xs, ys as f32; zeros
// for an inactive warp.
template <class T>
__device__ __forceinline__ void stage_row(float* xs, float* ys, const T* x, const T* y, int64_t offset, int64_t D,
                                          bool active, int lane) {
  for (int64_t d = lane; d < D; d += 32) {
    xs[d] = active ? to_f(x[offset + d]) : 0.f;
    ys[d] = active ? to_f(y[offset + d]) : 0.f;
  }
}

// The lane's two dot products over D: a . b and c . e.
__device__ __forceinline__ void dot2(const float* a, const float* b, const float* c, const float* e, int64_t D,
                                     float* ab, float* ce) {
  float x = 0.f, y = 0.f;
  for (int64_t d = 0; d < D; ++d) {
    x += a[d] * b[d];
    y += c[d] * e[d];
  }
  *ab = x;
  *ce = y;
}

template <class T>
__global__ void attn_grad_q_kernel(Params p, const T* q, const T* k, const T* v, const T* dy, T* dq,
                                   float* lse_out, float* delta_out) {
  pdl_trigger();
  pdl_wait();
  extern __shared__ float smem[];
  const int64_t D = p.D, Dp = p.Dp, S = p.S;
  float* Ks = smem;
  float* Vs = Ks + kTile * Dp;
  float* qs = Vs + kTile * Dp;
  float* gs = qs + kWarps * D;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t b = blockIdx.z, h = blockIdx.y, kvh = h / (p.Nq / p.Nkv);
  const int64_t s_first = static_cast<int64_t>(blockIdx.x) * kWarps;
  const int64_t s = s_first + warp;
  const bool active = s < S;
  const int64_t q_row = ((b * S + s) * p.Nq + h) * D;
  stage_row(qs + warp * D, gs + warp * D, q, dy, q_row, D, active, lane);
  const int64_t kmax = p.causal ? min(S, s_first + kWarps) : S;  // keys any row of the block sees
  const int64_t Ls = p.causal ? s + 1 : S;                       // keys this row sees
  const float* qr = qs + warp * D;
  const float* gr = gs + warp * D;

  auto load_tile = [&](int64_t j0) {
    __syncthreads();
    stage_tile(Ks, Vs, k, v, p, b, p.Nkv, kvh, j0);
    __syncthreads();
  };
  auto scores = [&](float* sv, float* dp) {
    float a;
    dot2(qr, Ks + lane * Dp, gr, Vs + lane * Dp, D, &a, dp);
    *sv = a * p.scale;
  };

  // Sweep 1: log-sum-exp and delta.
  float m = -INFINITY, l = 0.f, c = 0.f;
  for (int64_t j0 = 0; j0 < kmax; j0 += kTile) {
    load_tile(j0);
    if (active) {
      float sv, dp;
      scores(&sv, &dp);
      const bool valid = j0 + lane < Ls;
      const float mn = fmaxf(m, warp_max(valid ? sv : -INFINITY));
      if (mn != -INFINITY) {
        const float corr = expf(m - mn);
        const float e = valid ? expf(sv - mn) : 0.f;
        l = l * corr + warp_sum(e);
        c = c * corr + warp_sum(e * dp);
        m = mn;
      }
    }
  }
  const float lse = m + logf(l), delta = c / l;
  if (active && lane == 0) {
    lse_out[(b * p.Nq + h) * S + s] = lse;
    delta_out[(b * p.Nq + h) * S + s] = delta;
  }

  // Sweep 2: dq.
  float acc[kMaxChunks];
#pragma unroll
  for (int i = 0; i < kMaxChunks; ++i) acc[i] = 0.f;
  for (int64_t j0 = 0; j0 < kmax; j0 += kTile) {
    load_tile(j0);
    if (active) {
      float sv, dp;
      scores(&sv, &dp);
      const float pr = j0 + lane < Ls ? expf(sv - lse) : 0.f;
      const float ds = pr * (dp - delta) * p.scale;
      for (int r = 0; r < kTile; ++r) {
        const float dsr = __shfl_sync(0xffffffffu, ds, r);
#pragma unroll
        for (int i = 0; i < kMaxChunks; ++i) {
          const int64_t d = lane + 32 * i;
          if (d < D) acc[i] += dsr * Ks[r * Dp + d];
        }
      }
    }
  }
  if (active) {
#pragma unroll
    for (int i = 0; i < kMaxChunks; ++i) {
      const int64_t d = lane + 32 * i;
      if (d < D) dq[q_row + d] = from_f<T>(acc[i]);
    }
  }
}

template <class T>
__global__ void attn_grad_kv_kernel(Params p, const T* q, const T* k, const T* v, const T* dy, T* dk,
                                    T* dv, const float* lse_in, const float* delta_in) {
  pdl_trigger();
  pdl_wait();
  extern __shared__ float smem[];
  const int64_t D = p.D, Dp = p.Dp, S = p.S;
  float* Qs = smem;
  float* Gs = Qs + kTile * Dp;
  float* ks = Gs + kTile * Dp;
  float* vs = ks + kWarps * D;
  float* lse_s = vs + kWarps * D;
  float* delta_s = lse_s + kTile;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t b = blockIdx.z, kvh = blockIdx.y, group = p.Nq / p.Nkv;
  const int64_t j_first = static_cast<int64_t>(blockIdx.x) * kWarps;
  const int64_t j = j_first + warp;
  const bool active = j < S;
  const int64_t kv_row = ((b * S + j) * p.Nkv + kvh) * D;
  stage_row(ks + warp * D, vs + warp * D, k, v, kv_row, D, active, lane);
  const float* kr = ks + warp * D;
  const float* vr = vs + warp * D;
  float ak[kMaxChunks], av[kMaxChunks];
#pragma unroll
  for (int i = 0; i < kMaxChunks; ++i) ak[i] = av[i] = 0.f;
  const int64_t s_begin = p.causal ? j_first : 0;  // queries that see some key of the block
  for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
    for (int64_t s0 = s_begin; s0 < S; s0 += kTile) {
      __syncthreads();
      stage_tile(Qs, Gs, q, dy, p, b, p.Nq, h, s0);
      if (threadIdx.x < kTile) {
        const int64_t s = s0 + threadIdx.x;
        lse_s[threadIdx.x] = s < S ? lse_in[(b * p.Nq + h) * S + s] : 0.f;
        delta_s[threadIdx.x] = s < S ? delta_in[(b * p.Nq + h) * S + s] : 0.f;
      }
      __syncthreads();
      if (!active) continue;
      const int64_t s = s0 + lane;
      const bool valid = s < S && (!p.causal || s >= j);
      float a, c;
      dot2(Qs + lane * Dp, kr, Gs + lane * Dp, vr, D, &a, &c);
      const float pr = valid ? expf(a * p.scale - lse_s[lane]) : 0.f;
      const float ds = pr * (c - delta_s[lane]) * p.scale;
      for (int r = 0; r < kTile; ++r) {
        const float prr = __shfl_sync(0xffffffffu, pr, r);
        const float dsr = __shfl_sync(0xffffffffu, ds, r);
#pragma unroll
        for (int i = 0; i < kMaxChunks; ++i) {
          const int64_t d = lane + 32 * i;
          if (d < D) {
            av[i] += prr * Gs[r * Dp + d];
            ak[i] += dsr * Qs[r * Dp + d];
          }
        }
      }
    }
  }
  if (active) {
#pragma unroll
    for (int i = 0; i < kMaxChunks; ++i) {
      const int64_t d = lane + 32 * i;
      if (d < D) {
        dk[kv_row + d] = from_f<T>(ak[i]);
        dv[kv_row + d] = from_f<T>(av[i]);
      }
    }
  }
}

size_t stats_bytes(const AttentionGradArgs& a) {
  return (static_cast<size_t>(a.B * a.Nq * a.S) * sizeof(float) + 255) / 256 * 256;
}

// Opts the kernel in to more than 48 KB of dynamic shared memory (head_dim > 128), once
// per size: the first (eager) run of a flush does it, never a graph capture.
template <class K>
void allow_smem(K kernel, size_t bytes, size_t* allowed) {
  if (bytes <= 48 * 1024 || bytes <= *allowed) return;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(bytes)),
             "cudaFuncSetAttribute", "attention_grad");
  *allowed = bytes;
}

}  // namespace

size_t attention_grad_scratch_bytes(const AttentionGradArgs& a) { return 2 * stats_bytes(a); }

void attention_grad(const Launch& L, const AttentionGradArgs& a, void* scratch) {
  if (a.D > kAttentionGradMaxHeadDim)
    fail("cuda backend: attention_grad: head_dim {} (at most {})", a.D, kAttentionGradMaxHeadDim);
  if (a.B * a.S == 0) return;
  Params p{a.B, a.S, a.Nq, a.Nkv, a.D, a.D % 2 == 0 ? a.D + 1 : a.D, a.scale, a.causal};
  float* lse = static_cast<float*>(scratch);
  float* delta = reinterpret_cast<float*>(static_cast<char*>(scratch) + stats_bytes(a));
  if (attention_grad_tc_supported(a)) return attention_grad_tc(L, a, lse, delta);
  const size_t smem_q = static_cast<size_t>(2 * kTile * p.Dp + 2 * kWarps * p.D) * sizeof(float);
  const size_t smem_kv = smem_q + 2 * kTile * sizeof(float);
  const unsigned rows = static_cast<unsigned>((a.S + kWarps - 1) / kWarps);
  BMSYS_DISPATCH_FLOAT(a.dtype, T, "attention_grad", {
    static size_t allowed_q = 0, allowed_kv = 0;
    allow_smem(attn_grad_q_kernel<T>, smem_q, &allowed_q);
    allow_smem(attn_grad_kv_kernel<T>, smem_kv, &allowed_kv);
    launch_kernel(L, "attention_grad", dim3(rows, static_cast<unsigned>(a.Nq), static_cast<unsigned>(a.B)),
                  kWarps * 32, smem_q, attn_grad_q_kernel<T>, p, static_cast<const T*>(a.q),
                  static_cast<const T*>(a.k), static_cast<const T*>(a.v), static_cast<const T*>(a.dy),
                  static_cast<T*>(a.dq), lse, delta);
    launch_kernel(L, "attention_grad", dim3(rows, static_cast<unsigned>(a.Nkv), static_cast<unsigned>(a.B)),
                  kWarps * 32, smem_kv, attn_grad_kv_kernel<T>, p, static_cast<const T*>(a.q),
                  static_cast<const T*>(a.k), static_cast<const T*>(a.v), static_cast<const T*>(a.dy),
                  static_cast<T*>(a.dk), static_cast<T*>(a.dv), static_cast<const float*>(lse),
                  static_cast<const float*>(delta));
  });
}

}  // namespace bmsys::rt::cuda::train
