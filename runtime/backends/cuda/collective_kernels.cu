// One-thread kernels around the collectives (collectives.h), and pp_mean's scaling.
#include "runtime/backends/cuda/collectives.h"
#include "runtime/backends/cuda/cuda_common.h"
#include "runtime/backends/cuda/device_util.cuh"

namespace bmsys::rt::cuda {

namespace {
__global__ void square_kernel(float* y) { *y = *y * *y; }
__global__ void sqrt_kernel(float* y) { *y = sqrtf(*y); }

template <typename T>
__global__ void scale_kernel(T* y, const T* x, int64_t n, float factor) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = from_f<T>(to_f(x[i]) * factor);
}
}  // namespace

void scalar_square(cudaStream_t s, float* y) {
  square_kernel<<<1, 1, 0, s>>>(y);
  BMSYS_CUDA(cudaGetLastError(), "global_norm over ranks");
}

void scalar_sqrt(cudaStream_t s, float* y) {
  sqrt_kernel<<<1, 1, 0, s>>>(y);
  BMSYS_CUDA(cudaGetLastError(), "global_norm over ranks");
}

void scale_elements(cudaStream_t s, DType t, void* y, const void* x, int64_t n, float factor) {
  if (n <= 0) return;
  BMSYS_DISPATCH_FLOAT(t, T, "pp_mean",
                       scale_kernel<T><<<grid_for(n, 256), 256, 0, s>>>(static_cast<T*>(y), static_cast<const T*>(x),
                                                                         n, factor));
  BMSYS_CUDA(cudaGetLastError(), "pp_mean");
}

}  // namespace bmsys::rt::cuda
