// The CUDA backend (to be implemented): a Backend (runtime/backends/backend.h)
// over cudaMalloc'ed pools, cuBLASLt GEMMs and own kernels. For now only the
// device query exists; create_cuda_backend() throws a clear "not implemented".
#pragma once

#include <memory>
#include <string>

#include "runtime/backends/backend.h"

namespace bmsys::rt {

// Number of visible CUDA devices (0 when there is no driver or GPU).
int cuda_device_count();
// "NVIDIA H200 (sm_90, 139 GiB)" for `device`, or an explanation when unavailable.
std::string cuda_device_description(int device);

std::unique_ptr<Backend> create_cuda_backend(const BackendOptions& opts);

}  // namespace bmsys::rt
