// What the GPU labs (gemv_lab.cu, decode_layer_lab.cu) share: an error check, the timing
// of a CUDA graph, a launch with programmatic dependent launch, and filled buffers.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>

#define CK(x)                                                                                      \
  do {                                                                                             \
    cudaError_t e_ = (x);                                                                          \
    if (e_ != cudaSuccess) {                                                                       \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));      \
      std::exit(1);                                                                                \
    }                                                                                              \
  } while (0)

namespace bmsys::lab {

// Best of `reps` replays of a graph of what body(stream) launches, in ms.
inline float time_graph(const std::function<void(cudaStream_t)>& body, cudaStream_t st, int reps) {
  cudaGraph_t g;
  cudaGraphExec_t ge;
  CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
  body(st);
  CK(cudaStreamEndCapture(st, &g));
  CK(cudaGraphInstantiate(&ge, g, 0));
  CK(cudaGraphLaunch(ge, st));
  CK(cudaStreamSynchronize(st));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  float best = 1e30f;
  for (int r = 0; r < reps; ++r) {
    CK(cudaEventRecord(e0, st));
    CK(cudaGraphLaunch(ge, st));
    CK(cudaEventRecord(e1, st));
    CK(cudaEventSynchronize(e1));
    float ms;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    best = std::min(best, ms);
  }
  CK(cudaEventDestroy(e0));
  CK(cudaEventDestroy(e1));
  CK(cudaGraphExecDestroy(ge));
  CK(cudaGraphDestroy(g));
  return best;
}

// A launch with one launch attribute, or none (attr null).
template <class K, class... P>
void launch_ex(const cudaLaunchAttribute* attr, dim3 grid, dim3 block, size_t smem, cudaStream_t st, K kernel, P... p) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = st;
  cudaLaunchAttribute a[1];
  if (attr) a[0] = *attr;
  cfg.attrs = a;
  cfg.numAttrs = attr ? 1 : 0;
  CK(cudaLaunchKernelEx(&cfg, kernel, p...));
}

// A launch, with programmatic dependent launch when pdl (as the CUDA backend launches).
template <class K, class... P>
void launch(bool pdl, dim3 grid, dim3 block, size_t smem, cudaStream_t st, K kernel, P... p) {
  cudaLaunchAttribute a{};
  a.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  a.val.programmaticStreamSerializationAllowed = 1;
  launch_ex(pdl ? &a : nullptr, grid, block, smem, st, kernel, p...);
}

// A cooperative launch: every block resident at once, or the launch fails (what grid-wide
// barriers need).
template <class K, class... P>
void launch_cooperative(dim3 grid, dim3 block, size_t smem, cudaStream_t st, K kernel, P... p) {
  cudaLaunchAttribute a{};
  a.id = cudaLaunchAttributeCooperative;
  a.val.cooperative = 1;
  launch_ex(&a, grid, block, smem, st, kernel, p...);
}

// Small finite values (bf16 pairs in [0, 0.75) or int8 quadruples in [0, 63]), different
// per seed.
static __global__ void fill_kernel(uint32_t* p, long long n, uint32_t seed) {
  for (long long i = blockIdx.x * 256LL + threadIdx.x; i < n; i += (long long)gridDim.x * 256) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    p[i] = h & 0x3f3f3f3fu;
  }
}

}  // namespace bmsys::lab
