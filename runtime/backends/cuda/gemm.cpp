#include "runtime/backends/cuda/gemm.h"

#include <fmt/format.h>

#include "runtime/core/error.h"

namespace bmsys::rt::cuda {

namespace {

const char* cublas_status_name(cublasStatus_t st) {
  switch (st) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "unknown cuBLAS status";
  }
}

}  // namespace

cudaDataType_t lt_type(DType t, const char* op) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
    default: fail("cuda backend: {}: dtype {} has no cuBLASLt GEMM", op, dtype_name(t));
  }
}

uint32_t lt_alignment(const void* p) {
  uintptr_t v = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && (v % a) != 0) a >>= 1;
  return a;
}

LtPlan::~LtPlan() {
  if (desc) cublasLtMatmulDescDestroy(desc);
  if (a) cublasLtMatrixLayoutDestroy(a);
  if (b) cublasLtMatrixLayoutDestroy(b);
  if (c) cublasLtMatrixLayoutDestroy(c);
}

void LtPlan::create_desc(cublasComputeType_t compute, cudaDataType_t scale, cublasOperation_t ta,
                         cublasOperation_t tb) {
  BMSYS_CUBLAS(cublasLtMatmulDescCreate(&desc, compute, scale), what);
  BMSYS_CUBLAS(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)), what);
  BMSYS_CUBLAS(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)), what);
}

void LtPlan::choose_algo(cublasLtHandle_t handle, uint64_t workspace_bytes, uint32_t al_a, uint32_t al_b,
                         uint32_t al_c) {
  cublasLtMatmulPreference_t pref = nullptr;
  BMSYS_CUBLAS(cublasLtMatmulPreferenceCreate(&pref), what);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes,
                                       sizeof(workspace_bytes));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof(al_c));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof(al_c));
  cublasLtMatmulHeuristicResult_t res{};
  int count = 0;
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle, desc, a, b, c, c, pref, 1, &res, &count);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st == CUBLAS_STATUS_SUCCESS && count > 0 && res.state == CUBLAS_STATUS_SUCCESS) {
    algo = res.algo;
    ok = true;
  }
}

void throw_cublas_error(cublasStatus_t st, const char* call, const std::string& op) {
  throw Error(fmt::format("cuda backend: {}: {} failed: {} ({})", op, call, cublas_status_name(st),
                          static_cast<int>(st)));
}

Gemm::Gemm(size_t workspace_bytes) : workspace_bytes_(workspace_bytes) {
  BMSYS_CUBLAS(cublasLtCreate(&handle_), "creating the cuBLASLt handle");
}

Gemm::~Gemm() {
  plans_.clear();
  if (handle_) cublasLtDestroy(handle_);
}

Gemm::Plan* Gemm::plan(const GemmArgs& g) {
  uint32_t al_a = lt_alignment(g.w), al_b = lt_alignment(g.x), al_c = lt_alignment(g.y);
  uint32_t al_bias = lt_alignment(g.bias), al_aux = lt_alignment(g.gelu_aux);
  std::string key = fmt::format("{}:{}x{}x{}:t{}:b{}:g{}:{}/{}/{}/{}/{}", static_cast<int>(g.dtype),
                                g.M, g.N, g.K, g.w_transposed ? 1 : 0, g.bias ? 1 : 0,
                                g.gelu ? 1 : 0, al_a, al_b, al_c, al_bias, al_aux);
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second.get();

  auto p = std::make_unique<Plan>();
  p->what = fmt::format("linear {}x{}x{} {}{}{} (cuBLASLt)", g.M, g.K, g.N, dtype_name(g.dtype),
                        g.bias ? " +bias" : "", g.gelu ? " +gelu" : "");
  const std::string& op = p->what;
  cudaDataType_t t = lt_type(g.dtype, "linear");
  // Column-major view: y^T [N,M] = op(w) [N,K] . x^T [K,M].
  p->create_desc(CUBLAS_COMPUTE_32F, CUDA_R_32F, g.w_transposed ? CUBLAS_OP_N : CUBLAS_OP_T, CUBLAS_OP_N);
  cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
  if (g.gelu) epi = g.bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
  else if (g.bias) epi = CUBLASLT_EPILOGUE_BIAS;
  BMSYS_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)), op);
  if (g.bias) {
    BMSYS_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof(g.bias)), op);
  }
  if (g.gelu) {
    int64_t ld = g.N;
    BMSYS_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &g.gelu_aux, sizeof(g.gelu_aux)), op);
    BMSYS_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof(ld)), op);
  }
  if (g.w_transposed)
    BMSYS_CUBLAS(cublasLtMatrixLayoutCreate(&p->a, t, g.N, g.K, g.N), op);
  else
    BMSYS_CUBLAS(cublasLtMatrixLayoutCreate(&p->a, t, g.K, g.N, g.K), op);
  BMSYS_CUBLAS(cublasLtMatrixLayoutCreate(&p->b, t, g.K, g.M, g.K), op);
  BMSYS_CUBLAS(cublasLtMatrixLayoutCreate(&p->c, t, g.N, g.M, g.N), op);

  p->choose_algo(handle_, workspace_bytes_, al_a, al_b, al_c);
  Plan* raw = p.get();
  plans_.emplace(key, std::move(p));
  return raw;
}

bool Gemm::supported(const GemmArgs& a) {
  if (a.M <= 0 || a.N <= 0 || a.K <= 0) return false;
  if (a.gelu && (a.N % 8 != 0 || !a.gelu_aux)) return false;
  return plan(a)->ok;
}

void Gemm::run(const GemmArgs& g, cudaStream_t stream, void* workspace) {
  Plan* p = plan(g);
  if (!p->ok) fail("cuda backend: {}: cuBLASLt has no algorithm for this GEMM", p->what);
  const std::string& op = p->what;
  if (g.bias)
    BMSYS_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof(g.bias)), op);
  if (g.gelu)
    BMSYS_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &g.gelu_aux, sizeof(g.gelu_aux)), op);
  const float alpha = 1.f, beta = 0.f;
  BMSYS_CUBLAS(cublasLtMatmul(handle_, p->desc, &alpha, g.w, p->a, g.x, p->b, &beta, g.y, p->c, g.y,
                              p->c, &p->algo, workspace ? workspace : workspace_, workspace_bytes_, stream),
               op);
}

}  // namespace bmsys::rt::cuda
