// Matrix-vector products for decode (a few rows of x against [N,K] weights) and the
// plain SIMT GEMM fallback.
//
// GEMV: one warp per output column n, 8 warps per block; each lane streams 16-byte
// packs of the weight row with 8 loads in flight, coalesced across the warp (512
// contiguous bytes per load instruction). The first packs are loaded before
// griddepcontrol.wait: weights never depend on the previous kernel, so under PDL the
// weight stream starts while the previous kernel drains. Up to three weights sharing x
// (q/k/v, gate/up) run in one launch.
#include <type_traits>

#include "runtime/backends/cuda/device_util.cuh"
#include "runtime/backends/cuda/kernels.h"

namespace bmsys::rt::cuda {

namespace {

constexpr int kGemvWarps = 8;

template <class T>
struct GemvK {
  const T* x;
  int64_t M, K;
  const T* w[kGemvMaxJobs];
  const T* bias[kGemvMaxJobs];
  T* y[kGemvMaxJobs];
  int64_t N[kGemvMaxJobs];
  int64_t block_start[kGemvMaxJobs + 1];
  int njobs;
};

template <class T, bool VEC>
struct Lane;
template <class T>
struct Lane<T, true> {
  static constexpr int N = Pack<T>::N;
  Pack<T> p;
  __device__ __forceinline__ void load_w(const T* ptr) { p = load_pack_nc(ptr); }
  __device__ __forceinline__ void load(const T* ptr) { p = load_pack(ptr); }
  __device__ __forceinline__ float get(int e) const { return to_f(p.v[e]); }
};
template <class T>
struct Lane<T, false> {
  static constexpr int N = 1;
  T p;
  __device__ __forceinline__ void load_w(const T* ptr) { p = __ldg(ptr); }
  __device__ __forceinline__ void load(const T* ptr) { p = *ptr; }
  __device__ __forceinline__ float get(int) const { return to_f(p); }
};

template <class T, int MT, bool VEC>
__global__ void __launch_bounds__(kGemvWarps * 32, 4) gemv_kernel(GemvK<T> a) {
  pdl_trigger();
  using LV = Lane<T, VEC>;
  constexpr int PN = LV::N;
  constexpr int U = (sizeof(T) == 2 || MT >= 4) ? 4 : 8;  // 16-byte loads in flight per lane
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  int j = 0;
  while (j + 1 < a.njobs && (int64_t)blockIdx.x >= a.block_start[j + 1]) ++j;
  const int64_t n = ((int64_t)blockIdx.x - a.block_start[j]) * kGemvWarps + warp;
  const bool active = n < a.N[j];
  const T* wr = a.w[j] + (active ? n : 0) * a.K;
  const int64_t nv = a.K / PN;

  LV wv[U];
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int64_t idx = u * 32 + lane;
    if (active && idx < nv) wv[u].load_w(wr + idx * PN);
  }
  pdl_wait();

  float acc[MT];
#pragma unroll
  for (int m = 0; m < MT; ++m) acc[m] = 0.f;
  for (int64_t base = 0; base < nv; base += 32 * U) {
    if (base > 0) {
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t idx = base + u * 32 + lane;
        if (active && idx < nv) wv[u].load_w(wr + idx * PN);
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t idx = base + u * 32 + lane;
      if (active && idx < nv) {
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          if (m < a.M) {
            LV xv;
            xv.load(a.x + m * a.K + idx * PN);
            float s = 0.f;
#pragma unroll
            for (int e = 0; e < PN; ++e) s = fmaf(wv[u].get(e), xv.get(e), s);
            acc[m] += s;
          }
        }
      }
    }
  }
#pragma unroll
  for (int m = 0; m < MT; ++m) acc[m] = warp_sum(acc[m]);
  if (lane == 0 && active) {
    const float bv = a.bias[j] ? to_f(a.bias[j][n]) : 0.f;
#pragma unroll
    for (int m = 0; m < MT; ++m)
      if (m < a.M) a.y[j][m * a.N[j] + n] = from_f<T>(acc[m] + bv);
  }
}

template <class T, int MT>
void launch_gemv(const Launch& L, const GemvK<T>& a, bool vec) {
  const unsigned grid = static_cast<unsigned>(a.block_start[a.njobs]);
  if (vec)
    launch_kernel(L, "linear(gemv)", grid, kGemvWarps * 32, 0, gemv_kernel<T, MT, true>, a);
  else
    launch_kernel(L, "linear(gemv)", grid, kGemvWarps * 32, 0, gemv_kernel<T, MT, false>, a);
}

template <class T>
__global__ void gemm_simt_kernel(T* y, const T* x, const T* w, const T* bias, int64_t M,
                                 int64_t K, int64_t N, int wt) {
  pdl_trigger();
  pdl_wait();
  __shared__ float xs[16][17], ws[16][17];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t row = (int64_t)blockIdx.y * 16 + ty, col = (int64_t)blockIdx.x * 16 + tx;
  const int64_t wn = (int64_t)blockIdx.x * 16 + ty;
  float acc = 0.f;
  for (int64_t k0 = 0; k0 < K; k0 += 16) {
    xs[ty][tx] = (row < M && k0 + tx < K) ? to_f(x[row * K + k0 + tx]) : 0.f;
    const int64_t wk = k0 + tx;
    ws[ty][tx] = (wn < N && wk < K) ? to_f(wt ? w[wk * N + wn] : w[wn * K + wk]) : 0.f;
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < 16; ++kk) acc = fmaf(xs[ty][kk], ws[tx][kk], acc);
    __syncthreads();
  }
  if (row < M && col < N) y[row * N + col] = from_f<T>(acc + (bias ? to_f(bias[col]) : 0.f));
}

}  // namespace

void gemv(const Launch& L, DType t, const void* x, int64_t M, int64_t K, const GemvJob* jobs,
          int njobs) {
  if (M < 1 || M > kGemvMaxRows || njobs < 1 || njobs > kGemvMaxJobs)
    fail("cuda backend: gemv: {} rows, {} weights", M, njobs);
  BMSYS_DISPATCH_FLOAT(t, T, "linear(gemv)", {
    GemvK<T> a{};
    a.x = static_cast<const T*>(x);
    a.M = M;
    a.K = K;
    a.njobs = njobs;
    bool vec = K % Pack<T>::N == 0 && aligned16(x);
    a.block_start[0] = 0;
    for (int j = 0; j < njobs; ++j) {
      a.w[j] = static_cast<const T*>(jobs[j].w);
      a.bias[j] = static_cast<const T*>(jobs[j].bias);
      a.y[j] = static_cast<T*>(jobs[j].y);
      a.N[j] = jobs[j].N;
      vec = vec && aligned16(jobs[j].w);
      a.block_start[j + 1] = a.block_start[j] + (jobs[j].N + kGemvWarps - 1) / kGemvWarps;
    }
    if (M == 1) launch_gemv<T, 1>(L, a, vec);
    else if (M == 2) launch_gemv<T, 2>(L, a, vec);
    else if (M <= 4) launch_gemv<T, 4>(L, a, vec);
    else launch_gemv<T, 8>(L, a, vec);
  });
}

void gemm_simt(const Launch& L, DType t, void* y, const void* x, const void* w, const void* bias,
               int64_t M, int64_t K, int64_t N, bool w_transposed) {
  BMSYS_DISPATCH_FLOAT(t, T, "linear(simt)", {
    dim3 grid(static_cast<unsigned>((N + 15) / 16), static_cast<unsigned>((M + 15) / 16));
    launch_kernel(L, "linear(simt)", grid, dim3(16, 16), 0, gemm_simt_kernel<T>,
                  static_cast<T*>(y), static_cast<const T*>(x), static_cast<const T*>(w),
                  static_cast<const T*>(bias), M, K, N, w_transposed ? 1 : 0);
  });
}

}  // namespace bmsys::rt::cuda
