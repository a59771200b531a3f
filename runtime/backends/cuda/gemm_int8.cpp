// cuBLASLt INT8 GEMMs and the host side of `linear_int8` (int8.h).
#include <fmt/format.h>

#include "runtime/backends/cuda/int8.h"
#include "runtime/backends/cuda/kernels.h"
#include "runtime/core/error.h"

namespace bmsys::rt::cuda {

namespace {

uint32_t alignment(const void* p) {
  uintptr_t v = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && (v % a) != 0) a >>= 1;
  return a;
}

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

struct GemmInt8::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool ok = false;
  std::string what;
  ~Plan() {
    if (desc) cublasLtMatmulDescDestroy(desc);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
  }
};

GemmInt8::GemmInt8() { BMSYS_CUBLAS(cublasLtCreate(&handle_), "creating the cuBLASLt handle (int8)"); }

GemmInt8::~GemmInt8() {
  plans_.clear();
  if (handle_) cublasLtDestroy(handle_);
}

GemmInt8::Plan* GemmInt8::plan(const int8_t* xq, const int8_t* q, const int32_t* acc, int64_t M,
                               int64_t K, int64_t N) {
  uint32_t al_a = alignment(q), al_b = alignment(xq), al_c = alignment(acc);
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
  BMSYS_CUBLAS(cublasLtMatmulDescCreate(&raw->desc, CUBLAS_COMPUTE_32I, CUDA_R_32I), op);
  // Column-major view: acc^T [N,M] = q [N,K] (stored K x N, transposed) . xq^T [K,M].
  cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  BMSYS_CUBLAS(cublasLtMatmulDescSetAttribute(raw->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)), op);
  BMSYS_CUBLAS(cublasLtMatmulDescSetAttribute(raw->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)), op);
  BMSYS_CUBLAS(cublasLtMatrixLayoutCreate(&raw->a, CUDA_R_8I, K, N, K), op);
  BMSYS_CUBLAS(cublasLtMatrixLayoutCreate(&raw->b, CUDA_R_8I, K, M, K), op);
  BMSYS_CUBLAS(cublasLtMatrixLayoutCreate(&raw->c, CUDA_R_32I, N, M, N), op);
  cublasLtMatmulPreference_t pref = nullptr;
  BMSYS_CUBLAS(cublasLtMatmulPreferenceCreate(&pref), op);
  uint64_t ws = workspace_bytes_;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof(al_c));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof(al_c));
  cublasLtMatmulHeuristicResult_t res{};
  int count = 0;
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle_, raw->desc, raw->a, raw->b, raw->c,
                                                     raw->c, pref, 1, &res, &count);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st == CUBLAS_STATUS_SUCCESS && count > 0 && res.state == CUBLAS_STATUS_SUCCESS) {
    raw->algo = res.algo;
    raw->ok = true;
  }
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
  if (use_gemv(a)) return "weight-only gemv";
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
    gemv_int8(L, a.dtype, a.y, a.x, a.q, a.scale, a.bias, a.M, a.K, a.N);
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
