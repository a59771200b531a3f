// GEMMs through cuBLASLt: y[M,N] = x[M,K] . w^T (+ bias) (+ GELU with the
// pre-activation kept), row-major, w either [N,K] (nn.Linear) or [K,N] (Conv1D).
// f32 computes in true f32 (CUBLAS_COMPUTE_32F, no TF32); f16/bf16 with f32
// accumulation. The matmul descriptors and the heuristic's algorithm are cached per
// shape, dtype, layout, epilogue and pointer alignment.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "runtime/core/dtype.h"

namespace bmsys::rt::cuda {

[[noreturn]] void throw_cublas_error(cublasStatus_t st, const char* call, const std::string& op);
inline void check_cublas(cublasStatus_t st, const char* call, const std::string& op) {
  if (st != CUBLAS_STATUS_SUCCESS) throw_cublas_error(st, call, op);
}
#define BMSYS_CUBLAS(call, op) ::bmsys::rt::cuda::check_cublas((call), #call, (op))

// One cuBLASLt matmul as the GEMMs of the backend cache it (Gemm, GemmInt8 and the
// backward pass's): its descriptor, the A, B and C layouts (D uses C's) and the
// heuristic's algorithm.
struct LtPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool ok = false;   // the heuristic found an algorithm
  std::string what;  // names the GEMM in errors

  LtPlan() = default;
  LtPlan(const LtPlan&) = delete;
  LtPlan& operator=(const LtPlan&) = delete;
  ~LtPlan();
  // Creates the descriptor: compute and scale types, and the operations on A and B.
  void create_desc(cublasComputeType_t compute, cudaDataType_t scale, cublasOperation_t ta, cublasOperation_t tb);
  // Asks the heuristic for the best algorithm within `workspace_bytes` for operands
  // aligned to al_a, al_b and al_c (C and D) bytes; sets algo and ok.
  void choose_algo(cublasLtHandle_t handle, uint64_t workspace_bytes, uint32_t al_a, uint32_t al_b, uint32_t al_c);
};

// The alignment cuBLASLt is told of: the largest power of two up to 256 dividing the
// address (256 for null).
uint32_t lt_alignment(const void* p);
// The cuBLASLt type of a compute dtype (f32, f16, bf16); others are an error naming `op`.
cudaDataType_t lt_type(DType t, const char* op);

struct GemmArgs {
  DType dtype = DType::F32;
  const void* x = nullptr;
  const void* w = nullptr;
  const void* bias = nullptr;  // [N] or null
  void* y = nullptr;
  void* gelu_aux = nullptr;  // with gelu: receives x.w^T + bias (the pre-activation)
  int64_t M = 0, K = 0, N = 0;
  bool w_transposed = false;
  bool gelu = false;  // y = gelu_tanh(x.w^T + bias)
};

class Gemm {
 public:
  explicit Gemm(size_t workspace_bytes);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // Sets the workspace (device memory owned by the caller, >= workspace_bytes()).
  void set_workspace(void* ws) { workspace_ = ws; }
  size_t workspace_bytes() const { return workspace_bytes_; }

  // Whether cuBLASLt has an algorithm for these arguments (queries and caches it).
  bool supported(const GemmArgs& a);
  // Enqueues the GEMM on `stream`; throws naming the op when cuBLASLt fails or has no
  // algorithm (call supported() first to fall back). GEMMs running concurrently on
  // several streams each need their own `workspace` (workspace_bytes(); null: the one
  // set_workspace gave), so that the same algorithm runs whatever the stream.
  void run(const GemmArgs& a, cudaStream_t stream, void* workspace = nullptr);

 private:
  using Plan = LtPlan;
  Plan* plan(const GemmArgs& a);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_;
  std::unordered_map<std::string, std::unique_ptr<Plan>> plans_;
};

}  // namespace bmsys::rt::cuda
