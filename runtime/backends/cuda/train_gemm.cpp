// The GEMMs of the backward pass through cuBLASLt: row-major C [m,n] = op(A)·op(B) with
// either operand transposed (linear_grad_input: dy·w or dy·wᵀ; linear_grad_weight:
// dyᵀ·x or xᵀ·dy, a sum over every token). CUBLAS_COMPUTE_32F: f32 data is multiplied
// in true f32 (no TF32, as the golden tests require), f16/bf16 with f32 accumulation.
// Matmul descriptors and the heuristic's algorithm are cached per shape, dtype,
// transposition and pointer alignment; the SIMT kernel takes what cuBLASLt declines.
#include <cublasLt.h>
#include <fmt/format.h>

#include <map>
#include <memory>
#include <string>

#include "runtime/backends/cuda/gemm.h"
#include "runtime/backends/cuda/train_kernels.h"
#include "runtime/backends/cuda/train_ops.h"
#include "runtime/core/error.h"

namespace bmsys::rt::cuda {

class TrainGemm {
 public:
  TrainGemm() { BMSYS_CUBLAS(cublasLtCreate(&handle_), "creating the cuBLASLt handle (training)"); }
  ~TrainGemm() {
    plans_.clear();
    if (handle_) cublasLtDestroy(handle_);
  }

  // C = op(A)·op(B), row-major; see train_kernels.h gemm_simt for the layouts.
  void run(const Launch& L, const TrainEnv& env, const char* what, DType t, void* C, const void* A,
           const void* B, int64_t m, int64_t n, int64_t k, bool tA, bool tB) {
    if (m == 0 || n == 0) return;
    if (k == 0) {
      BMSYS_CUDA(cudaMemsetAsync(C, 0, static_cast<size_t>(m * n) * dtype_size(t), L.stream), what);
      return;
    }
    Plan* p = plan(env, what, t, C, A, B, m, n, k, tA, tB);
    if (!p->ok) {
      train::gemm_simt(L, t, C, A, B, m, n, k, tA, tB);
      return;
    }
    const float alpha = 1.f, beta = 0.f;
    // Column-major: Cᵀ [n,m] = op(B)ᵀ [n,k] · op(A)ᵀ [k,m].
    BMSYS_CUBLAS(cublasLtMatmul(handle_, p->desc, &alpha, B, p->a, A, p->b, &beta, C, p->c, C, p->c,
                                &p->algo, env.workspace, env.workspace_bytes, L.stream),
                 p->what);
  }

 private:
  using Plan = LtPlan;

  Plan* plan(const TrainEnv& env, const char* what, DType t, void* C, const void* A, const void* B,
             int64_t m, int64_t n, int64_t k, bool tA, bool tB) {
    uint32_t al_a = lt_alignment(B), al_b = lt_alignment(A), al_c = lt_alignment(C);
    std::string key = fmt::format("{}:{}x{}x{}:{}{}:{}/{}/{}", static_cast<int>(t), m, n, k, tA ? 1 : 0,
                                  tB ? 1 : 0, al_a, al_b, al_c);
    auto it = plans_.find(key);
    if (it != plans_.end()) return it->second.get();
    auto p = std::make_unique<Plan>();
    p->what = fmt::format("{} {}x{}x{} {} (cuBLASLt)", what, m, n, k, dtype_name(t));
    const std::string& op = p->what;
    const cudaDataType_t dt = lt_type(t, "backward GEMM");
    // The first cuBLASLt operand is B (op(B)ᵀ), the second A (op(A)ᵀ).
    // B row-major [k,n] is column-major [n,k] (ld n), used as is; transposed [n,k] is
    // column-major [k,n] (ld k), used transposed. Likewise A.
    p->create_desc(CUBLAS_COMPUTE_32F, CUDA_R_32F, tB ? CUBLAS_OP_T : CUBLAS_OP_N, tA ? CUBLAS_OP_T : CUBLAS_OP_N);
    if (tB)
      BMSYS_CUBLAS(cublasLtMatrixLayoutCreate(&p->a, dt, k, n, k), op);
    else
      BMSYS_CUBLAS(cublasLtMatrixLayoutCreate(&p->a, dt, n, k, n), op);
    if (tA)
      BMSYS_CUBLAS(cublasLtMatrixLayoutCreate(&p->b, dt, m, k, m), op);
    else
      BMSYS_CUBLAS(cublasLtMatrixLayoutCreate(&p->b, dt, k, m, k), op);
    BMSYS_CUBLAS(cublasLtMatrixLayoutCreate(&p->c, dt, n, m, n), op);

    p->choose_algo(handle_, env.workspace_bytes, al_a, al_b, al_c);
    Plan* raw = p.get();
    plans_.emplace(key, std::move(p));
    return raw;
  }

  cublasLtHandle_t handle_ = nullptr;
  std::map<std::string, std::unique_ptr<Plan>> plans_;
};

TrainGemmPtr make_train_gemm() { return TrainGemmPtr(new TrainGemm()); }
void destroy_train_gemm(TrainGemm* g) { delete g; }

// Defined here (it needs TrainGemm); the rest of the dispatch is in train_ops.cpp.
void run_train_gemm(const TrainOp& op, const Launch& L, const TrainEnv& env) {
  const TensorView& x0 = op.in[0];
  const TensorView& x1 = op.in[1];
  const TensorView& y = op.out[0];
  const DType t = y.dtype;
  if (op.kernel == KernelId::LinearGradInput) {
    // dx [M,K] = dy [M,N] · w [N,K], or dy · wᵀ for w [K,N].
    const int64_t N = x0.shape.back(), K = y.shape.back();
    const int64_t M = N ? x0.numel() / N : (K ? y.numel() / K : 0);
    env.gemm->run(L, env, "linear_grad_input", t, y.data, x0.data, x1.data, M, K, N, false, op.wt);
  } else {
    // dw [N,K] = dyᵀ · x, or [K,N] = xᵀ · dy; the sum runs over the M = B·S tokens.
    const int64_t N = x0.shape.back(), K = x1.shape.back();
    const int64_t M = shape_numel(Shape(x0.shape.begin(), x0.shape.end() - 1));
    if (!op.wt)
      env.gemm->run(L, env, "linear_grad_weight", t, y.data, x0.data, x1.data, N, K, M, true, false);
    else
      env.gemm->run(L, env, "linear_grad_weight", t, y.data, x1.data, x0.data, K, N, M, true, false);
  }
}

}  // namespace bmsys::rt::cuda
