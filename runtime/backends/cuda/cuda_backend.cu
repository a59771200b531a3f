// CUDA backend placeholder: compiles in CI (no GPU needed) and answers device
// queries. The kernels, pools and cuBLASLt GEMMs go here.
#include <cuda_runtime.h>

#include "runtime/backends/cuda/cuda_backend.h"
#include "runtime/core/error.h"

namespace bmsys::rt {

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error
    return 0;
  }
  return n;
}

std::string cuda_device_description(int device) {
  cudaDeviceProp prop;
  cudaError_t err = cudaGetDeviceProperties(&prop, device);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return std::string("no CUDA device ") + std::to_string(device) + ": " + cudaGetErrorString(err);
  }
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) +
         ", " + std::to_string(prop.totalGlobalMem >> 30) + " GiB)";
}

std::unique_ptr<Backend> create_cuda_backend(const BackendOptions& opts) {
  int n = cuda_device_count();
  if (n == 0) throw Error("cuda backend: no CUDA device is available");
  if (opts.device < 0 || opts.device >= n)
    throw Error("cuda backend: device " + std::to_string(opts.device) + " does not exist (" +
                std::to_string(n) + " visible)");
  throw Error("cuda backend: not implemented yet (device " + cuda_device_description(opts.device) +
              "); use --backend cpu");
}

}  // namespace bmsys::rt
