// bmsys-gemv-lab: the design space of the batch-1 decode GEMV (runtime/backends/cuda/
// gemv.cu's row kernel and int8.cu's INT8 GEMV), measured on a Llama-7B's shapes in bf16
// and INT8: loads in flight per lane (U), warps a block, rows a warp; against a read-only
// kernel over the same bytes (the ceiling a GEMV could reach) and cuBLASLt. Each timing
// is a CUDA graph of 48 launches over distinct weights (more bytes than L2 holds), with
// and without programmatic dependent launch; then chains of a decode layer's four GEMVs
// (with and without a small kernel between them, as norm and attention are). The kernels
// here are standalone copies with the knobs as template parameters, not the shipped ones.
// Results: docs/cuda.md, "Session 7".
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "bench/lab_util.cuh"
#include "runtime/backends/cuda/device_util.cuh"

using bf16 = __nv_bfloat16;
using bmsys::lab::fill_kernel;
using bmsys::lab::launch;
using bmsys::lab::time_graph;
using bmsys::rt::cuda::load_stream16;
using bmsys::rt::cuda::pdl_trigger;
using bmsys::rt::cuda::pdl_wait;
using bmsys::rt::cuda::warp_sum;

__device__ __forceinline__ float bf_lo(uint32_t u) { return __uint_as_float(u << 16); }
__device__ __forceinline__ float bf_hi(uint32_t u) { return __uint_as_float(u & 0xffff0000u); }

struct Args {
  const void* w;
  const bf16* x;
  bf16* y;
  const float* scale;
  int N, K;
};

// --- read ceiling: each thread reads U packs of the buffer, all before the wait --------
template <int U>
__global__ void __launch_bounds__(256) read_kernel(Args a, long long bytes) {
  pdl_trigger();
  const long long np = bytes / 16;
  const long long t = blockIdx.x * 256LL + threadIdx.x, T = (long long)gridDim.x * 256;
  uint32_t s = 0;
  for (long long base = 0; base < np; base += T * U) {
    uint4 v[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const long long i = base + u * T + t;
      v[u] = i < np ? load_stream16((const uint4*)a.w + i) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) s ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  pdl_wait();
  if (s == 0x12345678u) a.y[0] = __float2bfloat16(1.f);
}

// --- dot products of one 16-byte weight pack with x (bf16 in shared memory) ------------
template <class W>
struct Dot;
template <>
struct Dot<int8_t> {
  static constexpr int E = 16;
  __device__ __forceinline__ static float run(uint4 w, const bf16* xs, float acc) {
    const uint4* xp = reinterpret_cast<const uint4*>(xs);
    const uint4 x0 = xp[0], x1 = xp[1];
    const uint32_t ws[4] = {w.x ^ 0x80808080u, w.y ^ 0x80808080u, w.z ^ 0x80808080u, w.w ^ 0x80808080u};
    const uint32_t xv[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float f0 = __int_as_float(__byte_perm(ws[i], 0x4B000000u, 0x7440)) - 8388736.f;
      const float f1 = __int_as_float(__byte_perm(ws[i], 0x4B000000u, 0x7441)) - 8388736.f;
      const float f2 = __int_as_float(__byte_perm(ws[i], 0x4B000000u, 0x7442)) - 8388736.f;
      const float f3 = __int_as_float(__byte_perm(ws[i], 0x4B000000u, 0x7443)) - 8388736.f;
      acc = fmaf(f0, bf_lo(xv[2 * i]), acc);
      acc = fmaf(f1, bf_hi(xv[2 * i]), acc);
      acc = fmaf(f2, bf_lo(xv[2 * i + 1]), acc);
      acc = fmaf(f3, bf_hi(xv[2 * i + 1]), acc);
    }
    return acc;
  }
};
template <>
struct Dot<bf16> {
  static constexpr int E = 8;
  __device__ __forceinline__ static float run(uint4 w, const bf16* xs, float acc) {
    const uint4 x = *reinterpret_cast<const uint4*>(xs);
    acc = fmaf(bf_lo(w.x), bf_lo(x.x), acc);
    acc = fmaf(bf_hi(w.x), bf_hi(x.x), acc);
    acc = fmaf(bf_lo(w.y), bf_lo(x.y), acc);
    acc = fmaf(bf_hi(w.y), bf_hi(x.y), acc);
    acc = fmaf(bf_lo(w.z), bf_lo(x.z), acc);
    acc = fmaf(bf_hi(w.z), bf_hi(x.z), acc);
    acc = fmaf(bf_lo(w.w), bf_lo(x.w), acc);
    acc = fmaf(bf_hi(w.w), bf_hi(x.w), acc);
    return acc;
  }
};

__device__ __forceinline__ void stage_x(const Args& a, bf16* xs) {
  for (int i = threadIdx.x; i < a.K / 8; i += blockDim.x)
    reinterpret_cast<uint4*>(xs)[i] = reinterpret_cast<const uint4*>(a.x)[i];
  __syncthreads();
}

// --- row kernel: R rows per warp (interleaved loads), WARPS warps a block, U packs per
// lane per row per round, all loaded before the next round is consumed.
template <class W, int U, int WARPS, int R>
__global__ void __launch_bounds__(WARPS * 32) gemv_row_kernel(Args a) {
  pdl_trigger();
  constexpr int E = Dot<W>::E;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int n0 = (blockIdx.x * WARPS + warp) * R;
  const int nv = a.K / E;
  const uint4* wp[R];
  bool act[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    act[r] = n0 + r < a.N;
    wp[r] = reinterpret_cast<const uint4*>(static_cast<const W*>(a.w) + (long long)(act[r] ? n0 + r : 0) * a.K);
  }
  uint4 wv[R][U];
  // In a branch: ptxas hoists griddepcontrol.wait above merely predicated loads
  // (scripts/gpu/check_sass.py; before session 8 this lab's row kernels waited first).
  if (act[0]) {
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int r = 0; r < R; ++r)
        if (act[r] && u * 32 + lane < nv) wv[r][u] = load_stream16(wp[r] + u * 32 + lane);
  }
  pdl_wait();
  extern __shared__ uint4 smem[];
  bf16* xs = reinterpret_cast<bf16*>(smem);
  stage_x(a, xs);
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0.f;
  for (int base = 0; base < nv; base += 32 * U) {
    if (base > 0) {
#pragma unroll
      for (int u = 0; u < U; ++u)
#pragma unroll
        for (int r = 0; r < R; ++r)
          if (act[r] && base + u * 32 + lane < nv) wv[r][u] = load_stream16(wp[r] + base + u * 32 + lane);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int idx = base + u * 32 + lane;
#pragma unroll
      for (int r = 0; r < R; ++r)
        if (act[r] && idx < nv) acc[r] = Dot<W>::run(wv[r][u], xs + idx * E, acc[r]);
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const float v = warp_sum(acc[r]);
    if (act[r] && lane == 0) a.y[n0 + r] = __float2bfloat16(v * (a.scale ? a.scale[n0 + r] : 1.f));
  }
}

// --- persistent row kernel: a grid of BPS blocks an SM; warp gw takes rows gw, gw + NW, ...
// (x staged once per block). With one block an SM the kernel holds half the register
// file, so under PDL the next kernel's block is resident early and loads its first
// round of weights while this one drains.
template <class W, int U, int WARPS>
__global__ void __launch_bounds__(WARPS * 32, 1024 / (WARPS * 32)) gemv_rowp_kernel(Args a) {
  pdl_trigger();
  constexpr int E = Dot<W>::E;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int NW = gridDim.x * WARPS;
  int n = blockIdx.x * WARPS + warp;
  const int nv = a.K / E;
  uint4 wv[U];
  auto first_round = [&](int row) {
    if (row >= a.N) return;  // a branch, as in gemv_row_kernel
    const uint4* wp = reinterpret_cast<const uint4*>(static_cast<const W*>(a.w) + (long long)row * a.K);
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (u * 32 + lane < nv) wv[u] = load_stream16(wp + u * 32 + lane);
  };
  first_round(n);
  pdl_wait();
  extern __shared__ uint4 smem[];
  bf16* xs = reinterpret_cast<bf16*>(smem);
  stage_x(a, xs);
  for (; n < a.N; n += NW) {
    const uint4* wp = reinterpret_cast<const uint4*>(static_cast<const W*>(a.w) + (long long)n * a.K);
    float acc = 0.f;
    for (int base = 0; base < nv; base += 32 * U) {
      if (base > 0) {
#pragma unroll
        for (int u = 0; u < U; ++u)
          if (base + u * 32 + lane < nv) wv[u] = load_stream16(wp + base + u * 32 + lane);
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int idx = base + u * 32 + lane;
        if (idx < nv) acc = Dot<W>::run(wv[u], xs + idx * E, acc);
      }
    }
    acc = warp_sum(acc);
    if (lane == 0) a.y[n] = __float2bfloat16(acc * (a.scale ? a.scale[n] : 1.f));
    if (n + NW < a.N) first_round(n + NW);
  }
}

// A small kernel between GEMVs (as norm / attention / swiglu are): one block per 32 SMs'
// worth, reads y, writes x.
__global__ void small_kernel(const bf16* y, bf16* x, int n) {
  pdl_trigger();
  pdl_wait();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    x[i] = __float2bfloat16(__bfloat162float(y[i]) * 0.5f + 0.25f);
}

// --- harness -------------------------------------------------------------------------------
struct Shape {
  int N, K;
};

struct Kern {
  std::string name;
  // launches the GEMV for weights w (type by the variant) of shape N x K
  std::function<void(bool, Args, cudaStream_t)> run;
};

template <class W, int U, int WARPS, int R>
Kern row_variant() {
  auto k = gemv_row_kernel<W, U, WARPS, R>;
  CK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, 32768));
  char name[64];
  std::snprintf(name, sizeof name, "row U%d W%d R%d", U, WARPS, R);
  return {name, [k](bool pdl, Args a, cudaStream_t st) {
            const int rows_per_block = WARPS * R;
            launch(pdl, dim3((a.N + rows_per_block - 1) / rows_per_block), dim3(WARPS * 32), (size_t)a.K * 2, st, k, a);
          }};
}

template <class W, int U, int WARPS>
Kern rowp_variant(int bps, int sms) {
  auto k = gemv_rowp_kernel<W, U, WARPS>;
  CK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, 32768));
  char name[64];
  std::snprintf(name, sizeof name, "persist U%d W%d x%d", U, WARPS, bps);
  return {name, [k, bps, sms](bool pdl, Args a, cudaStream_t st) {
            launch(pdl, dim3(bps * sms), dim3(WARPS * 32), (size_t)a.K * 2, st, k, a);
          }};
}

int main() {
  const int launches = 48;
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  const int sms = prop.multiProcessorCount;
  cudaStream_t st;
  CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  const std::vector<Shape> shapes = {{12288, 4096}, {4096, 4096}, {22016, 4096}, {4096, 11008}, {32000, 4096}};
  const size_t layer_elems = (size_t)(12288 + 4096 + 22016) * 4096 + (size_t)4096 * 11008;
  const int nlayers = 8;
  size_t maxbytes = layer_elems * 2;  // one layer in bf16 >= every single shape
  const int nbuf = nlayers;
  std::vector<void*> wb(nbuf);
  for (auto& p : wb) {
    CK(cudaMalloc(&p, maxbytes));
    fill_kernel<<<1024, 256>>>((uint32_t*)p, maxbytes / 4, (uint32_t)(uintptr_t)p);
  }
  bf16 *x, *y;
  float* scale;
  CK(cudaMalloc(&x, 16384 * 2));
  CK(cudaMalloc(&y, 65536 * 2 * launches));
  CK(cudaMalloc(&scale, 65536 * 4));
  fill_kernel<<<16, 256>>>((uint32_t*)x, 16384 / 2, 7);
  fill_kernel<<<64, 256>>>((uint32_t*)scale, 65536, 9);
  CK(cudaDeviceSynchronize());

  // U (16-byte loads in flight per lane), warps a block, rows a warp
  // (persistent: blocks an SM)
  std::vector<Kern> vb = {row_variant<bf16, 8, 16, 1>(),        row_variant<bf16, 8, 8, 1>(),
                          row_variant<bf16, 4, 8, 1>(),         row_variant<bf16, 8, 4, 1>(),
                          row_variant<bf16, 4, 8, 2>(),         rowp_variant<bf16, 8, 16>(1, sms),
                          rowp_variant<bf16, 8, 16>(2, sms),    rowp_variant<bf16, 8, 32>(1, sms)};
  std::vector<Kern> vi = {row_variant<int8_t, 4, 8, 1>(),       row_variant<int8_t, 8, 8, 1>(),
                          row_variant<int8_t, 4, 16, 1>(),      row_variant<int8_t, 4, 4, 1>(),
                          row_variant<int8_t, 4, 8, 2>(),       row_variant<int8_t, 8, 8, 2>(),
                          rowp_variant<int8_t, 8, 16>(1, sms),  rowp_variant<int8_t, 8, 16>(2, sms),
                          rowp_variant<int8_t, 8, 32>(1, sms)};
  auto readk = [&](int bps) {
    return Kern{"read x" + std::to_string(bps), [=](bool pdl, Args a, cudaStream_t st) {
                  const long long bytes = (long long)a.N * a.K * (a.scale ? 1 : 2);
                  launch(pdl, dim3(sms * bps), dim3(256), 0, st, read_kernel<4>, a, bytes);
                }};
  };

  // correctness: every variant against the first (same products, maybe another order)
  int failed = 0;
  for (auto s : {Shape{22016, 4096}, Shape{4096, 11008}, Shape{4096, 4096}}) {
    for (int wt = 0; wt < 2; ++wt) {
      auto& vs = wt == 0 ? vi : vb;
      std::vector<bf16> r0(s.N), r1(s.N);
      Args a{wb[0], x, y, wt == 0 ? scale : nullptr, s.N, s.K};
      for (size_t i = 0; i < vs.size(); ++i) {
        CK(cudaMemsetAsync(y, 0xff, s.N * 2, st));
        vs[i].run(false, a, st);
        CK(cudaStreamSynchronize(st));
        CK(cudaMemcpy(i == 0 ? r0.data() : r1.data(), y, s.N * 2, cudaMemcpyDeviceToHost));
        if (i == 0) continue;
        double num = 0, den = 0;
        for (int k = 0; k < s.N; ++k) {
          const double d = (double)__bfloat162float(r0[k]) - __bfloat162float(r1[k]);
          num += d * d;
          den += (double)__bfloat162float(r0[k]) * __bfloat162float(r0[k]);
        }
        const double rel = std::sqrt(num / std::max(den, 1e-30));
        if (!(rel < 1e-2)) {
          std::printf("CHECK FAILED %dx%d %s %s: rel %.3g\n", s.N, s.K, wt == 0 ? "int8" : "bf16", vs[i].name.c_str(), rel);
          ++failed;
        }
      }
    }
  }
  std::printf("checks: %d failed\n", failed);

  // cuBLASLt (bf16) per shape, the best of the heuristic's first 4
  cublasLtHandle_t lt;
  cublasLtCreate(&lt);
  void* ws;
  const size_t wsb = 32 << 20;
  CK(cudaMalloc(&ws, wsb));
  auto cublas = [&](Shape s) {
    cublasLtMatmulDesc_t op;
    cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta));
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb));
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, s.K, s.N, s.K);
    cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, s.K, 1, s.K);
    cublasLtMatrixLayoutCreate(&lc, CUDA_R_16BF, s.N, 1, s.N);
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulPreferenceCreate(&pref);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof(wsb));
    cublasLtMatmulHeuristicResult_t res[1];
    int nres = 0;
    cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 1, res, &nres);
    auto algo = res[0].algo;
    return Kern{"cublasLt", [=](bool, Args a, cudaStream_t st) {
                  const float one = 1.f, zero = 0.f;
                  cublasLtMatmul(lt, op, &one, a.w, la, a.x, lb, &zero, a.y, lc, a.y, lc, &algo, ws, wsb, st);
                }};
  };

  std::printf("%-14s %-5s %-16s %9s %9s %8s %8s\n", "shape", "w", "kernel", "us", "us(pdl)", "GB/s", "GB/s pdl");
  for (auto s : shapes) {
    for (int wt = 0; wt < 2; ++wt) {
      const bool i8 = wt == 0;
      const long long bytes = (long long)s.N * s.K * (i8 ? 1 : 2);
      std::vector<Kern> vars = {readk(4)};
      for (auto& k : (i8 ? vi : vb)) vars.push_back(k);
      if (!i8) vars.push_back(cublas(s));
      for (auto& v : vars) {
        float t[2];
        for (int pdl = 0; pdl < 2; ++pdl) {
          t[pdl] = time_graph(
                       [&](cudaStream_t st) {
                         for (int l = 0; l < launches; ++l) {
                           Args a{wb[l % nbuf], x, y + (size_t)l * 65536, i8 ? scale : nullptr, s.N, s.K};
                           v.run(pdl != 0, a, st);
                         }
                       },
                       st, 8) *
                   1000.f / launches;
        }
        CK(cudaGetLastError());
        std::printf("%6dx%-7d %-5s %-16s %9.2f %9.2f %8.0f %8.0f\n", s.N, s.K, i8 ? "int8" : "bf16", v.name.c_str(),
                    t[0], t[1], bytes / t[0] / 1e3, bytes / t[1] / 1e3);
      }
    }
  }

  // Decode-layer chains under PDL: qkv, o, gate/up, down GEMVs, each followed by a small
  // kernel, for 8 layers of distinct weights; all GEMVs of one variant.
  std::printf("\nlayer chain (8 layers, PDL, small kernel after each GEMV): us per layer, TB/s of weights\n");
  const Shape ls[4] = {{12288, 4096}, {4096, 4096}, {22016, 4096}, {4096, 11008}};
  for (int wt = 0; wt < 2; ++wt) {
    const bool i8 = wt == 0;
    std::vector<Kern> vars = {readk(4)};
    for (auto& k : (i8 ? vi : vb)) vars.push_back(k);
    for (int withsmall = 0; withsmall < 2; ++withsmall)
      for (auto& v : vars) {
        const float ms = time_graph(
            [&](cudaStream_t st) {
              for (int l = 0; l < nlayers; ++l) {
                size_t off = 0;
                for (int g = 0; g < 4; ++g) {
                  Args a{(const char*)wb[l] + off * (i8 ? 1 : 2), x, y, i8 ? scale : nullptr, ls[g].N, ls[g].K};
                  v.run(true, a, st);
                  off += (size_t)ls[g].N * ls[g].K;
                  if (withsmall) launch(true, dim3(sms), dim3(256), 0, st, small_kernel, (const bf16*)y, x + 8192, 4096);
                }
              }
            },
            st, 8);
        const double us = ms * 1000.0 / nlayers;
        const double lb = (double)layer_elems * (i8 ? 1 : 2);
        std::printf("%-5s %-16s %s %9.2f us/layer %7.0f GB/s\n", i8 ? "int8" : "bf16", v.name.c_str(),
                    withsmall ? "+small" : "      ", us, lb / us / 1e3);
      }
  }
  return failed ? 1 : 0;
}
