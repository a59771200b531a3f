// `linear_int8` on the GPU (docs/kernels.md: row-wise symmetric INT8 weights q [N,K]
// with one f32 scale per output row; x, bias and y in the launch's float dtype).
//
//  - activations = "int8" (prefill): each row of x is quantized on the device
//    (s = max|x|/127, x_q = round(x/s) clamped to +-127, exactly the CPU's arithmetic),
//    x_q . q^T runs as a cuBLASLt INT8 GEMM with int32 accumulation (CUBLAS_COMPUTE_32I,
//    "TN" layout; needs K and N multiples of 4, else an own SIMT INT8 GEMM), and one
//    rescale kernel writes y = acc * s[m] * scale[n] + bias[n]. The int32 sums are exact,
//    so in f32 the result is bit-identical to the CPU backend's.
//  - activations = "float" (weight-only, decode): for M <= kGemvMaxRows an own GEMV that
//    streams q with 16-byte loads (16 weights per load, half the bytes of a bf16 GEMV):
//    on the tensor cores where K % 16 == 0 (x cut into exact INT8 digit planes, products
//    summed in int32: gemv_int8_mma.cu), else dequantizing in registers (int8.cu); larger
//    M dequantize q into scratch and run the float GEMM (cuBLASLt) with the bias epilogue.
//
// The GEMM operands live in the backend's kernel scratch (linear_int8_scratch_bytes).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "runtime/backends/cuda/cuda_common.h"
#include "runtime/backends/cuda/gemm.h"
#include "runtime/core/dtype.h"

namespace bmsys::rt::cuda {

struct LinearInt8Args {
  DType dtype = DType::F32;  // x, bias, y
  const void* x = nullptr;   // [M,K]
  const int8_t* q = nullptr; // [N,K]
  const float* scale = nullptr;  // [N]
  const void* bias = nullptr;    // [N] or null
  void* y = nullptr;             // [M,N]
  int64_t M = 0, K = 0, N = 0;
  bool int8_activations = false;
  bool tensor_core_gemv = true;  // BMSYS_CUDA_INT8_MMA: the GEMV on the tensor cores where it fits
};

// INT8 x INT8 -> INT32 GEMMs through cuBLASLt: acc[M,N] = xq[M,K] . q[N,K]^T (row-major).
// Plans (descriptors, the heuristic's algorithm) are cached per shape and alignment.
class GemmInt8 {
 public:
  GemmInt8();
  ~GemmInt8();
  GemmInt8(const GemmInt8&) = delete;
  GemmInt8& operator=(const GemmInt8&) = delete;

  void set_workspace(void* ws, size_t bytes) {
    workspace_ = ws;
    workspace_bytes_ = bytes;
  }
  // Whether cuBLASLt runs this GEMM (K, N multiples of 4, 4-byte aligned pointers, and an
  // algorithm from the heuristic).
  bool supported(const int8_t* xq, const int8_t* q, const int32_t* acc, int64_t M, int64_t K,
                 int64_t N);
  void run(const int8_t* xq, const int8_t* q, int32_t* acc, int64_t M, int64_t K, int64_t N,
           cudaStream_t stream);

 private:
  using Plan = LtPlan;
  Plan* plan(const int8_t* xq, const int8_t* q, const int32_t* acc, int64_t M, int64_t K, int64_t N);
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::unordered_map<std::string, std::unique_ptr<Plan>> plans_;
};

// Scratch bytes linear_int8() needs for these arguments (0 for the GEMV path).
size_t linear_int8_scratch_bytes(const LinearInt8Args& a);
// Which implementation linear_int8() uses, for traces: "int8 gemm (cuBLASLt)",
// "int8 gemm (simt)", "weight-only gemv (tensor cores)", "weight-only gemv (simt)",
// "dequantize + gemm".
const char* linear_int8_impl(const LinearInt8Args& a, GemmInt8& gi8, Gemm& gemm, void* scratch);
void linear_int8(const Launch& L, const LinearInt8Args& a, GemmInt8& gi8, Gemm& gemm,
                 void* scratch, size_t scratch_bytes);

// --- Kernels (int8.cu) ---------------------------------------------------------------
// xq[m,:] = clamp(round(x[m,:] / s[m]), +-127), s[m] = max|x[m,:]|/127 (1 for a zero row).
void quantize_rows(const Launch& L, DType t, int8_t* xq, float* s, const void* x, int64_t M,
                   int64_t K);
// y[m,n] = acc[m,n] * s[m] * scale[n] + bias[n], rounded once to the dtype.
void rescale_int32(const Launch& L, DType t, void* y, const int32_t* acc, const float* s,
                   const float* scale, const void* bias, int64_t M, int64_t N);
// acc = xq . q^T in int32 (any shapes): the fallback where cuBLASLt has no INT8 GEMM.
void gemm_int8_simt(const Launch& L, int32_t* acc, const int8_t* xq, const int8_t* q, int64_t M,
                    int64_t K, int64_t N);
// Weight-only: y[m,n] = (sum_k x[m,k] q[n,k]) * scale[n] + bias[n], M <= kGemvMaxRows.
// tensor_cores: gemv_int8_mma where it fits, else (and without) the SIMT GEMV.
void gemv_int8(const Launch& L, DType t, void* y, const void* x, const int8_t* q,
               const float* scale, const void* bias, int64_t M, int64_t K, int64_t N,
               bool tensor_cores = true);
// The same for up to kGemvMaxJobs weights sharing x (q/k/v, gate/up) in one launch: each
// job's outputs equal those of its own launch.
struct Int8GemvJob {
  const int8_t* q = nullptr;
  const float* scale = nullptr;
  const void* bias = nullptr;  // [N] in the dtype, or null
  void* y = nullptr;
  int64_t N = 0;
};
void gemv_int8(const Launch& L, DType t, const void* x, int64_t M, int64_t K, const Int8GemvJob* jobs,
               int njobs, bool tensor_cores = true);
// The same on the tensor cores (gemv_int8_mma.cu), where gemv_int8_mma_fits: K a multiple
// of 16 up to kGemvI8MmaMaxK (int32 sums cannot overflow), 16-byte aligned x and q, and x's
// digits within a block's shared memory. Exact up to x rounded to 22 bits (f16/bf16) or
// 30 bits (f32) relative to its row's largest element, and one final rounding.
constexpr int64_t kGemvI8MmaMaxK = 131072;
bool gemv_int8_mma_fits(DType t, int64_t M, int64_t K);
void gemv_int8_mma(const Launch& L, DType t, const void* x, int64_t M, int64_t K, const Int8GemvJob* jobs,
                   int njobs);
// w[n,k] = q[n,k] * scale[n] in the dtype.
void dequantize_rows(const Launch& L, DType t, void* w, const int8_t* q, const float* scale,
                     int64_t N, int64_t K);
// Deterministic pseudo-random INT8 values in [-127, 127] (--random-weights).
void fill_random_int8(const Launch& L, int8_t* dst, int64_t n, uint64_t seed);

}  // namespace bmsys::rt::cuda
