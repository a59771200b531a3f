// Host-side launchers of the CUDA backend's own kernels (docs/kernels.md semantics,
// checked against the CPU reference by runtime/tests/cuda). Every launcher takes a
// Launch (stream, PDL, error record, device scalars), raw device pointers and sizes;
// float operands of one launch share one compute dtype (f32, f16 or bf16) and every
// reduction accumulates in f32 (f64 for the cross-entropy mean).
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/backends/cuda/cuda_common.h"
#include "runtime/core/dtype.h"
#include "runtime/core/pick.h"

namespace bmsys::rt::cuda {

// pos[b,s] = start_pos + s (start_pos read from L.scalars[0] on the device).
void positions(const Launch& L, int64_t* pos, int64_t B, int64_t S);

// y[i,:] = table[ids[i],:]; an id outside [0,V) is reported through L.err.
void embedding(const Launch& L, DType t, void* y, const int64_t* ids, int64_t n,
               const void* table, int64_t V, int64_t H);

// y[r,:] = x[r, off:off+N] for rows of K elements of `es` bytes.
void slice(const Launch& L, void* y, const void* x, size_t es, int64_t rows, int64_t K,
           int64_t off, int64_t N);

void layer_norm(const Launch& L, DType t, void* y, const void* x, const void* gamma,
                const void* beta, int64_t rows, int64_t H, float eps);
void rms_norm(const Launch& L, DType t, void* y, const void* x, const void* gamma,
              int64_t rows, int64_t H, float eps);

// Rotary embedding of up to two tensors sharing positions (q and k in one launch).
struct RopeTensor {
  const void* x = nullptr;
  void* y = nullptr;
  int64_t heads = 0;  // N: x is [T, N*D]
};
// `table` (null: none) holds rope_table's cosines and sines for positions < table_len;
// other positions compute theirs.
void rope(const Launch& L, DType t, const RopeTensor* tensors, int count, const int64_t* pos,
          int64_t T, int64_t D, double theta, const void* table = nullptr, int64_t table_len = 0);
// Fills `table` (len * D/2 float pairs) with the cosine and sine of rope's angle for each
// position < len and pair i < D/2, the values rope computes for them.
void rope_table(const Launch& L, void* table, int64_t len, int64_t D, double theta);

enum class UnaryOp { GeluTanh, GeluErf, Silu };
void unary(const Launch& L, DType t, UnaryOp op, void* y, const void* x, int64_t n);
enum class BinaryOp { Add, Mul };
void binary(const Launch& L, DType t, BinaryOp op, void* y, const void* a, const void* b,
            int64_t n);
// y = silu(gate) * up; also writes silu(gate) to `act` when it is not null.
void silu_mul(const Launch& L, DType t, void* act, void* y, const void* gate, const void* up,
              int64_t n);

// Mean cross-entropy (see docs/kernels.md) into loss[0] (dtype loss_t); labels outside
// [0,V) are reported through L.err. `scratch` holds cross_entropy_scratch_bytes().
size_t cross_entropy_scratch_bytes(int64_t B, int64_t S, bool shift);
void cross_entropy(const Launch& L, DType t, void* loss, DType loss_t, const void* logits,
                   const int64_t* labels, int64_t B, int64_t S, int64_t V, bool shift,
                   void* scratch);

// out[r] = the first index of the maximum of row r (rows of V elements, `stride` apart).
void argmax_rows(const Launch& L, DType t, int64_t* out, const void* x, int64_t rows, int64_t V,
                 int64_t stride);

// out[r] = the token core/pick.h's pick_token picks from row r with `uniforms[r]` (host
// memory, `rows` of them; unread when greedy): greedy is argmax_rows; top-k or top-p sort
// the row's logits in `scratch` (pick_scratch_bytes, 0 when nothing is cut). pick.cu has
// the numerics.
size_t pick_scratch_bytes(int64_t rows, int64_t V, const PickOptions& o);
void pick_rows(const Launch& L, DType t, int64_t* out, const void* x, int64_t rows, int64_t V, int64_t stride,
               const PickOptions& o, const double* uniforms, void* scratch);

// dst = src converted (float <-> float, int <-> int with a range check reported
// through L.err as kErrIntRange).
void convert(const Launch& L, void* dst, DType dst_t, const void* src, DType src_t, int64_t n);

// Deterministic pseudo-random values uniform in [-scale, scale] (weights for benchmarks).
void fill_random(const Launch& L, DType t, void* dst, int64_t n, uint64_t seed, float scale);

// --- Attention -----------------------------------------------------------------------
struct AttentionArgs {
  DType dtype = DType::F32;
  const void* q = nullptr;  // [B,S,Nq*D]
  const void* k = nullptr;  // [B,S,Nkv*D]
  const void* v = nullptr;
  void* y = nullptr;        // [B,S,Nq*D]
  void* k_cache = nullptr;  // [Bmax,Smax,Nkv,D] or null
  void* v_cache = nullptr;
  int64_t B = 1, S = 1, Nq = 1, Nkv = 1, D = 1, Smax = 0;
  float scale = 1.f;
  bool causal = true;
  // rope_attention: rope(q) and rope(k) at these positions ([B,S]; null: no rope), with
  // rope()'s table of angles (null: computed).
  const int64_t* rope_pos = nullptr;
  double rope_theta = 0;
  const void* rope_table = nullptr;
  int64_t rope_table_len = 0;
};
// Which kernel attention() will use, for traces: "decode", "flash-tc", "flash-simt".
const char* attention_impl(const AttentionArgs& a, bool allow_tc);
// Whether attention() applies the rope of `rope_pos` itself: the decode kernel does for
// head_dim 64, 128 and 256 (each rotation pair within one lane). Otherwise the caller
// runs rope first (rope_attention's other cases) and passes no rope_pos.
bool attention_fuses_rope(const AttentionArgs& a);
void attention(const Launch& L, const AttentionArgs& a, int num_sms, bool allow_tc);

// --- Matrix-vector products for few rows (decode) ------------------------------------
// y_j[m, n] = sum_k x[m,k] * w_j[n,k] (+ bias_j[n]) for every job j: up to 3 weights
// [N_j, K] that share the input x [M, K], in one launch. M <= kGemvMaxRows.
// A job may carry an elementwise epilogue on its output (the op that follows the linear
// in the artifact): out = f(y, other), computed from y rounded to the dtype exactly as
// the separate kernel would.
constexpr int kGemvMaxRows = 8;
constexpr int kGemvMaxJobs = 3;
// SwiGlu: on job 0 of two with equal N (gate, up): out = silu(y0) * y1, as the swiglu
// kernel computes it (the row kernel; a block takes the same rows of both).
enum class GemvEpilogue : int { None = 0, Add, Mul, Silu, GeluTanh, GeluErf, SwiGlu };
struct GemvJob {
  const void* w = nullptr;
  const void* bias = nullptr;
  void* y = nullptr;
  int64_t N = 0;
  GemvEpilogue epi = GemvEpilogue::None;
  const void* other = nullptr;  // Add / Mul operand [M, N]
  void* out = nullptr;          // epilogue output [M, N]
};
// variant 1 or 3: the pipelined kernel (cp.async staging, persistent warps; needs 16-byte
// rows and x of at most 64 KB), 2: the row kernel (a warp per output, x staged in shared
// memory where it fits). Falls back to 2 where the pipelined kernel does not apply.
// With `norm`, x is first computed as rms_norm(norm->x, norm->gamma) (and written to x,
// bit-identical to the norm kernel it replaces: rms_norm's, or add_rms_norm's second half
// with norm->x its sum); needs x staged: 16-byte rows, x of <= 64 KB.
struct GemvNorm {
  const void* x = nullptr;
  const void* gamma = nullptr;
  float eps = 0.f;
  int threads = 128;  // the replaced kernel's block size, which fixes its order of sums
};
// Whether gemv() stages this x in shared memory (so a norm may be fused, and variant 3 runs).
bool gemv_stages_x(DType t, const void* x, int64_t M, int64_t K, const GemvJob* jobs, int njobs);
void gemv(const Launch& L, DType t, const void* x, int64_t M, int64_t K, const GemvJob* jobs,
          int njobs, int num_sms, int variant = 1, const GemvNorm* norm = nullptr);

// A plain tiled GEMM (any sizes, both weight layouts, f32 accumulation): the fallback
// where cuBLASLt offers no algorithm. y[M,N] = x[M,K] . w^T (+ bias).
void gemm_simt(const Launch& L, DType t, void* y, const void* x, const void* w, const void* bias,
               int64_t M, int64_t K, int64_t N, bool w_transposed);

}  // namespace bmsys::rt::cuda

namespace bmsys::rt::cuda {
// scalars[0] = start_pos, as a one-thread kernel on `stream` (outside any graph, so a
// replayed graph reads the current value).
void set_scalars(cudaStream_t stream, int64_t* scalars, int64_t start_pos);
}  // namespace bmsys::rt::cuda
