// The fused elementwise kernels of bmsys-fuse-elementwise (fused_kernels.h): SwiGLU
// forward and backward over 16-byte packs, and the residual add fused with the RMS
// norm that follows it (one block per row, as norms.cu).
#include "runtime/backends/cuda/device_util.cuh"
#include "runtime/backends/cuda/fused_kernels.h"

namespace bmsys::rt::cuda::fused {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float sigmoid_f(float v) { return 1.f / (1.f + expf(-v)); }

template <class T>
__global__ void swiglu_kernel(T* y, const T* g, const T* u, int64_t n, bool vec) {
  pdl_trigger();
  pdl_wait();
  for_each_packed<T>(
      n, vec,
      [&](int64_t e) {
        Pack<T> pg = load_pack_nc(g + e), pu = load_pack_nc(u + e), py;
#pragma unroll
        for (int j = 0; j < Pack<T>::N; ++j) {
          const float v = to_f(pg.v[j]);
          py.v[j] = from_f<T>(v * sigmoid_f(v) * to_f(pu.v[j]));
        }
        store_pack(y + e, py);
      },
      [&](int64_t i) {
        const float v = to_f(g[i]);
        y[i] = from_f<T>(v * sigmoid_f(v) * to_f(u[i]));
      });
}

__device__ __forceinline__ void swiglu_grad_one(float v, float u, float d, float& dg, float& du) {
  const float sg = sigmoid_f(v);
  du = d * v * sg;
  dg = d * u * sg * (1.f + v * (1.f - sg));
}

template <class T>
__global__ void swiglu_grad_kernel(T* dg, T* du, const T* g, const T* u, const T* dy, int64_t n, bool vec) {
  pdl_trigger();
  pdl_wait();
  for_each_packed<T>(
      n, vec,
      [&](int64_t e) {
        Pack<T> pg = load_pack_nc(g + e), pu = load_pack_nc(u + e), pd = load_pack_nc(dy + e);
        Pack<T> og, ou;
#pragma unroll
        for (int j = 0; j < Pack<T>::N; ++j) {
          float a, b;
          swiglu_grad_one(to_f(pg.v[j]), to_f(pu.v[j]), to_f(pd.v[j]), a, b);
          og.v[j] = from_f<T>(a);
          ou.v[j] = from_f<T>(b);
        }
        store_pack(dg + e, og);
        store_pack(du + e, ou);
      },
      [&](int64_t i) {
        float a, b;
        swiglu_grad_one(to_f(g[i]), to_f(u[i]), to_f(dy[i]), a, b);
        dg[i] = from_f<T>(a);
        du[i] = from_f<T>(b);
      });
}

// One block per row: pass 1 writes the rounded sum and sums its squares; pass 2 writes
// the normalized row. DRAM traffic: a and b read once, sum and y written once. Where a
// row is at most kNormRegPacks packs per thread (H <= 8192 in f16/bf16), pass 2 takes
// the sum from registers, and gamma is loaded before griddepcontrol.wait where no earlier
// kernel of the flush writes it (Launch::early_loads: a model's weight at inference, not
// mixed precision's f16/bf16 copy), so a decode step's norm waits for one round of loads;
// otherwise pass 2 reads the row back (still in L1/L2).
constexpr int kNormRegPacks = 4;

// Pack j of the rounded sum a + b, written to s; its squares added to ss.
template <class T>
__device__ __forceinline__ Pack<T> add_pack(const T* a, const T* b, T* s, int64_t j, float& ss) {
  constexpr int PN = Pack<T>::N;
  Pack<T> pa = load_pack_nc(a + j * PN), pb = load_pack_nc(b + j * PN);
#pragma unroll
  for (int e = 0; e < PN; ++e) {
    pa.v[e] = from_f<T>(to_f(pa.v[e]) + to_f(pb.v[e]));
    const float v = to_f(pa.v[e]);
    ss += v * v;
  }
  store_pack(s + j * PN, pa);
  return pa;
}

template <class T>
__global__ void add_rms_norm_kernel(T* sum, T* y, const T* a, const T* b, const T* gamma, int64_t rows,
                                    int64_t H, float eps, bool vec, bool early) {
  pdl_trigger();
  pdl_wait_unless(early);  // gamma is read before the wait
  __shared__ float sh[33];
  constexpr int PN = Pack<T>::N;
  const int64_t np = H / PN;
  const bool in_regs = vec && np <= static_cast<int64_t>(kNormRegPacks) * blockDim.x;
  Pack<T> gp[kNormRegPacks];
  if (in_regs) {
#pragma unroll
    for (int u = 0; u < kNormRegPacks; ++u) {
      const int64_t j = threadIdx.x + static_cast<int64_t>(u) * blockDim.x;
      if (j < np) gp[u] = load_pack_nc(gamma + j * PN);
    }
  }
  pdl_wait();
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* ar = a + r * H;
    const T* br = b + r * H;
    T* sr = sum + r * H;
    T* yr = y + r * H;
    float ss = 0.f;
    if (in_regs) {
      Pack<T> sp[kNormRegPacks];
#pragma unroll
      for (int u = 0; u < kNormRegPacks; ++u) {
        const int64_t j = threadIdx.x + static_cast<int64_t>(u) * blockDim.x;
        if (j < np) sp[u] = add_pack(ar, br, sr, j, ss);
      }
      const float inv = rsqrtf(block_sum(ss, sh) / static_cast<float>(H) + eps);
#pragma unroll
      for (int u = 0; u < kNormRegPacks; ++u) {
        const int64_t j = threadIdx.x + static_cast<int64_t>(u) * blockDim.x;
        if (j < np) {
          Pack<T> p = sp[u];
#pragma unroll
          for (int e = 0; e < PN; ++e) p.v[e] = from_f<T>(to_f(p.v[e]) * inv * to_f(gp[u].v[e]));
          store_pack(yr + j * PN, p);
        }
      }
      continue;
    }
    if (vec) {
      for (int64_t j = threadIdx.x; j < np; j += blockDim.x) add_pack(ar, br, sr, j, ss);
    } else {
      for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
        const T s = from_f<T>(to_f(ar[j]) + to_f(br[j]));
        sr[j] = s;
        ss += to_f(s) * to_f(s);
      }
    }
    const float inv = rsqrtf(block_sum(ss, sh) / static_cast<float>(H) + eps);
    // Each thread reads back only the elements it wrote: no barrier needed.
    if (vec) {
      for (int64_t j = threadIdx.x; j < np; j += blockDim.x) {
        Pack<T> p = load_pack(sr + j * PN), g = load_pack_nc(gamma + j * PN);
#pragma unroll
        for (int e = 0; e < PN; ++e) p.v[e] = from_f<T>(to_f(p.v[e]) * inv * to_f(g.v[e]));
        store_pack(yr + j * PN, p);
      }
    } else {
      for (int64_t j = threadIdx.x; j < H; j += blockDim.x)
        yr[j] = from_f<T>(to_f(sr[j]) * inv * to_f(gamma[j]));
    }
  }
}

}  // namespace

void swiglu(const Launch& L, DType t, void* y, const void* gate, const void* up, int64_t n) {
  BMSYS_DISPATCH_FLOAT(t, T, "swiglu", {
    const bool vec = aligned16(y) && aligned16(gate) && aligned16(up);
    launch_kernel(L, "swiglu", grid_for(n / Pack<T>::N + 1, kThreads, 132 * 32), kThreads, 0, swiglu_kernel<T>,
                  static_cast<T*>(y), static_cast<const T*>(gate), static_cast<const T*>(up), n, vec);
  });
}

void swiglu_grad(const Launch& L, DType t, void* dgate, void* dup, const void* gate, const void* up,
                 const void* dy, int64_t n) {
  BMSYS_DISPATCH_FLOAT(t, T, "swiglu_grad", {
    const bool vec = aligned16(dgate) && aligned16(dup) && aligned16(gate) && aligned16(up) && aligned16(dy);
    launch_kernel(L, "swiglu_grad", grid_for(n / Pack<T>::N + 1, kThreads, 132 * 32), kThreads, 0,
                  swiglu_grad_kernel<T>, static_cast<T*>(dgate), static_cast<T*>(dup),
                  static_cast<const T*>(gate), static_cast<const T*>(up), static_cast<const T*>(dy), n, vec);
  });
}

void add_rms_norm(const Launch& L, DType t, void* sum, void* y, const void* a, const void* b,
                  const void* gamma, int64_t rows, int64_t H, double eps) {
  BMSYS_DISPATCH_FLOAT(t, T, "add_rms_norm", {
    const bool vec = H % Pack<T>::N == 0 && aligned16(sum) && aligned16(y) && aligned16(a) && aligned16(b) &&
                     aligned16(gamma);
    const unsigned grid = static_cast<unsigned>(rows < 65535 * 8 ? rows : 65535 * 8);
    if (rows > 0)
      launch_kernel(L, "add_rms_norm", grid, kAddRmsNormThreads, 0, add_rms_norm_kernel<T>, static_cast<T*>(sum),
                    static_cast<T*>(y), static_cast<const T*>(a), static_cast<const T*>(b),
                    static_cast<const T*>(gamma), rows, H, static_cast<float>(eps), vec, L.early_loads);
  });
}

}  // namespace bmsys::rt::cuda::fused
