// Matrix-vector products for decode (a few rows of x against [N,K] weights) and the
// plain SIMT GEMM fallback.
//
// GEMV (the row kernel): one warp per output column n, 16 warps per block; each lane
// streams 16-byte packs of the weight row, 4-8 loads in flight, coalesced across the warp
// (512 contiguous bytes per load instruction) and kept out of L1; x is staged once per
// block in shared memory (normalized there when a norm is fused). The first packs are
// loaded before griddepcontrol.wait where no earlier kernel of the flush writes the weights
// (Launch::early_loads), so under PDL the weight stream starts while the previous kernel
// drains. Up to three
// weights sharing x (q/k/v, gate/up) run in one launch, with an elementwise or swiglu
// epilogue. On an H200 it takes 7-26% less time than cuBLASLt's GEMV on the 7B decode
// shapes, without its split-K reduce (docs/cuda.md, "Session 7").
#include <type_traits>

#include "runtime/backends/cuda/device_util.cuh"
#include "runtime/backends/cuda/kernels.h"

namespace bmsys::rt::cuda {

namespace {

// 16 warps a block: x is staged once for 16 rows (measured on an H200: 2% faster than 8
// over a decode layer's GEMVs). At 64 registers two blocks fill an SM.
constexpr int kGemvWarps = 16;

template <class T>
struct GemvK {
  const T* x;
  int64_t M, K;
  const T* w[kGemvMaxJobs];
  const T* bias[kGemvMaxJobs];
  T* y[kGemvMaxJobs];
  int64_t N[kGemvMaxJobs];
  int64_t block_start[kGemvMaxJobs + 1];  // register kernel: first block of each job
  int64_t row_start[kGemvMaxJobs + 1];    // pipelined kernel: first row of each job
  int epi[kGemvMaxJobs];
  const T* other[kGemvMaxJobs];
  T* out[kGemvMaxJobs];
  int njobs;
  // Fused RMS norm: x = rms_norm(norm_x, gamma), written to x by block 0; its statistics
  // in the order of a norm kernel of norm_threads threads.
  const T* norm_x;
  const T* gamma;
  float eps;
  int norm_threads;
  // SwiGLU over jobs 0 and 1 (gate, up; equal N): a block computes the same rows of both
  // (its first half of warps gate's, the second up's) and writes out[0] = silu(y0) * y1.
  int pair;
  bool early;  // Launch::early_loads: the first weights may load before griddepcontrol.wait
};

// Writes y (+bias) for row m of output n of job j, and the epilogue's result; returns y
// as stored.
template <class T>
__device__ __forceinline__ float gemv_store(const GemvK<T>& a, int j, int64_t m, int64_t n, float acc) {
  const int64_t N = a.N[j];
  const float bv = a.bias[j] ? to_f(a.bias[j][n]) : 0.f;
  const T yv = from_f<T>(acc + bv);
  a.y[j][m * N + n] = yv;
  const int e = a.epi[j];
  const float v = to_f(yv);
  if (e == 0) return v;
  float r = v;
  switch (e) {
    case (int)GemvEpilogue::Add: r = v + to_f(a.other[j][m * N + n]); break;
    case (int)GemvEpilogue::Mul: r = v * to_f(a.other[j][m * N + n]); break;
    case (int)GemvEpilogue::Silu: r = v / (1.f + expf(-v)); break;
    case (int)GemvEpilogue::GeluTanh: {
      const float k = 0.7978845608028654f;
      r = 0.5f * v * (1.f + tanhf(k * (v + 0.044715f * v * v * v)));
      break;
    }
    case (int)GemvEpilogue::GeluErf: r = 0.5f * v * (1.f + erff(v * 0.7071067811865476f)); break;
  }
  a.out[j][m * N + n] = from_f<T>(r);
  return v;
}

template <class T, bool VEC>
struct Lane;
template <class T>
struct Lane<T, true> {
  static constexpr int N = Pack<T>::N;
  Pack<T> p;
  __device__ __forceinline__ void load_w(const T* ptr) {
    *reinterpret_cast<uint4*>(&p) = load_stream16(ptr);
  }
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

// x -> shared memory, through the fused RMS norm when NORM: the rows are staged as they
// are, their statistics taken from shared memory in the order of the norm kernel that the
// fusion replaces (a.norm_threads threads: rms_norm's 128 or add_rms_norm's 256; the
// block has at least that many), then normalized in place; block 0 also writes the
// norm's output to x. Ends with a barrier.
template <class T, bool NORM>
__device__ __forceinline__ void stage_x(const GemvK<T>& a, T* xs) {
  constexpr int PN = Pack<T>::N;
  const int64_t K = a.K, nv = K / PN;
  if constexpr (NORM) {
    __shared__ float inv_s[kGemvMaxRows];
    __shared__ float red[33];
    stage_packs(xs, a.norm_x, a.M * K);
    for (int m = 0; m < a.M; ++m) {
      const float ss = row_sum_squares(xs + m * K, K, true, 0.f, red, a.norm_threads);
      if (threadIdx.x == 0) inv_s[m] = rsqrtf(ss / static_cast<float>(K) + a.eps);
    }
    __syncthreads();
    T* xo = const_cast<T*>(a.x);
    for (int m = 0; m < a.M; ++m)
      for (int64_t j = threadIdx.x; j < nv; j += blockDim.x) {
        Pack<T> p = load_pack(xs + m * K + j * PN);
        const Pack<T> g = load_pack(a.gamma + j * PN);
#pragma unroll
        for (int e = 0; e < PN; ++e) p.v[e] = from_f<T>(to_f(p.v[e]) * inv_s[m] * to_f(g.v[e]));
        store_pack(xs + m * K + j * PN, p);
        if (blockIdx.x == 0) store_pack(xo + m * K + j * PN, p);
      }
    __syncthreads();
  } else {
    stage_packs(xs, a.x, a.M * K);
  }
}

// XS: x staged in shared memory (VEC, and M x K fits kPipeMaxXBytes), NORM: through the
// fused RMS norm (needs XS). Otherwise lanes read x from global memory (L1).
// At most 64 registers: 1024 threads an SM.
template <class T, int MT, bool VEC, bool XS, bool NORM>
__global__ void __launch_bounds__(kGemvWarps * 32, 1024 / (kGemvWarps * 32)) gemv_kernel(GemvK<T> a) {
  pdl_trigger();
  pdl_wait_unless(a.early);
  using LV = Lane<T, VEC>;
  constexpr int PN = LV::N;
  // 16-byte loads in flight per lane: 8 for one row of 2-byte elements (a K = 4096 row in
  // two rounds, with the SM full of warps), else 4 (registers).
  constexpr int U = (sizeof(T) == 2 && MT == 1) ? 8 : 4;
  constexpr int kHalf = kGemvWarps / 2;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  int j = 0;
  int64_t n;
  if (a.pair) {
    j = warp >= kHalf;
    n = (int64_t)blockIdx.x * kHalf + warp % kHalf;
  } else {
    while (j + 1 < a.njobs && (int64_t)blockIdx.x >= a.block_start[j + 1]) ++j;
    n = ((int64_t)blockIdx.x - a.block_start[j]) * kGemvWarps + warp;
  }
  const bool active = n < a.N[j];
  const T* wr = a.w[j] + (active ? n : 0) * a.K;
  const int64_t nv = a.K / PN;

  // The first packs, before griddepcontrol.wait. Inside a branch on purpose: ptxas keeps
  // the wait below a divergent branch, but hoisted it above these loads when they were
  // only predicated (`active && idx < nv`; cuobjdump showed ACQBULK first), so the weight
  // stream waited for the previous kernel after all. scripts/gpu/check_sass.py checks the
  // order in every GEMV kernel on the GPU machine.
  LV wv[U];
  if (active) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t idx = u * 32 + lane;
      if (idx < nv) wv[u].load_w(wr + idx * PN);
    }
  }
  pdl_wait();
  const T* xb = a.x;
  if constexpr (XS) {
    extern __shared__ uint4 gemv_smem[];
    T* xs = reinterpret_cast<T*>(gemv_smem);
    stage_x<T, NORM>(a, xs);
    xb = xs;
  }

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
            xv.load(xb + m * a.K + idx * PN);
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
  __shared__ float pair_y[kGemvWarps][MT];
  if (lane == 0 && active) {
#pragma unroll
    for (int m = 0; m < MT; ++m)
      if (m < a.M) pair_y[warp][m] = gemv_store(a, j, m, n, acc[m]);
  }
  if (a.pair) {  // as the swiglu kernel: silu(gate) * up from the stored (rounded) values
    __syncthreads();
    const int r = threadIdx.x % kHalf, m = threadIdx.x / kHalf;
    const int64_t nr = (int64_t)blockIdx.x * kHalf + r;
    if (m < MT && m < a.M && nr < a.N[0]) {
      const float g = pair_y[r][m], u = pair_y[kHalf + r][m];
      a.out[0][m * a.N[0] + nr] = from_f<T>(g * (1.f / (1.f + expf(-g))) * u);
    }
  }
}

// --- the pipelined GEMV ---------------------------------------------------------------
// Each warp owns rows gw, gw + W, ... (W warps in the grid) of the jobs' concatenated
// outputs and streams their weights as 512-byte chunks (16 bytes per lane) through a
// private ring of kDepth shared-memory slots filled by cp.async: kDepth chunks (8 KB) are
// in flight per warp without holding registers, across row boundaries. Each lane reads
// back only what it copied itself, so no barrier is needed (cp.async.wait_group orders
// the thread's own copies). The first kDepth copies are issued before griddepcontrol.wait.
constexpr int kPipeWarps = 4;
constexpr int kDepth = 16;

__device__ __forceinline__ void cp_async16(void* smem, const void* g) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(g) : "memory");
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

constexpr int64_t kPipeMaxXBytes = 64 << 10;  // x (M x K) staged in shared memory

template <class T, int MT, bool NORM>
__global__ void __launch_bounds__(kPipeWarps * 32) gemv_pipe_kernel(GemvK<T> a, int64_t xbytes) {
  pdl_trigger();
  pdl_wait_unless(a.early);
  constexpr int PN = Pack<T>::N;
  extern __shared__ uint4 gemv_smem[];
  T* const xs = reinterpret_cast<T*>(gemv_smem);
  uint4 (*stage)[kDepth][32] = reinterpret_cast<uint4 (*)[kDepth][32]>(gemv_smem + xbytes / 16);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t gw = (int64_t)blockIdx.x * kPipeWarps + warp;
  const int64_t W = (int64_t)gridDim.x * kPipeWarps;
  const int64_t R = a.row_start[a.njobs];
  const int64_t K = a.K, nv = K / PN, C = (nv + 31) / 32;
  const int64_t nrows = gw < R ? (R - 1 - gw) / W + 1 : 0;
  const int64_t total = nrows * C;

  // Producer (cp.async issue) and consumer positions are kept as counters: no divisions
  // in the loop.
  int64_t pc = 0, pi = 0, issued = 0;
  int pslot = 0;
  const T* wrow = nullptr;
  auto set_row = [&](int64_t ri) {
    const int64_t r = gw + ri * W;
    int j = 0;
    while (j + 1 < a.njobs && r >= a.row_start[j + 1]) ++j;
    wrow = a.w[j] + (r - a.row_start[j]) * K;
  };
  auto produce = [&]() {
    const int64_t pk = pc * 32 + lane;
    if (pk < nv) cp_async16(&stage[warp][pslot][lane], wrow + pk * PN);
    pslot = (pslot + 1) & (kDepth - 1);
    if (++pc == C) {
      pc = 0;
      if (++pi < nrows) set_row(pi);
    }
    ++issued;
  };
  if (total > 0) set_row(0);
#pragma unroll 1
  for (int s = 0; s < kDepth; ++s) {
    if (issued < total) produce();
    cp_commit();
  }
  pdl_wait();

  stage_x<T, NORM>(a, xs);

  float acc[MT];
#pragma unroll
  for (int m = 0; m < MT; ++m) acc[m] = 0.f;
  int64_t c = 0, i = 0;
  int slot = 0;
  for (int64_t s = 0; s < total; ++s) {
    cp_wait<kDepth - 1>();
    const int64_t pk = c * 32 + lane;
    if (pk < nv) {
      Pack<T> wv;
      *reinterpret_cast<uint4*>(&wv) = stage[warp][slot][lane];
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        if (m < a.M) {
          const Pack<T> xv = load_pack(xs + m * K + pk * PN);
          float t = 0.f;
#pragma unroll
          for (int e = 0; e < PN; ++e) t = fmaf(to_f(wv.v[e]), to_f(xv.v[e]), t);
          acc[m] += t;
        }
      }
    }
    if (issued < total) produce();
    cp_commit();
    if (c == C - 1) {
      const int64_t r = gw + i * W;
      int j = 0;
      while (j + 1 < a.njobs && r >= a.row_start[j + 1]) ++j;
      const int64_t n = r - a.row_start[j];
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        const float v = warp_sum(acc[m]);
        if (lane == 0 && m < a.M) gemv_store(a, j, m, n, v);
        acc[m] = 0.f;
      }
    }
    slot = (slot + 1) & (kDepth - 1);
    if (++c == C) {
      c = 0;
      ++i;
    }
  }
  cp_wait<0>();
}

template <class T, int MT, bool NORM>
void launch_pipe(const Launch& L, const GemvK<T>& a, int num_sms) {
  const int64_t R = a.row_start[a.njobs];
  const int64_t xbytes = (a.M * a.K * static_cast<int64_t>(sizeof(T)) + 15) / 16 * 16;
  const int64_t smem = xbytes + kPipeWarps * kDepth * 32 * 16;
  int64_t per_sm = (225 << 10) / smem;
  if (per_sm > 6) per_sm = 6;
  if (per_sm < 1) per_sm = 1;
  const int64_t max_warps = static_cast<int64_t>(num_sms) * per_sm * kPipeWarps;
  const int64_t per_warp = (R + max_warps - 1) / max_warps;
  const int64_t warps = (R + per_warp - 1) / per_warp;
  const unsigned grid = static_cast<unsigned>((warps + kPipeWarps - 1) / kPipeWarps);
  static bool attrs_set = false;  // several blocks of 40-100 KB per SM: the large carveout
  if (!attrs_set) {
    check_cuda(cudaFuncSetAttribute(gemv_pipe_kernel<T, MT, NORM>,
                                    cudaFuncAttributePreferredSharedMemoryCarveout,
                                    cudaSharedmemCarveoutMaxShared),
               "cudaFuncSetAttribute", "linear(gemv)");
    check_cuda(cudaFuncSetAttribute(gemv_pipe_kernel<T, MT, NORM>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(kPipeMaxXBytes + kPipeWarps * kDepth * 32 * 16)),
               "cudaFuncSetAttribute", "linear(gemv)");
    attrs_set = true;
  }
  launch_kernel(L, "linear(gemv)", grid, kPipeWarps * 32, static_cast<size_t>(smem),
                gemv_pipe_kernel<T, MT, NORM>, a, xbytes);
}

// The row kernel; xs: stage x in shared memory (then norm may be set).
template <class T, int MT, bool VEC, bool XS, bool NORM>
void launch_row(const Launch& L, const GemvK<T>& a) {
  const unsigned grid = static_cast<unsigned>(a.block_start[a.njobs]);
  const int64_t smem = XS ? (a.M * a.K * static_cast<int64_t>(sizeof(T)) + 15) / 16 * 16 : 0;
  if constexpr (XS)  // x of up to 64 KB
    allow_dynamic_smem(reinterpret_cast<const void*>(gemv_kernel<T, MT, VEC, XS, NORM>),
                       static_cast<int>(kPipeMaxXBytes), "linear(gemv)");
  launch_kernel(L, "linear(gemv)", grid, kGemvWarps * 32, static_cast<size_t>(smem),
                gemv_kernel<T, MT, VEC, XS, NORM>, a);
}

template <class T, int MT>
void launch_row_m(const Launch& L, const GemvK<T>& a, bool vec, bool xs, bool norm) {
  if (norm) launch_row<T, MT, true, true, true>(L, a);
  else if (xs) launch_row<T, MT, true, true, false>(L, a);
  else if (vec) launch_row<T, MT, true, false, false>(L, a);
  else launch_row<T, MT, false, false, false>(L, a);
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

template <class T, bool NORM>
void launch_pipe_m(const Launch& L, const GemvK<T>& a, int64_t M, int num_sms) {
  if (M == 1) launch_pipe<T, 1, NORM>(L, a, num_sms);
  else if (M == 2) launch_pipe<T, 2, NORM>(L, a, num_sms);
  else if (M <= 4) launch_pipe<T, 4, NORM>(L, a, num_sms);
  else launch_pipe<T, 8, NORM>(L, a, num_sms);
}

void gemv(const Launch& L, DType t, const void* x, int64_t M, int64_t K, const GemvJob* jobs,
          int njobs, int num_sms, int variant, const GemvNorm* norm) {
  if (M < 1 || M > kGemvMaxRows || njobs < 1 || njobs > kGemvMaxJobs)
    fail("cuda backend: gemv: {} rows, {} weights", M, njobs);
  BMSYS_DISPATCH_FLOAT(t, T, "linear(gemv)", {
    GemvK<T> a{};
    a.early = L.early_loads;
    a.x = static_cast<const T*>(x);
    a.M = M;
    a.K = K;
    a.njobs = njobs;
    bool vec = K % Pack<T>::N == 0 && aligned16(x);
    a.block_start[0] = 0;
    a.row_start[0] = 0;
    for (int j = 0; j < njobs; ++j) {
      a.w[j] = static_cast<const T*>(jobs[j].w);
      a.bias[j] = static_cast<const T*>(jobs[j].bias);
      a.y[j] = static_cast<T*>(jobs[j].y);
      a.N[j] = jobs[j].N;
      a.epi[j] = static_cast<int>(jobs[j].epi);
      a.other[j] = static_cast<const T*>(jobs[j].other);
      a.out[j] = static_cast<T*>(jobs[j].out);
      vec = vec && aligned16(jobs[j].w);
      a.block_start[j + 1] = a.block_start[j] + (jobs[j].N + kGemvWarps - 1) / kGemvWarps;
      a.row_start[j + 1] = a.row_start[j] + jobs[j].N;
    }
    if (jobs[0].epi == GemvEpilogue::SwiGlu) {
      if (njobs != 2 || jobs[1].N != jobs[0].N || jobs[1].epi != GemvEpilogue::None)
        fail("cuda backend: gemv: a SwiGLU epilogue needs two weights (gate, up) of equal rows");
      a.pair = 1;
      a.epi[0] = 0;
      a.block_start[njobs] = (jobs[0].N + kGemvWarps / 2 - 1) / (kGemvWarps / 2);
    }
    const bool x_fits = M * K * static_cast<int64_t>(sizeof(T)) <= kPipeMaxXBytes;
    const bool pipe_variant = variant == 1 || variant == 3;
    if (norm) {
      if (!vec || !x_fits || !aligned16(norm->x) || !aligned16(norm->gamma))
        fail("cuda backend: gemv: a fused rms_norm needs 16-byte rows and x of at most {} bytes",
             kPipeMaxXBytes);
      if (norm->threads < 1 || norm->threads > kGemvWarps * 32 || norm->threads % 32)
        fail("cuda backend: gemv: a fused norm's order of {} threads", norm->threads);
      a.norm_x = static_cast<const T*>(norm->x);
      a.gamma = static_cast<const T*>(norm->gamma);
      a.eps = norm->eps;
      a.norm_threads = norm->threads;
    }
    // The pipelined kernel's 128-thread blocks repeat only a 128-thread norm's order.
    if (pipe_variant && vec && x_fits && !a.pair && (!norm || norm->threads <= kPipeWarps * 32)) {
      if (norm) launch_pipe_m<T, true>(L, a, M, num_sms);
      else launch_pipe_m<T, false>(L, a, M, num_sms);
      return;
    }
    const bool xs = vec && x_fits;
    if (M == 1) launch_row_m<T, 1>(L, a, vec, xs, norm != nullptr);
    else if (M == 2) launch_row_m<T, 2>(L, a, vec, xs, norm != nullptr);
    else if (M <= 4) launch_row_m<T, 4>(L, a, vec, xs, norm != nullptr);
    else launch_row_m<T, 8>(L, a, vec, xs, norm != nullptr);
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

namespace bmsys::rt::cuda {
bool gemv_stages_x(DType t, const void* x, int64_t M, int64_t K, const GemvJob* jobs, int njobs) {
  const int64_t pn = 16 / static_cast<int64_t>(dtype_size(t));
  bool ok = (t == DType::F32 || t == DType::F16 || t == DType::BF16) && K % pn == 0 && aligned16(x) &&
            M * K * static_cast<int64_t>(dtype_size(t)) <= kPipeMaxXBytes;
  for (int j = 0; j < njobs; ++j) ok = ok && aligned16(jobs[j].w);
  return ok;
}
}  // namespace bmsys::rt::cuda
