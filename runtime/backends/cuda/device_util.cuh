// Device-side helpers shared by the kernels: element conversions, 16-byte packs,
// warp/block reductions, programmatic dependent launch, the error record, and a
// launcher that checks the launch and names the op.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_set>
#include <utility>

#include "runtime/backends/cuda/cuda_common.h"
#include "runtime/core/error.h"

namespace bmsys::rt::cuda {

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }

template <class T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// 16 bytes of T, loaded and stored as one uint4.
template <class T>
struct alignas(16) Pack {
  static constexpr int N = 16 / sizeof(T);
  T v[N];
};

template <class T>
__device__ __forceinline__ Pack<T> load_pack(const T* p) {
  uint4 raw = *reinterpret_cast<const uint4*>(p);
  Pack<T> out;
  *reinterpret_cast<uint4*>(&out) = raw;
  return out;
}

template <class T>
__device__ __forceinline__ Pack<T> load_pack_nc(const T* p) {
  uint4 raw = __ldg(reinterpret_cast<const uint4*>(p));
  Pack<T> out;
  *reinterpret_cast<uint4*>(&out) = raw;
  return out;
}

// 16 bytes of read-only data that bypass L1: a streamed weight is read once, and
// allocating it in L1 would only evict what is reused there (x, staged or not).
__device__ __forceinline__ uint4 load_stream16(const void* p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
}

// Brings the 128-byte line at p into L1 (and L2) without waiting for it.
__device__ __forceinline__ void prefetch_l1(const void* p) {
  asm volatile("prefetch.global.L1 [%0];" ::"l"(p));
}

template <class T>
__device__ __forceinline__ void store_pack(T* p, const Pack<T>& v) {
  *reinterpret_cast<uint4*>(p) = *reinterpret_cast<const uint4*>(&v);
}

// Copies n elements (a whole number of 16-byte packs) into shared memory, the block's
// threads taking packs in turn, then a barrier.
template <class T>
__device__ __forceinline__ void stage_packs(T* dst, const T* src, int64_t n) {
  constexpr int PN = Pack<T>::N;
  for (int64_t j = threadIdx.x; j < n / PN; j += blockDim.x) store_pack(dst + j * PN, load_pack(src + j * PN));
  __syncthreads();
}

// Lets `kernel` use up to `bytes` of dynamic shared memory (above the default 48 KB); the
// attribute is set on the first call for each kernel.
inline void allow_dynamic_smem(const void* kernel, int bytes, const char* op) {
  static std::mutex mu;
  static std::unordered_set<const void*> done;
  std::lock_guard<std::mutex> lock(mu);
  if (!done.insert(kernel).second) return;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes),
             "cudaFuncSetAttribute", op);
}

// The current device's number of SMs (asked once per device; `op` names the caller in
// an error).
inline int sm_count(const char* op) {
  int dev = 0;
  check_cuda(cudaGetDevice(&dev), "cudaGetDevice", op);
  static std::atomic<int> cache[64];
  if (dev >= 0 && dev < 64)
    if (const int v = cache[dev].load(std::memory_order_relaxed)) return v;
  int n = 0;
  check_cuda(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute", op);
  if (dev >= 0 && dev < 64) cache[dev].store(n, std::memory_order_relaxed);
  return n;
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// A grid-stride loop's first index (this thread's) and step (all threads of the grid).
__device__ __forceinline__ int64_t gtid() { return blockIdx.x * (int64_t)blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t gstride() { return (int64_t)gridDim.x * blockDim.x; }

// The grid-stride loop of the elementwise kernels over n elements of T: with `vec` (every
// pointer 16-byte aligned), pack(e) for the first element e of each whole 16-byte pack,
// then one(i) for each element after the packs (every element without `vec`).
template <class T, class PackFn, class OneFn>
__device__ __forceinline__ void for_each_packed(int64_t n, bool vec, PackFn&& pack, OneFn&& one) {
  const int64_t tid = gtid();
  const int64_t stride = gstride();
  constexpr int PN = Pack<T>::N;
  int64_t done = 0;
  if (vec) {
    const int64_t nv = n / PN;
    for (int64_t i = tid; i < nv; i += stride) pack(i * PN);
    done = nv * PN;
  }
  for (int64_t i = done + tid; i < n; i += stride) one(i);
}

// Programmatic dependent launch (sm_90). Every kernel calls pdl_trigger() first (its
// dependents may then be scheduled once all its blocks run) and pdl_wait() before it
// reads or writes any memory that an earlier kernel may use. Both are no-ops for a
// launch without the PDL attribute.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
// The wait before a kernel's early loads of its constant operands where an earlier kernel
// of the flush wrote them (Launch::early_loads false); the unconditional pdl_wait() after
// those loads then returns at once.
__device__ __forceinline__ void pdl_wait_unless(bool early_loads) {
  if (!early_loads) pdl_wait();
}
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Rotary embedding (rope and the decode attention that applies it): the cosine and sine
// of the angle of position p and pair i < D/2, computed in f64 as the CPU reference does
// (positions reach thousands of radians) and rounded to f32 once known (not inlined:
// inlined, the compiler evaluated its f64 sine on the table path too, as a select) ...
static __device__ __noinline__ float2 rope_angle(int64_t p, int64_t i, int64_t D, double log2_theta) {
  const double freq = exp2(-2.0 * static_cast<double>(i) / static_cast<double>(D) * log2_theta);
  double sn, cs;
  sincos(static_cast<double>(p) * freq, &sn, &cs);
  return make_float2(static_cast<float>(cs), static_cast<float>(sn));
}
// ... or read from a table of rope_angle's values for positions < table_len (the CUDA
// backend's, built by rope_table; null: none).
__device__ __forceinline__ float2 rope_cos_sin(int64_t p, int64_t i, int64_t D, double log2_theta,
                                               const float2* table, int64_t table_len) {
  return p >= 0 && p < table_len ? table[p * (D / 2) + i] : rope_angle(p, i, D, log2_theta);
}
// The rotation of the pair (a, b) = (x[i], x[i + D/2]): (a c - b s, b c + a s), each
// product and sum rounded (no FMA contraction), so every kernel that rotates gives the
// same bits.
__device__ __forceinline__ float2 rope_rotate(float a, float b, float2 cs) {
  return make_float2(__fsub_rn(__fmul_rn(a, cs.x), __fmul_rn(b, cs.y)),
                     __fadd_rn(__fmul_rn(b, cs.x), __fmul_rn(a, cs.y)));
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide sum / max; every thread gets the result. `sh` holds >= 33 values.
// blockDim.x must be a multiple of 32.
template <class F>
__device__ __forceinline__ F block_sum(F v, F* sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // sh may be in use by an earlier reduction
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  F r = lane < nw ? sh[lane] : F(0);
  r = warp_sum(r);
  return r;
}

__device__ __forceinline__ float block_max(float v, float* sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  float r = lane < nw ? sh[lane] : -INFINITY;
  r = warp_max(r);
  return r;
}

// A row's softmax statistics across the block, in f32: its maximum mx and the sum of
// exp(x - mx) (thread t takes elements t, t + blockDim, ...); every thread gets both.
// `sh` as for block_sum. The cross-entropy kernels and their gradients share it.
template <class T>
__device__ __forceinline__ void row_softmax_stats(const T* x, int64_t V, float* sh, float& mx, float& sum) {
  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) m = fmaxf(m, to_f(x[i]));
  m = block_max(m, sh);
  float s = 0.f;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) s += expf(to_f(x[i]) - m);
  mx = m;
  sum = block_sum(s, sh);
}

// Sum over a row of (x - mean)^2 across the block, in one fixed order: thread t < nt
// (nt = `threads`, or the block) takes 16-byte packs t, t + nt, ... (elements in order),
// then block_sum, to which the other threads add exact zeros. The RMS norm kernel runs it
// with 128 threads and the GEMVs with a fused RMS norm pass threads = 128, so the fused
// path computes bit-identical norms.
template <class T>
__device__ __forceinline__ float row_sum_squares(const T* xr, int64_t H, bool vec, float mean,
                                                 float* sh, int threads = 0) {
  constexpr int PN = Pack<T>::N;
  const int nt = threads > 0 ? threads : static_cast<int>(blockDim.x);
  float ss = 0.f;
  if (static_cast<int>(threadIdx.x) >= nt) {
    // no elements
  } else if (vec) {
    for (int64_t j = threadIdx.x; j < H / PN; j += nt) {
      Pack<T> p = load_pack(xr + j * PN);
#pragma unroll
      for (int e = 0; e < PN; ++e) {
        float d = to_f(p.v[e]) - mean;
        ss += d * d;
      }
    }
  } else {
    for (int64_t j = threadIdx.x; j < H; j += nt) {
      float d = to_f(xr[j]) - mean;
      ss += d * d;
    }
  }
  return block_sum(ss, sh);
}

// Records the first error of a flush: `gate` (device memory) elects one writer, who
// fills the mapped host record with plain stores.
__device__ __forceinline__ void report_error(const Launch& L, int code, long long value,
                                             long long index, long long limit) {
  if (!L.err || !L.err_gate) return;
  if (atomicCAS(L.err_gate, 0, 1) == 0) {
    L.err->op = L.op;
    L.err->value = value;
    L.err->index = index;
    L.err->limit = limit;
    __threadfence_system();
    L.err->code = code;
    __threadfence_system();
  }
}

__device__ __forceinline__ int64_t start_pos(const Launch& L) {
  return L.scalars ? L.scalars[0] : 0;
}

// Launches `kernel` with `L`'s stream and PDL setting, in clusters of `cluster` blocks
// along x (1: no cluster); throws naming `name`.
template <typename... KArgs, typename... Args>
void launch_kernel_cluster(const Launch& L, const char* name, dim3 grid, dim3 block, size_t smem,
                           unsigned cluster, void (*kernel)(KArgs...), Args&&... args) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = L.stream;
  cudaLaunchAttribute attr[2];
  cfg.attrs = attr;
  if (L.pdl) {
    attr[cfg.numAttrs].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[cfg.numAttrs].val.programmaticStreamSerializationAllowed = 1;
    ++cfg.numAttrs;
  }
  if (cluster > 1) {
    attr[cfg.numAttrs].id = cudaLaunchAttributeClusterDimension;
    attr[cfg.numAttrs].val.clusterDim.x = cluster;
    attr[cfg.numAttrs].val.clusterDim.y = 1;
    attr[cfg.numAttrs].val.clusterDim.z = 1;
    ++cfg.numAttrs;
  }
  check_cuda(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...), "cudaLaunchKernelEx",
             name);
}

// Launches `kernel` with `L`'s stream and PDL setting; throws naming `name`.
template <typename... KArgs, typename... Args>
void launch_kernel(const Launch& L, const char* name, dim3 grid, dim3 block, size_t smem,
                   void (*kernel)(KArgs...), Args&&... args) {
  launch_kernel_cluster(L, name, grid, block, smem, 1, kernel, std::forward<Args>(args)...);
}

inline unsigned grid_for(int64_t work, int threads, int64_t cap = 132 * 16) {
  int64_t g = (work + threads - 1) / threads;
  if (g < 1) g = 1;
  if (g > cap) g = cap;
  return static_cast<unsigned>(g);
}

// Calls f(E{}) with E the unsigned integer type of `es` bytes (1, 2, 4 or 8): kernels that
// only move elements (slice and its gradient) exist once per element size.
template <class F>
void dispatch_element_size(size_t es, const char* opname, F&& f) {
  switch (es) {
    case 1: f(uint8_t{}); break;
    case 2: f(uint16_t{}); break;
    case 4: f(uint32_t{}); break;
    case 8: f(uint64_t{}); break;
    default: fail("cuda backend: {}: element size {} is not supported", opname, es);
  }
}

#define BMSYS_DISPATCH_FLOAT(dtype, T, opname, ...)                                      \
  switch (dtype) {                                                                       \
    case ::bmsys::rt::DType::F32: { using T = float; __VA_ARGS__; break; }               \
    case ::bmsys::rt::DType::F16: { using T = __half; __VA_ARGS__; break; }              \
    case ::bmsys::rt::DType::BF16: { using T = __nv_bfloat16; __VA_ARGS__; break; }      \
    default:                                                                             \
      ::bmsys::rt::fail("cuda backend: {}: dtype {} is not a compute dtype (f32, f16, bf16)", \
                        opname, ::bmsys::rt::dtype_name(dtype));                         \
  }

}  // namespace bmsys::rt::cuda
