// Elementwise and row-wise kernels: positions, embedding, slice, activations, add/mul,
// silu*mul, cross-entropy, argmax, dtype conversion and random fill.
#include <cfloat>

#include "runtime/backends/cuda/device_util.cuh"
#include "runtime/backends/cuda/kernels.h"

namespace bmsys::rt::cuda {

namespace {

constexpr int kThreads = 256;

// --- positions ------------------------------------------------------------------------
__global__ void positions_kernel(Launch L, int64_t* pos, int64_t B, int64_t S) {
  pdl_trigger();
  pdl_wait();
  const int64_t P = start_pos(L);
  const int64_t n = B * S;
  for (int64_t i = gtid(); i < n; i += gstride())
    pos[i] = P + i % S;
}

// --- embedding ------------------------------------------------------------------------
template <class T>
__global__ void embedding_kernel(Launch L, T* y, const int64_t* ids, int64_t n, const T* table,
                                 int64_t V, int64_t H, bool vec) {
  pdl_trigger();
  pdl_wait();
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const int64_t id = ids[i];
    if (id < 0 || id >= V) {
      if (threadIdx.x == 0) report_error(L, kErrTokenId, id, i, V);
      continue;
    }
    const T* src = table + id * H;
    T* dst = y + i * H;
    if (vec) {
      constexpr int PN = Pack<T>::N;
      for (int64_t j = threadIdx.x; j < H / PN; j += blockDim.x)
        store_pack(dst + j * PN, load_pack_nc(src + j * PN));
    } else {
      for (int64_t j = threadIdx.x; j < H; j += blockDim.x) dst[j] = src[j];
    }
  }
}

// --- slice ----------------------------------------------------------------------------
template <class E>
__global__ void slice_kernel(E* y, const E* x, int64_t rows, int64_t K, int64_t off, int64_t N) {
  pdl_trigger();
  pdl_wait();
  const int64_t n = rows * N;
  for (int64_t i = gtid(); i < n; i += gstride()) {
    const int64_t r = i / N, c = i - r * N;
    y[i] = x[r * K + off + c];
  }
}

// --- unary / binary -------------------------------------------------------------------
struct GeluTanhF {
  __device__ float operator()(float v) const {
    const float k = 0.7978845608028654f;
    return 0.5f * v * (1.f + tanhf(k * (v + 0.044715f * v * v * v)));
  }
};
struct GeluErfF {
  __device__ float operator()(float v) const { return 0.5f * v * (1.f + erff(v * 0.7071067811865476f)); }
};
struct SiluF {
  __device__ float operator()(float v) const { return v / (1.f + expf(-v)); }
};
struct AddF {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct MulF {
  __device__ float operator()(float a, float b) const { return a * b; }
};

template <class T, class F>
__global__ void unary_kernel(T* y, const T* x, int64_t n, F f, bool vec) {
  pdl_trigger();
  pdl_wait();
  for_each_packed<T>(
      n, vec,
      [&](int64_t e) {
        Pack<T> p = load_pack(x + e);
#pragma unroll
        for (int j = 0; j < Pack<T>::N; ++j) p.v[j] = from_f<T>(f(to_f(p.v[j])));
        store_pack(y + e, p);
      },
      [&](int64_t i) { y[i] = from_f<T>(f(to_f(x[i]))); });
}

template <class T, class F>
__global__ void binary_kernel(T* y, const T* a, const T* b, int64_t n, F f, bool vec) {
  pdl_trigger();
  pdl_wait();
  for_each_packed<T>(
      n, vec,
      [&](int64_t e) {
        Pack<T> pa = load_pack(a + e), pb = load_pack(b + e);
#pragma unroll
        for (int j = 0; j < Pack<T>::N; ++j) pa.v[j] = from_f<T>(f(to_f(pa.v[j]), to_f(pb.v[j])));
        store_pack(y + e, pa);
      },
      [&](int64_t i) { y[i] = from_f<T>(f(to_f(a[i]), to_f(b[i]))); });
}

// act = silu(gate) (optional), y = act * up. The product uses the activation rounded
// to T, exactly as the unfused silu + mul pair computes it.
template <class T>
__global__ void silu_mul_kernel(T* act, T* y, const T* g, const T* u, int64_t n, bool vec) {
  pdl_trigger();
  pdl_wait();
  SiluF silu;
  for_each_packed<T>(
      n, vec,
      [&](int64_t e) {
        Pack<T> pg = load_pack(g + e), pu = load_pack(u + e);
#pragma unroll
        for (int j = 0; j < Pack<T>::N; ++j) {
          pg.v[j] = from_f<T>(silu(to_f(pg.v[j])));
          pu.v[j] = from_f<T>(to_f(pg.v[j]) * to_f(pu.v[j]));
        }
        if (act) store_pack(act + e, pg);
        store_pack(y + e, pu);
      },
      [&](int64_t i) {
        T s = from_f<T>(silu(to_f(g[i])));
        if (act) act[i] = s;
        y[i] = from_f<T>(to_f(s) * to_f(u[i]));
      });
}

// --- cross-entropy --------------------------------------------------------------------
template <class T>
__global__ void xent_rows_kernel(Launch L, double* row_loss, const T* logits,
                                 const int64_t* labels, int64_t B, int64_t S, int64_t V,
                                 int shift) {
  pdl_trigger();
  pdl_wait();
  __shared__ float sh[33];
  const int64_t per = S - shift;
  const int64_t rows = B * per;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t b = r / per, s = r - b * per;
    const T* x = logits + (b * S + s) * V;
    const int64_t lab = labels[b * S + s + shift];
    float mx, sum;
    row_softmax_stats(x, V, sh, mx, sum);
    if (threadIdx.x == 0) {
      if (lab < 0 || lab >= V) {
        report_error(L, kErrLabel, lab, b * S + s + shift, V);
        row_loss[r] = 0.0;
      } else {
        row_loss[r] = (double)mx + log((double)sum) - (double)to_f(x[lab]);
      }
    }
  }
}

template <class O>
__global__ void xent_mean_kernel(O* loss, const double* row_loss, int64_t rows) {
  pdl_trigger();
  pdl_wait();
  __shared__ double sh[33];
  double s = 0;
  for (int64_t i = threadIdx.x; i < rows; i += blockDim.x) s += row_loss[i];
  s = block_sum(s, sh);
  if (threadIdx.x == 0) loss[0] = from_f<O>(static_cast<float>(s / (double)rows));
}

// --- argmax ---------------------------------------------------------------------------
template <class T>
__global__ void argmax_kernel(int64_t* out, const T* x, int64_t rows, int64_t V, int64_t stride) {
  pdl_trigger();
  pdl_wait();
  __shared__ float sv[32];
  __shared__ int64_t si[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = x + r * stride;
    float bv = -INFINITY;
    int64_t bi = V;  // no candidate yet
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
      float v = to_f(row[i]);
      if (v != v) v = -INFINITY;  // NaN is never the maximum (core/pick.h)
      if (bi == V || v > bv) {  // first maximum: indices grow within a thread
        bv = v;
        bi = i;
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      float ov = __shfl_xor_sync(0xffffffffu, bv, o);
      int64_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (oi != V && (bi == V || ov > bv || (ov == bv && oi < bi))) {
        bv = ov;
        bi = oi;
      }
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) {
      sv[warp] = bv;
      si[warp] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < (int)(blockDim.x >> 5); ++w)
        if (si[w] != V && (bi == V || sv[w] > bv || (sv[w] == bv && si[w] < bi))) {
          bv = sv[w];
          bi = si[w];
        }
      out[r] = bi == V ? 0 : bi;
    }
  }
}

// --- conversion -----------------------------------------------------------------------
template <class D, class S>
__device__ __forceinline__ void conv_float(D* d, const S* s, int64_t i) {
  d[i] = from_f<D>(to_f(s[i]));
}

__device__ __forceinline__ double load_float(const void* p, int t, int64_t i) {
  switch (t) {
    case (int)DType::F32: return static_cast<const float*>(p)[i];
    case (int)DType::F16: return __half2float(static_cast<const __half*>(p)[i]);
    case (int)DType::BF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case (int)DType::F64: return static_cast<const double*>(p)[i];
  }
  return 0;
}
__device__ __forceinline__ void store_float(void* p, int t, int64_t i, double v) {
  switch (t) {
    case (int)DType::F32: static_cast<float*>(p)[i] = (float)v; break;
    case (int)DType::F16: static_cast<__half*>(p)[i] = __double2half((double)v); break;
    case (int)DType::BF16: static_cast<__nv_bfloat16*>(p)[i] = __double2bfloat16(v); break;
    case (int)DType::F64: static_cast<double*>(p)[i] = v; break;
  }
}
__device__ __forceinline__ long long load_int(const void* p, int t, int64_t i) {
  switch (t) {
    case (int)DType::I64: return static_cast<const long long*>(p)[i];
    case (int)DType::I32: return static_cast<const int*>(p)[i];
    case (int)DType::I8: return static_cast<const signed char*>(p)[i];
    case (int)DType::U8: return static_cast<const unsigned char*>(p)[i];
  }
  return 0;
}
__device__ __forceinline__ bool store_int(void* p, int t, int64_t i, long long v) {
  switch (t) {
    case (int)DType::I64: static_cast<long long*>(p)[i] = v; return true;
    case (int)DType::I32:
      if (v < INT32_MIN || v > INT32_MAX) return false;
      static_cast<int*>(p)[i] = (int)v;
      return true;
    case (int)DType::I8:
      if (v < -128 || v > 127) return false;
      static_cast<signed char*>(p)[i] = (signed char)v;
      return true;
    case (int)DType::U8:
      if (v < 0 || v > 255) return false;
      static_cast<unsigned char*>(p)[i] = (unsigned char)v;
      return true;
  }
  return false;
}

__global__ void convert_kernel(Launch L, void* dst, int dt, const void* src, int st, int64_t n,
                               bool is_float) {
  pdl_trigger();
  pdl_wait();
  for (int64_t i = gtid(); i < n; i += gstride()) {
    if (is_float) {
      if (st == (int)DType::F64 || dt == (int)DType::F64) {
        store_float(dst, dt, i, load_float(src, st, i));
      } else {
        // Through float, so f32 -> bf16/f16 rounds once (as the host converter does).
        float v = (float)load_float(src, st, i);
        switch (dt) {
          case (int)DType::F32: static_cast<float*>(dst)[i] = v; break;
          case (int)DType::F16: static_cast<__half*>(dst)[i] = __float2half_rn(v); break;
          case (int)DType::BF16: static_cast<__nv_bfloat16*>(dst)[i] = __float2bfloat16_rn(v); break;
        }
      }
    } else {
      long long v = load_int(src, st, i);
      if (!store_int(dst, dt, i, v)) report_error(L, kErrIntRange, v, i, 0);
    }
  }
}

// --- random fill ----------------------------------------------------------------------
__device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

template <class T>
__global__ void fill_random_kernel(T* dst, int64_t n, uint64_t seed, float scale) {
  pdl_trigger();
  pdl_wait();
  for (int64_t i = gtid(); i < n; i += gstride()) {
    uint64_t h = splitmix64(seed * 0x2545f4914f6cdd1dull + (uint64_t)i);
    float u = (float)(h >> 40) * (1.0f / 16777216.0f);  // [0,1)
    dst[i] = from_f<T>((2.f * u - 1.f) * scale);
  }
}

}  // namespace

// ======================================================================================
void positions(const Launch& L, int64_t* pos, int64_t B, int64_t S) {
  launch_kernel(L, "positions", grid_for(B * S, kThreads), kThreads, 0, positions_kernel, L, pos,
                B, S);
}

void embedding(const Launch& L, DType t, void* y, const int64_t* ids, int64_t n,
               const void* table, int64_t V, int64_t H) {
  BMSYS_DISPATCH_FLOAT(t, T, "embedding", {
    bool vec = H % Pack<T>::N == 0 && aligned16(y) && aligned16(table);
    unsigned grid = static_cast<unsigned>(n < 65535 * 8 ? n : 65535 * 8);
    launch_kernel(L, "embedding", grid, 128, 0, embedding_kernel<T>, L, static_cast<T*>(y), ids,
                  n, static_cast<const T*>(table), V, H, vec);
  });
}

void slice(const Launch& L, void* y, const void* x, size_t es, int64_t rows, int64_t K,
           int64_t off, int64_t N) {
  unsigned grid = grid_for(rows * N, kThreads);
  dispatch_element_size(es, "slice", [&](auto e) {
    using E = decltype(e);
    launch_kernel(L, "slice", grid, kThreads, 0, slice_kernel<E>, static_cast<E*>(y), static_cast<const E*>(x),
                  rows, K, off, N);
  });
}

void unary(const Launch& L, DType t, UnaryOp op, void* y, const void* x, int64_t n) {
  BMSYS_DISPATCH_FLOAT(t, T, "unary", {
    bool vec = aligned16(y) && aligned16(x);
    unsigned grid = grid_for(n / Pack<T>::N + 1, kThreads);
    T* yt = static_cast<T*>(y);
    const T* xt = static_cast<const T*>(x);
    switch (op) {
      case UnaryOp::GeluTanh:
        launch_kernel(L, "gelu", grid, kThreads, 0, unary_kernel<T, GeluTanhF>, yt, xt, n,
                      GeluTanhF{}, vec);
        break;
      case UnaryOp::GeluErf:
        launch_kernel(L, "gelu", grid, kThreads, 0, unary_kernel<T, GeluErfF>, yt, xt, n,
                      GeluErfF{}, vec);
        break;
      case UnaryOp::Silu:
        launch_kernel(L, "silu", grid, kThreads, 0, unary_kernel<T, SiluF>, yt, xt, n, SiluF{},
                      vec);
        break;
    }
  });
}

void binary(const Launch& L, DType t, BinaryOp op, void* y, const void* a, const void* b,
            int64_t n) {
  BMSYS_DISPATCH_FLOAT(t, T, "binary", {
    bool vec = aligned16(y) && aligned16(a) && aligned16(b);
    unsigned grid = grid_for(n / Pack<T>::N + 1, kThreads);
    T* yt = static_cast<T*>(y);
    const T* at = static_cast<const T*>(a);
    const T* bt = static_cast<const T*>(b);
    if (op == BinaryOp::Add)
      launch_kernel(L, "add", grid, kThreads, 0, binary_kernel<T, AddF>, yt, at, bt, n, AddF{}, vec);
    else
      launch_kernel(L, "mul", grid, kThreads, 0, binary_kernel<T, MulF>, yt, at, bt, n, MulF{}, vec);
  });
}

void silu_mul(const Launch& L, DType t, void* act, void* y, const void* gate, const void* up,
              int64_t n) {
  BMSYS_DISPATCH_FLOAT(t, T, "silu*mul", {
    bool vec = (!act || aligned16(act)) && aligned16(y) && aligned16(gate) && aligned16(up);
    unsigned grid = grid_for(n / Pack<T>::N + 1, kThreads);
    launch_kernel(L, "silu*mul", grid, kThreads, 0, silu_mul_kernel<T>, static_cast<T*>(act),
                  static_cast<T*>(y), static_cast<const T*>(gate), static_cast<const T*>(up), n,
                  vec);
  });
}

size_t cross_entropy_scratch_bytes(int64_t B, int64_t S, bool shift) {
  int64_t rows = B * (S - (shift ? 1 : 0));
  return static_cast<size_t>(rows > 0 ? rows : 1) * sizeof(double);
}

void cross_entropy(const Launch& L, DType t, void* loss, DType loss_t, const void* logits,
                   const int64_t* labels, int64_t B, int64_t S, int64_t V, bool shift,
                   void* scratch) {
  const int sh = shift ? 1 : 0;
  const int64_t rows = B * (S - sh);
  double* row_loss = static_cast<double*>(scratch);
  BMSYS_DISPATCH_FLOAT(t, T, "cross_entropy", {
    unsigned grid = static_cast<unsigned>(rows < 65535 * 4 ? rows : 65535 * 4);
    launch_kernel(L, "cross_entropy", grid, kThreads, 0, xent_rows_kernel<T>, L, row_loss,
                  static_cast<const T*>(logits), labels, B, S, V, sh);
  });
  BMSYS_DISPATCH_FLOAT(loss_t, O, "cross_entropy", {
    launch_kernel(L, "cross_entropy", 1, 1024, 0, xent_mean_kernel<O>, static_cast<O*>(loss),
                  static_cast<const double*>(row_loss), rows);
  });
}

void argmax_rows(const Launch& L, DType t, int64_t* out, const void* x, int64_t rows, int64_t V,
                 int64_t stride) {
  BMSYS_DISPATCH_FLOAT(t, T, "argmax", {
    unsigned grid = static_cast<unsigned>(rows < 65535 ? rows : 65535);
    launch_kernel(L, "argmax", grid, 1024, 0, argmax_kernel<T>, out, static_cast<const T*>(x),
                  rows, V, stride);
  });
}

void convert(const Launch& L, void* dst, DType dst_t, const void* src, DType src_t, int64_t n) {
  bool df = dtype_is_float(dst_t), sf = dtype_is_float(src_t);
  if (df != sf)
    fail("cuda backend: cannot convert {} to {}", dtype_name(src_t), dtype_name(dst_t));
  launch_kernel(L, "convert", grid_for(n, kThreads), kThreads, 0, convert_kernel, L, dst,
                static_cast<int>(dst_t), src, static_cast<int>(src_t), n, df);
}

void fill_random(const Launch& L, DType t, void* dst, int64_t n, uint64_t seed, float scale) {
  BMSYS_DISPATCH_FLOAT(t, T, "fill_random", {
    launch_kernel(L, "fill_random", grid_for(n, kThreads, 132 * 64), kThreads, 0,
                  fill_random_kernel<T>, static_cast<T*>(dst), n, seed, scale);
  });
}

}  // namespace bmsys::rt::cuda

namespace bmsys::rt::cuda {
namespace {
__global__ void set_scalars_kernel(int64_t* s, int64_t p) { s[0] = p; }
}  // namespace
void set_scalars(cudaStream_t stream, int64_t* scalars, int64_t start_pos) {
  Launch L;
  L.stream = stream;
  launch_kernel(L, "set start_pos", 1, 1, 0, set_scalars_kernel, scalars, start_pos);
}
}  // namespace bmsys::rt::cuda
