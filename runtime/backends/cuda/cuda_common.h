// Shared by the CUDA backend's host code (.cpp, compiled by the C++ compiler) and
// its kernels (.cu, nvcc): error checking that names the op, the device-side error
// record, and the launch configuration every kernel launcher takes.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "runtime/core/dtype.h"

namespace bmsys::rt::cuda {

// Throws bmsys::rt::Error: "cuda backend: <op>: <call> failed: <cuda message> (<name>)".
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call, const std::string& op);

inline void check_cuda(cudaError_t err, const char* call, const std::string& op) {
  if (err != cudaSuccess) throw_cuda_error(err, call, op);
}

// Checks a CUDA runtime call; `op` names what the backend was doing.
#define BMSYS_CUDA(call, op) ::bmsys::rt::cuda::check_cuda((call), #call, (op))

// Errors found by kernels (a token id outside the vocabulary, a label out of range).
// Lives in mapped pinned host memory: kernels write it only when something is wrong,
// and the host reads it after each synchronize without a copy.
struct DeviceError {
  int code;        // 0: none; see DeviceErrorCode
  int op;          // index of the op in its flush (names the instruction)
  long long value;  // the offending value
  long long index;  // its position
  long long limit;  // the bound it broke
};

enum DeviceErrorCode : int {
  kErrNone = 0,
  kErrTokenId = 1,     // embedding: id outside [0, V)
  kErrLabel = 2,       // cross_entropy: label outside [0, V)
  kErrIntRange = 3,    // upload: integer does not fit the destination type
};

// How a launcher launches: on which stream, and whether with programmatic dependent
// launch (PDL: the kernel may start before its predecessor ends and waits for it with
// griddepcontrol.wait before touching memory the predecessor may use).
struct Launch {
  cudaStream_t stream = nullptr;
  bool pdl = false;
  DeviceError* err = nullptr;  // device view of the error record (mapped host memory)
  int* err_gate = nullptr;     // device int electing the first error's writer
  int op = 0;                  // op index for DeviceError
  const int64_t* scalars = nullptr;  // device scalars: [0] = start_pos
  // Whether the kernel may read its constant operands (weights, a norm's gamma) before
  // griddepcontrol.wait, under the previous kernel's tail. Only if no earlier kernel of
  // the flush writes them: true for a model's weights at inference; false where a kernel
  // of the same flush produced them (mixed precision's f16/bf16 copies of the masters):
  // the backend decides per step (CudaBackend::Impl::early_loads_ok).
  bool early_loads = true;
};

}  // namespace bmsys::rt::cuda
