// Row normalizations (layer norm, RMS norm) and rotary position embedding.
#include "runtime/backends/cuda/device_util.cuh"
#include "runtime/backends/cuda/kernels.h"

namespace bmsys::rt::cuda {

namespace {

// One block per row. x is read from global memory once per pass (the row stays in
// L1/L2 between passes); statistics accumulate in f32.
template <class T, bool kRms>
__global__ void norm_kernel(T* y, const T* x, const T* gamma, const T* beta, int64_t rows,
                            int64_t H, float eps, bool vec) {
  pdl_trigger();
  pdl_wait();
  __shared__ float sh[33];
  constexpr int PN = Pack<T>::N;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * H;
    T* yr = y + r * H;
    float mean = 0.f;
    if (!kRms) {
      float s = 0.f;
      if (vec) {
        for (int64_t j = threadIdx.x; j < H / PN; j += blockDim.x) {
          Pack<T> p = load_pack(xr + j * PN);
#pragma unroll
          for (int e = 0; e < PN; ++e) s += to_f(p.v[e]);
        }
      } else {
        for (int64_t j = threadIdx.x; j < H; j += blockDim.x) s += to_f(xr[j]);
      }
      mean = block_sum(s, sh) / static_cast<float>(H);
    }
    const float inv = rsqrtf(row_sum_squares(xr, H, vec, mean, sh) / static_cast<float>(H) + eps);
    if (vec) {
      for (int64_t j = threadIdx.x; j < H / PN; j += blockDim.x) {
        Pack<T> p = load_pack(xr + j * PN);
        Pack<T> g = load_pack(gamma + j * PN);
        Pack<T> b;
        if (!kRms) b = load_pack(beta + j * PN);
#pragma unroll
        for (int e = 0; e < PN; ++e) {
          float v = (to_f(p.v[e]) - mean) * inv * to_f(g.v[e]);
          if (!kRms) v += to_f(b.v[e]);
          p.v[e] = from_f<T>(v);
        }
        store_pack(yr + j * PN, p);
      }
    } else {
      for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
        float v = (to_f(xr[j]) - mean) * inv * to_f(gamma[j]);
        if (!kRms) v += to_f(beta[j]);
        yr[j] = from_f<T>(v);
      }
    }
  }
}

template <class T>
struct RopeArgs {
  const T* x[2];
  T* y[2];
  int64_t heads[2];
};

// table[p * D/2 + i] = rope_angle(p, i) for p < len.
__global__ void rope_table_kernel(float2* table, int64_t len, int64_t D, double log2_theta) {
  pdl_trigger();
  pdl_wait();
  const int64_t half = D / 2;
  for (int64_t idx = gtid(); idx < len * half; idx += gstride())
    table[idx] = rope_angle(idx / half, idx % half, D, log2_theta);
}

// Thread per (token, group of eight heads, i < D/2) of the tensor blockIdx.y: the cosine
// and sine of its angle come from the table (built by rope_table_kernel with the same
// arithmetic, so the bits are those computed here) or, for a position outside it, are
// computed; they are applied to the thread's eight heads, whose loads are issued
// together. A decode step (one token) thus has D/2 x heads/8 threads and one round of
// load latency instead of heads/8, and no f64 sine in its critical path.
template <class T>
__global__ void rope_kernel(RopeArgs<T> a, const int64_t* pos, int64_t T_, int64_t D,
                            double log2_theta, const float2* table, int64_t table_len) {
  pdl_trigger();
  pdl_wait();
  const int which = blockIdx.y;
  const T* x = a.x[which];
  T* y = a.y[which];
  const int64_t N = a.heads[which];
  const int64_t half = D / 2;
  const int64_t groups = (N + 7) / 8;
  const int64_t n = T_ * groups * half;
  for (int64_t idx = gtid(); idx < n; idx += gstride()) {
    const int64_t i = idx % half;
    const int64_t rest = idx / half;
    const int64_t h0 = (rest % groups) * 8;
    const int64_t t = rest / groups;
    // The loads of x first: they do not wait for the position, the table's load does.
    float av[8], bv[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      if (h0 + k < N) {
        const T* xh = x + (t * N + h0 + k) * D;
        av[k] = to_f(xh[i]);
        bv[k] = to_f(xh[i + half]);
      }
    }
    const float2 cs = rope_cos_sin(pos[t], i, D, log2_theta, table, table_len);
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      if (h0 + k < N) {
        T* yh = y + (t * N + h0 + k) * D;
        const float2 r = rope_rotate(av[k], bv[k], cs);
        yh[i] = from_f<T>(r.x);
        yh[i + half] = from_f<T>(r.y);
      }
    }
  }
}

}  // namespace

void layer_norm(const Launch& L, DType t, void* y, const void* x, const void* gamma,
                const void* beta, int64_t rows, int64_t H, float eps) {
  BMSYS_DISPATCH_FLOAT(t, T, "layer_norm", {
    bool vec = H % Pack<T>::N == 0 && aligned16(x) && aligned16(y) && aligned16(gamma) &&
               aligned16(beta);
    int threads = H >= 4096 ? 512 : H >= 1024 ? 256 : 128;
    unsigned grid = static_cast<unsigned>(rows < 65535 * 8 ? rows : 65535 * 8);
    launch_kernel(L, "layer_norm", grid, threads, 0, norm_kernel<T, false>, static_cast<T*>(y),
                  static_cast<const T*>(x), static_cast<const T*>(gamma),
                  static_cast<const T*>(beta), rows, H, eps, vec);
  });
}

void rms_norm(const Launch& L, DType t, void* y, const void* x, const void* gamma,
              int64_t rows, int64_t H, float eps) {
  BMSYS_DISPATCH_FLOAT(t, T, "rms_norm", {
    bool vec = H % Pack<T>::N == 0 && aligned16(x) && aligned16(y) && aligned16(gamma);
    const int threads = 128;  // the reduction order the GEMV with a fused norm repeats
    unsigned grid = static_cast<unsigned>(rows < 65535 * 8 ? rows : 65535 * 8);
    launch_kernel(L, "rms_norm", grid, threads, 0, norm_kernel<T, true>, static_cast<T*>(y),
                  static_cast<const T*>(x), static_cast<const T*>(gamma),
                  static_cast<const T*>(nullptr), rows, H, eps, vec);
  });
}

void rope_table(const Launch& L, void* table, int64_t len, int64_t D, double theta) {
  launch_kernel(L, "rope(table)", grid_for(len * (D / 2), 256), 256, 0, rope_table_kernel,
                static_cast<float2*>(table), len, D, std::log2(theta));
}

void rope(const Launch& L, DType t, const RopeTensor* tensors, int count, const int64_t* pos,
          int64_t T_, int64_t D, double theta, const void* table, int64_t table_len) {
  if (count < 1 || count > 2) fail("cuda backend: rope: {} tensors in one launch", count);
  BMSYS_DISPATCH_FLOAT(t, T, "rope", {
    RopeArgs<T> a{};
    int64_t maxN = 0;
    for (int i = 0; i < count; ++i) {
      a.x[i] = static_cast<const T*>(tensors[i].x);
      a.y[i] = static_cast<T*>(tensors[i].y);
      a.heads[i] = tensors[i].heads;
      if (tensors[i].heads > maxN) maxN = tensors[i].heads;
    }
    dim3 grid(grid_for(T_ * ((maxN + 7) / 8) * (D / 2), 128, 132 * 32), count);
    launch_kernel(L, "rope", grid, 128, 0, rope_kernel<T>, a, pos, T_, D, std::log2(theta),
                  static_cast<const float2*>(table), table ? table_len : 0);
  });
}

}  // namespace bmsys::rt::cuda
