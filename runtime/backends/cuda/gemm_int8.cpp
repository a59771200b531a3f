// cuBLASLt INT8 GEMMs and the host side of `linear_int8` (int8.h).
#include <fmt/format.h>

#include "runtime/backends/cuda/int8.h"
#include "runtime/backends/cuda/kernels.h"
#include "runtime/core/error.h"

namespace bmsys::rt::cuda {

namespace {

size_t align_up(size_t v) { return (v + 255) / 256 * 256; }

// Scratch layout of the INT8-activation path: xq [M,K] i8 | s [M] f32 | acc [M,N] i32.
struct Int8Scratch {
  int8_t* xq;
  float* s;
  int32_t* acc;
};
Int8Scratch carve(void* scratch, int64_t M, int64_t K) {
  char* p = static_cast<char*>(scratch);
  Int8Scratch r;
  r.xq = reinterpret_cast<int8_t*>(p);
  p += align_up(static_cast<size_t>(M * K));
  r.s = reinterpret_cast<float*>(p);
  p += align_up(static_cast<size_t>(M) * sizeof(float));
  r.acc = reinterpret_cast<int32_t*>(p);
  return r;
}

bool use_gemv(const LinearInt8Args& a) { return !a.int8_activations && a.M <= kGemvMaxRows; }

GemmArgs dequant_gemm_args(const LinearInt8Args& a, void* scratch) {
  GemmArgs g;
  g.dtype = a.dtype;
  g.x = a.x;
  g.w = scratch;
  g.bias = a.bias;
  g.y = a.y;
  g.M = a.M;
  g.K = a.K;
  g.N = a.N;
  return g;
}

}  // namespace

GemmInt8::GemmInt8() { BMSYS_CUBLAS(cublasLtCreate(&handle_), "creating the cuBLASLt handle (int8)"); }

GemmInt8::~GemmInt8() {
  plans_.clear();
  if (handle_) cublasLtDestroy(handle_);
}

GemmInt8::Plan* GemmInt8::plan(const int8_t* xq, const int8_t* q, const int32_t* acc, int64_t M,
                               int64_t K, int64_t N) {
  uint32_t al_a = lt_alignment(q), al_b = lt_alignment(xq), al_c = lt_alignment(acc);
  std::string key = fmt::format("{}x{}x{}:{}/{}/{}", M, N, K, al_a, al_b, al_c);
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second.get();
  auto p = std::make_unique<Plan>();
  p->what = fmt::format("linear_int8 {}x{}x{} (cuBLASLt int8)", M, K, N);
  Plan* raw = p.get();
  plans_.emplace(key, std::move(p));
  // cuBLASLt's IMMA kernels with the regular (column-major) order: "TN" only, leading
  // dimensions and the m, k sizes multiples of 4, 4-byte aligned pointers.
  if (K % 4 != 0 || N % 4 != 0 || al_a < 4 || al_b < 4 || al_c < 4) return raw;
  const std::string& op = raw->what;
  // Column-major view: acc^T [N,M] = q [N,K] (stored K x N, transposed) . xq^T [K,M].
  raw->create_desc(CUBLAS_COMPUTE_32I, CUDA_R_32I, CUBLAS_OP_T, CUBLAS_OP_N);
  BMSYS_CUBLAS(cublasLtMatrixLayoutCreate(&raw->a, CUDA_R_8I, K, N, K), op);
  BMSYS_CUBLAS(cublasLtMatrixLayoutCreate(&raw->b, CUDA_R_8I, K, M, K), op);
  BMSYS_CUBLAS(cublasLtMatrixLayoutCreate(&raw->c, CUDA_R_32I, N, M, N), op);
  raw->choose_algo(handle_, workspace_bytes_, al_a, al_b, al_c);
  return raw;
}

bool GemmInt8::supported(const int8_t* xq, const int8_t* q, const int32_t* acc, int64_t M,
                         int64_t K, int64_t N) {
  if (M <= 0 || K <= 0 || N <= 0) return false;
  return plan(xq, q, acc, M, K, N)->ok;
}

void GemmInt8::run(const int8_t* xq, const int8_t* q, int32_t* acc, int64_t M, int64_t K,
                   int64_t N, cudaStream_t stream) {
  Plan* p = plan(xq, q, acc, M, K, N);
  if (!p->ok) fail("cuda backend: {}: cuBLASLt has no algorithm for this GEMM", p->what);
  const int32_t alpha = 1, beta = 0;
  BMSYS_CUBLAS(cublasLtMatmul(handle_, p->desc, &alpha, q, p->a, xq, p->b, &beta, acc, p->c, acc,
                              p->c, &p->algo, workspace_, workspace_bytes_, stream),
               p->what);
}

size_t linear_int8_scratch_bytes(const LinearInt8Args& a) {
  if (a.M <= 0 || a.N <= 0) return 0;
  if (a.int8_activations)
    return align_up(static_cast<size_t>(a.M * a.K)) + align_up(static_cast<size_t>(a.M) * 4) +
           align_up(static_cast<size_t>(a.M * a.N) * 4);
  if (use_gemv(a)) return 0;
  return align_up(static_cast<size_t>(a.N * a.K) * dtype_size(a.dtype));
}

const char* linear_int8_impl(const LinearInt8Args& a, GemmInt8& gi8, Gemm& gemm, void* scratch) {
  if (a.int8_activations) {
    Int8Scratch s = carve(scratch, a.M, a.K);
    return gi8.supported(s.xq, a.q, s.acc, a.M, a.K, a.N) ? "int8 gemm (cuBLASLt)" : "int8 gemm (simt)";
  }
  if (use_gemv(a)) {
    const bool a16 = ((reinterpret_cast<uintptr_t>(a.x) | reinterpret_cast<uintptr_t>(a.q)) & 15u) == 0;
    return a.tensor_core_gemv && a16 && gemv_int8_mma_fits(a.dtype, a.M, a.K) ? "weight-only gemv (tensor cores)"
                                                                               : "weight-only gemv (simt)";
  }
  return "dequantize + gemm";
}

void linear_int8(const Launch& L, const LinearInt8Args& a, GemmInt8& gi8, Gemm& gemm,
                 void* scratch, size_t scratch_bytes) {
  if (a.M <= 0 || a.N <= 0) return;
  if (linear_int8_scratch_bytes(a) > scratch_bytes)
    fail("cuda backend: linear_int8 {}x{}x{}: kernel scratch of {} bytes is too small (internal)", a.M,
         a.K, a.N, scratch_bytes);
  if (a.int8_activations) {
    Int8Scratch s = carve(scratch, a.M, a.K);
    quantize_rows(L, a.dtype, s.xq, s.s, a.x, a.M, a.K);
    if (gi8.supported(s.xq, a.q, s.acc, a.M, a.K, a.N))
      gi8.run(s.xq, a.q, s.acc, a.M, a.K, a.N, L.stream);
    else
      gemm_int8_simt(L, s.acc, s.xq, a.q, a.M, a.K, a.N);
    rescale_int32(L, a.dtype, a.y, s.acc, s.s, a.scale, a.bias, a.M, a.N);
    return;
  }
  if (use_gemv(a)) {
    gemv_int8(L, a.dtype, a.y, a.x, a.q, a.scale, a.bias, a.M, a.K, a.N, a.tensor_core_gemv);
    return;
  }
  // Weight-only with many rows (prefill): q . scale in the dtype, then the float GEMM.
  dequantize_rows(L, a.dtype, scratch, a.q, a.scale, a.N, a.K);
  GemmArgs g = dequant_gemm_args(a, scratch);
  if (a.K > 0 && gemm.supported(g)) {
    gemm.run(g, L.stream);
    return;
  }
  gemm_simt(L, a.dtype, a.y, a.x, scratch, a.bias, a.M, a.K, a.N, false);
}

}  // namespace bmsys::rt::cuda
