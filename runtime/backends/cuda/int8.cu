// Kernels of `linear_int8` (int8.h): per-token activation quantization, the int32 ->
// float rescale, a SIMT INT8 GEMM fallback, the weight-only INT8 GEMV for decode, weight
// dequantization for weight-only prefill, and random INT8 weights for benchmarks.
//
// Float arithmetic that the CPU reference does in a fixed order (the quantization
// scale, x / s, acc * s * scale + bias) is written with __f*_rn intrinsics, so nvcc
// cannot contract it into FMAs and f32 results match the CPU bit for bit.
#include <algorithm>

#include "runtime/backends/cuda/device_util.cuh"
#include "runtime/backends/cuda/int8.h"
#include "runtime/backends/cuda/kernels.h"

namespace bmsys::rt::cuda {

namespace {

constexpr int kThreads = 256;

// --- per-token quantization: one block per row ----------------------------------------
template <class T>
__global__ void __launch_bounds__(kThreads) quantize_rows_kernel(int8_t* xq, float* s, const T* x,
                                                                 int64_t K) {
  pdl_trigger();
  pdl_wait();
  __shared__ float sh[33];
  const int64_t m = blockIdx.x;
  const T* xr = x + m * K;
  float amax = 0.f;
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) amax = fmaxf(amax, fabsf(to_f(xr[k])));
  amax = block_max(amax, sh);
  const float sx = amax > 0.f ? __fdiv_rn(amax, 127.f) : 1.f;
  if (threadIdx.x == 0) s[m] = sx;
  int8_t* qr = xq + m * K;
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
    float v = rintf(__fdiv_rn(to_f(xr[k]), sx));  // round half to even, as nearbyint
    v = fminf(fmaxf(v, -127.f), 127.f);
    qr[k] = static_cast<int8_t>(v);
  }
}

// --- rescale ----------------------------------------------------------------------------
template <class T>
__global__ void rescale_kernel(T* y, const int32_t* acc, const float* s, const float* scale,
                               const T* bias, int64_t M, int64_t N) {
  pdl_trigger();
  pdl_wait();
  const int64_t total = M * N;
  for (int64_t i = gtid(); i < total; i += gstride()) {
    const int64_t m = i / N, n = i - m * N;
    float v = __fmul_rn(__fmul_rn(static_cast<float>(acc[i]), s[m]), scale[n]);
    v = __fadd_rn(v, bias ? to_f(bias[n]) : 0.f);
    y[i] = from_f<T>(v);
  }
}

// --- SIMT INT8 GEMM (fallback): 16x16 tiles, int32 accumulation ---------------------------
__global__ void gemm_int8_simt_kernel(int32_t* acc, const int8_t* xq, const int8_t* q, int64_t M,
                                      int64_t K, int64_t N) {
  pdl_trigger();
  pdl_wait();
  __shared__ int xs[16][17], ws[16][17];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t row = (int64_t)blockIdx.y * 16 + ty, col = (int64_t)blockIdx.x * 16 + tx;
  const int64_t wn = (int64_t)blockIdx.x * 16 + ty;
  int32_t sum = 0;
  for (int64_t k0 = 0; k0 < K; k0 += 16) {
    xs[ty][tx] = (row < M && k0 + tx < K) ? xq[row * K + k0 + tx] : 0;
    ws[ty][tx] = (wn < N && k0 + tx < K) ? q[wn * K + k0 + tx] : 0;
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < 16; ++kk) sum += xs[ty][kk] * ws[tx][kk];
    __syncthreads();
  }
  if (row < M && col < N) acc[row * N + col] = sum;
}

// --- weight-only GEMV --------------------------------------------------------------------
// Four signed bytes of `w` to floats, exactly: with the sign bit flipped, byte b is
// u = b + 128 in [0, 255]; the float with bits 0x4B0000uu is 2^23 + u, and subtracting
// 2^23 + 128 leaves b. One byte permute and one add per weight (no int->float convert).
__device__ __forceinline__ void unpack4(uint32_t w, float* f) {
  const uint32_t u = w ^ 0x80808080u;
  f[0] = __int_as_float(__byte_perm(u, 0x4B000000u, 0x7440)) - 8388736.f;
  f[1] = __int_as_float(__byte_perm(u, 0x4B000000u, 0x7441)) - 8388736.f;
  f[2] = __int_as_float(__byte_perm(u, 0x4B000000u, 0x7442)) - 8388736.f;
  f[3] = __int_as_float(__byte_perm(u, 0x4B000000u, 0x7443)) - 8388736.f;
}

// Dot product of 16 weights (one 16-byte pack) with 16 elements of x starting at xp.
template <class T>
__device__ __forceinline__ float dot16(const float* wf, const T* xp, float acc) {
  constexpr int PN = Pack<T>::N;  // 4 (f32) or 8 (f16/bf16)
#pragma unroll
  for (int p = 0; p < 16 / PN; ++p) {
    const Pack<T> xv = load_pack(xp + p * PN);
#pragma unroll
    for (int e = 0; e < PN; ++e) acc = fmaf(to_f(xv.v[e]), wf[p * PN + e], acc);
  }
  return acc;
}

// 16 warps a block, two blocks an SM (64 registers), persistent: bmsys-gemv-lab measured
// a decode layer's INT8 GEMVs 7.5% faster this way than with a block per 8 rows (x is
// staged once per block, and no block waits behind a wave).
constexpr int kGemvI8Warps = 16;
// Blocks an SM: two at 64 registers for one row of x; one for more rows (their
// accumulators, without spilling).
constexpr int gemv_i8_blocks_per_sm(int mt) { return mt == 1 ? 2 : 1; }

// The weights of one launch: up to kGemvMaxJobs sharing x, their rows one after another.
struct Int8Jobs {
  Int8GemvJob j[kGemvMaxJobs];
  int n = 0;
  bool early = true;  // Launch::early_loads: the first packs may load before griddepcontrol.wait
};

// Warp gw of the grid computes rows gw, gw + W, ... (W warps in all) of the jobs' rows laid
// end to end; each lane streams 16-byte packs of q[n,:] (U in flight, 512 contiguous
// bytes per warp-wide load, kept out of L1). The first packs of the first row are loaded
// before griddepcontrol.wait (where no earlier kernel of the flush writes the weights), those
// of the next row as soon as a row is summed. XS: x is staged once per block in shared
// memory (VEC and M x K of at most kGemvI8MaxXBytes). A job's rows compute exactly what
// they compute in a launch of their own.
constexpr int64_t kGemvI8MaxXBytes = 64 << 10;

template <class T, int MT, bool VEC, bool XS, int U>
__global__ void __launch_bounds__(kGemvI8Warps * 32, gemv_i8_blocks_per_sm(MT)) gemv_int8_kernel(const Int8Jobs jobs,
                                                                                         const T* x, int M,
                                                                                         int64_t K) {
  pdl_trigger();
  pdl_wait_unless(jobs.early);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t total = jobs.j[0].N + (jobs.n > 1 ? jobs.j[1].N : 0) + (jobs.n > 2 ? jobs.j[2].N : 0);
  const int64_t W = static_cast<int64_t>(gridDim.x) * kGemvI8Warps;
  const int64_t nv = K / 16;
  // Row r of the jobs laid end to end: its job, by constant indices only (a dynamic index
  // would copy the parameter struct to local memory), and its row n within the job.
  struct Row {
    int64_t n, N;
    T* y;
    const float* scale;
    const T* bias;
    const int8_t* q;
  };
  auto row_of = [&](int64_t r) {
    Row o;
    int jb = 0;
    o.n = r;
    if (jobs.n > 1 && o.n >= jobs.j[0].N) {
      o.n -= jobs.j[0].N;
      jb = 1;
      if (jobs.n > 2 && o.n >= jobs.j[1].N) {
        o.n -= jobs.j[1].N;
        jb = 2;
      }
    }
    o.N = jb == 0 ? jobs.j[0].N : jb == 1 ? jobs.j[1].N : jobs.j[2].N;
    o.y = static_cast<T*>(jb == 0 ? jobs.j[0].y : jb == 1 ? jobs.j[1].y : jobs.j[2].y);
    o.scale = jb == 0 ? jobs.j[0].scale : jb == 1 ? jobs.j[1].scale : jobs.j[2].scale;
    o.bias = static_cast<const T*>(jb == 0 ? jobs.j[0].bias : jb == 1 ? jobs.j[1].bias : jobs.j[2].bias);
    o.q = jb == 0 ? jobs.j[0].q : jb == 1 ? jobs.j[1].q : jobs.j[2].q;
    return o;
  };
  int64_t r = static_cast<int64_t>(blockIdx.x) * kGemvI8Warps + warp;
  uint4 wv[U];
  auto first_packs = [&](int64_t rr) {
    if (!VEC || rr >= total) return;
    const Row o = row_of(rr);
    const uint4* wp = reinterpret_cast<const uint4*>(o.q + o.n * K);
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (u * 32 + lane < nv) wv[u] = load_stream16(wp + u * 32 + lane);
  };
  first_packs(r);
  pdl_wait();
  const T* xb = x;
  if constexpr (XS) {
    extern __shared__ uint4 gemv_i8_smem[];
    T* xs = reinterpret_cast<T*>(gemv_i8_smem);
    stage_packs(xs, x, M * K);
    xb = xs;
  }
  for (; r < total; r += W) {
    const Row o = row_of(r);
    const int8_t* wr = o.q + o.n * K;
    float acc[MT];
#pragma unroll
    for (int m = 0; m < MT; ++m) acc[m] = 0.f;
    if (VEC) {
      const uint4* wp = reinterpret_cast<const uint4*>(wr);
      for (int64_t base = 0; base < nv; base += 32 * U) {
        if (base > 0) {
#pragma unroll
          for (int u = 0; u < U; ++u) {
            const int64_t idx = base + u * 32 + lane;
            if (idx < nv) wv[u] = load_stream16(wp + idx);
          }
        }
#pragma unroll
        for (int u = 0; u < U; ++u) {
          const int64_t idx = base + u * 32 + lane;
          if (idx < nv) {
            float wf[16];
            unpack4(wv[u].x, wf);
            unpack4(wv[u].y, wf + 4);
            unpack4(wv[u].z, wf + 8);
            unpack4(wv[u].w, wf + 12);
#pragma unroll
            for (int m = 0; m < MT; ++m)
              if (m < M) acc[m] = dot16<T>(wf, xb + m * K + idx * 16, acc[m]);
          }
        }
      }
    } else {
      for (int64_t k = lane; k < K; k += 32) {
        const float wk = static_cast<float>(wr[k]);
#pragma unroll
        for (int m = 0; m < MT; ++m)
          if (m < M) acc[m] = fmaf(to_f(x[m * K + k]), wk, acc[m]);
      }
    }
#pragma unroll
    for (int m = 0; m < MT; ++m) acc[m] = warp_sum(acc[m]);
    first_packs(r + W);  // the next row's first round, while this one is stored
    const float sc = o.scale[o.n], bv = o.bias ? to_f(o.bias[o.n]) : 0.f;
#pragma unroll
    for (int m = 0; m < MT; ++m)
      if (m < M && lane == m) o.y[m * o.N + o.n] = from_f<T>(acc[m] * sc + bv);
  }
}

template <class T>
__global__ void dequantize_kernel(T* w, const int8_t* q, const float* scale, int64_t N, int64_t K) {
  pdl_trigger();
  pdl_wait();
  const int64_t total = N * K;
  for (int64_t i = gtid(); i < total; i += gstride())
    w[i] = from_f<T>(static_cast<float>(q[i]) * scale[i / K]);
}

__device__ __forceinline__ uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

__global__ void fill_random_int8_kernel(int8_t* dst, int64_t n, uint64_t seed) {
  pdl_trigger();
  pdl_wait();
  for (int64_t i = gtid(); i < n; i += gstride())
    dst[i] = static_cast<int8_t>(static_cast<int>(mix64(seed * 0x2545f4914f6cdd1dull + (uint64_t)i) % 255u) - 127);
}

template <class T, int MT, bool VEC, bool XS, int U>
void launch_gemv_int8(const Launch& L, const Int8Jobs& jobs, const T* x, int64_t M, int64_t K, unsigned grid) {
  const int64_t smem = XS ? (M * K * static_cast<int64_t>(sizeof(T)) + 15) / 16 * 16 : 0;
  if constexpr (XS)  // x of up to 64 KB
    allow_dynamic_smem(reinterpret_cast<const void*>(gemv_int8_kernel<T, MT, VEC, XS, U>),
                       static_cast<int>(kGemvI8MaxXBytes), "linear_int8(gemv)");
  launch_kernel(L, "linear_int8(gemv)", grid, kGemvI8Warps * 32, static_cast<size_t>(smem),
                gemv_int8_kernel<T, MT, VEC, XS, U>, jobs, x, static_cast<int>(M), K);
}

// A grid of the blocks that are resident at once, at most. Loads in flight per lane: 8
// for one row of x (a K = 4096 row in one round), else 4 (registers).
template <class T, int MT>
void launch_gemv_int8_m(const Launch& L, const Int8Jobs& jobs, const T* x, int64_t M, int64_t K, bool vec) {
  int64_t total = 0;  // a warp per row of all jobs
  for (int i = 0; i < jobs.n; ++i) total += jobs.j[i].N;
  const int num_sms = sm_count("linear_int8(gemv)");
  const int64_t blocks = (total + kGemvI8Warps - 1) / kGemvI8Warps;
  const unsigned grid =
      static_cast<unsigned>(std::min<int64_t>(blocks, static_cast<int64_t>(gemv_i8_blocks_per_sm(MT)) * num_sms));
  const bool xs = vec && M * K * static_cast<int64_t>(sizeof(T)) <= kGemvI8MaxXBytes;
  constexpr int U = MT == 1 ? 8 : 4;
  if (xs)
    launch_gemv_int8<T, MT, true, true, U>(L, jobs, x, M, K, grid);
  else if (vec)
    launch_gemv_int8<T, MT, true, false, U>(L, jobs, x, M, K, grid);
  else
    launch_gemv_int8<T, MT, false, false, U>(L, jobs, x, M, K, grid);
}

}  // namespace

void quantize_rows(const Launch& L, DType t, int8_t* xq, float* s, const void* x, int64_t M,
                   int64_t K) {
  BMSYS_DISPATCH_FLOAT(t, T, "linear_int8(quantize)", {
    launch_kernel(L, "linear_int8(quantize)", static_cast<unsigned>(M), kThreads, 0,
                  quantize_rows_kernel<T>, xq, s, static_cast<const T*>(x), K);
  });
}

void rescale_int32(const Launch& L, DType t, void* y, const int32_t* acc, const float* s,
                   const float* scale, const void* bias, int64_t M, int64_t N) {
  BMSYS_DISPATCH_FLOAT(t, T, "linear_int8(rescale)", {
    launch_kernel(L, "linear_int8(rescale)", grid_for(M * N, kThreads, 132 * 16), kThreads, 0,
                  rescale_kernel<T>, static_cast<T*>(y), acc, s, scale,
                  static_cast<const T*>(bias), M, N);
  });
}

void gemm_int8_simt(const Launch& L, int32_t* acc, const int8_t* xq, const int8_t* q, int64_t M,
                    int64_t K, int64_t N) {
  dim3 grid(static_cast<unsigned>((N + 15) / 16), static_cast<unsigned>((M + 15) / 16));
  launch_kernel(L, "linear_int8(simt)", grid, dim3(16, 16), 0, gemm_int8_simt_kernel, acc, xq, q,
                M, K, N);
}

void gemv_int8(const Launch& L, DType t, const void* x, int64_t M, int64_t K, const Int8GemvJob* jobs,
               int njobs, bool tensor_cores) {
  if (M < 1 || M > kGemvMaxRows) fail("cuda backend: linear_int8 gemv: {} rows (at most {})", M, kGemvMaxRows);
  if (njobs < 1 || njobs > kGemvMaxJobs) fail("cuda backend: linear_int8 gemv: {} weights (1 to {})", njobs, kGemvMaxJobs);
  Int8Jobs js;
  js.n = njobs;
  js.early = L.early_loads;
  bool vec = K % 16 == 0 && aligned16(x);
  for (int i = 0; i < njobs; ++i) {
    js.j[i] = jobs[i];
    vec = vec && aligned16(jobs[i].q);
  }
  if (tensor_cores && vec && gemv_int8_mma_fits(t, M, K)) {
    gemv_int8_mma(L, t, x, M, K, jobs, njobs);
    return;
  }
  BMSYS_DISPATCH_FLOAT(t, T, "linear_int8(gemv)", {
    const T* xt = static_cast<const T*>(x);
    if (M == 1) launch_gemv_int8_m<T, 1>(L, js, xt, M, K, vec);
    else if (M == 2) launch_gemv_int8_m<T, 2>(L, js, xt, M, K, vec);
    else if (M <= 4) launch_gemv_int8_m<T, 4>(L, js, xt, M, K, vec);
    else launch_gemv_int8_m<T, 8>(L, js, xt, M, K, vec);
  });
}

void gemv_int8(const Launch& L, DType t, void* y, const void* x, const int8_t* q,
               const float* scale, const void* bias, int64_t M, int64_t K, int64_t N,
               bool tensor_cores) {
  Int8GemvJob j;
  j.q = q;
  j.scale = scale;
  j.bias = bias;
  j.y = y;
  j.N = N;
  gemv_int8(L, t, x, M, K, &j, 1, tensor_cores);
}

void dequantize_rows(const Launch& L, DType t, void* w, const int8_t* q, const float* scale,
                     int64_t N, int64_t K) {
  BMSYS_DISPATCH_FLOAT(t, T, "linear_int8(dequantize)", {
    launch_kernel(L, "linear_int8(dequantize)", grid_for(N * K, kThreads, 132 * 32), kThreads, 0,
                  dequantize_kernel<T>, static_cast<T*>(w), q, scale, N, K);
  });
}

void fill_random_int8(const Launch& L, int8_t* dst, int64_t n, uint64_t seed) {
  launch_kernel(L, "fill_random(i8)", grid_for(n, kThreads, 132 * 64), kThreads, 0,
                fill_random_int8_kernel, dst, n, seed);
}

}  // namespace bmsys::rt::cuda
