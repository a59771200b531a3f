// The gradient of attention on tensor cores (docs/kernels.md `attention_grad`), for
// f16/bf16 and head_dim 16, 32, 64 or 128: FlashAttention-2's backward on mma.sync
// m16n8k16 (mma_util.cuh), softmax recomputed from q and k, f32 accumulation. Two
// kernels and no atomics, so the result is deterministic (FlashAttention-2 adds dq up
// with atomics from the key-side kernel instead; recomputing it costs 3 of the 9 tile
// products here):
//
//  1. query side, a block per 64 query rows of one head (16 per warp), streaming 64-key
//     tiles of K and V through shared memory (cp.async, double-buffered) twice:
//     - sweep 1: S = Q.K^T and dP = dY.V^T; an online softmax gives each row's
//       log2-sum-exp and delta = sum_j p_j dP_j (= dY . Y);
//     - sweep 2: P = exp2(S log2e scale - lse2), dS = P (dP - delta), dQ += dS.K.
//     lse2 and delta go to scratch.
//  2. key side, a block per 64 key rows of one kv head (16 per warp), streaming QT-query
//     tiles of Q and dY (every query head of the group, the queries that see the block):
//     S^T = K.Q^T, dP^T = V.dY^T, P^T from lse2, dS^T = P^T (dP^T - delta),
//     dV += P^T.dY, dK += dS^T.Q.
// dQ and dK are scaled by the softmax scale once, at the end. P and dS enter the tensor
// cores rounded to the input type, as in FlashAttention.
#include "runtime/backends/cuda/device_util.cuh"
#include "runtime/backends/cuda/mma_util.cuh"
#include "runtime/backends/cuda/train_kernels.h"

namespace bmsys::rt::cuda::train {

namespace {

constexpr int kRows = 64;  // rows of a block: queries (kernel 1) or keys (kernel 2)
constexpr float kLog2e = 1.4426950408889634f;

struct TcParams {
  int64_t B, S, Nq, Nkv;
  float scale;
  bool causal;
};

// Query tile of the key-side kernel: 32 at head_dim 128 (its dK and dV accumulators
// take 128 registers), else 64.
template <int D>
__host__ __device__ constexpr int key_side_qt() {
  return D >= 128 ? 32 : 64;
}
template <int D>
constexpr size_t q_side_smem() {
  return 6ull * kRows * (D + 8) * 2;  // Q, dY, and two stages of K and V
}
template <int D>
constexpr size_t kv_side_smem() {
  return 2ull * kRows * (D + 8) * 2 + 4ull * key_side_qt<D>() * (D + 8) * 2 +
         4ull * key_side_qt<D>() * sizeof(float);  // K, V; two stages of Q, dY, lse2, delta
}

// rows [r0, r0 + n) of a [B, S, N, D] tensor's head hd, batch b -> shared rows [n][LD];
// rows at or past S are zero-filled.
template <class T, int D>
__device__ __forceinline__ void load_rows(T* dst, const T* src, int64_t b, int64_t S, int64_t N,
                                          int64_t hd, int64_t r0, int n, int tid, int nthreads) {
  constexpr int LD = D + 8, CPR = D / 8;
  for (int i = tid; i < n * CPR; i += nthreads) {
    const int r = i / CPR, cc = (i % CPR) * 8;
    const int64_t s = r0 + r;
    const bool ok = s < S;
    cp_async16z(&dst[r * LD + cc], src + ((b * S + (ok ? s : 0)) * N + hd) * D + cc, ok ? 16u : 0u);
  }
}

template <class T, int D>
__global__ void __launch_bounds__(128)
    attn_grad_q_tc_kernel(TcParams p, const T* q, const T* k, const T* v, const T* dy, T* dq,
                          float* lse_out, float* delta_out) {
  pdl_trigger();
  pdl_wait();
  constexpr int LD = D + 8, KC = D / 16, DN = D / 8, NT = kRows / 8;
  extern __shared__ uint4 grad_q_smem[];
  T* const Qs = reinterpret_cast<T*>(grad_q_smem);
  T* const Gs = Qs + kRows * LD;
  T* const Ks0 = Gs + kRows * LD;      // stage st: Ks0 + st * kRows * LD
  T* const Vs0 = Ks0 + 2 * kRows * LD;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, c = lane & 3;
  const int64_t mb = gridDim.x - 1 - blockIdx.x;  // longest causal rows first
  const int64_t h = blockIdx.y, b = blockIdx.z;
  const int64_t S = p.S, kvh = h / (p.Nq / p.Nkv), m0 = mb * kRows;
  const int64_t kend = p.causal ? (S < m0 + kRows ? S : m0 + kRows) : S;
  const int64_t ntiles = (kend + kRows - 1) / kRows;
  const int r0 = warp * 16 + g;
  const int64_t qpos[2] = {m0 + r0, m0 + r0 + 8};
  const float sl2 = p.scale * kLog2e;
  const T* Aq = Qs + warp * 16 * LD;
  const T* Ag = Gs + warp * 16 * LD;

  load_rows<T, D>(Qs, q, b, S, p.Nq, h, m0, kRows, tid, blockDim.x);
  load_rows<T, D>(Gs, dy, b, S, p.Nq, h, m0, kRows, tid, blockDim.x);

  // Streams the key tiles through the two stages; body(Ks, Vs, n0) per tile. The first
  // tile's group also carries the Q and dY rows (first sweep).
  auto load_keys = [&](int64_t t, int st) {
    load_rows<T, D>(Ks0 + st * kRows * LD, k, b, S, p.Nkv, kvh, t * kRows, kRows, tid, blockDim.x);
    load_rows<T, D>(Vs0 + st * kRows * LD, v, b, S, p.Nkv, kvh, t * kRows, kRows, tid, blockDim.x);
  };
  auto sweep = [&](auto&& body) {
    load_keys(0, 0);
    cp_async_commit();
    double_buffered(ntiles, load_keys, [&](int64_t t, int st) {
      body(Ks0 + st * kRows * LD, Vs0 + st * kRows * LD, t * kRows);
    });
  };
  auto visible = [&](int64_t key, int rr) { return key < kend && (!p.causal || key <= qpos[rr]); };

  // Sweep 1: log2-sum-exp and delta, online.
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f}, crow[2] = {0.f, 0.f};
  sweep([&](const T* Ks, const T* Vs, int64_t n0) {
    float sacc[NT][4] = {}, dpa[NT][4] = {};
    mma_abt<T, KC, NT>(sacc, Aq, Ks, LD, lane);
    mma_abt<T, KC, NT>(dpa, Ag, Vs, LD, lane);
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float& s = sacc[nt][2 * rr + e];
          s = visible(n0 + nt * 8 + 2 * c + e, rr) ? s * sl2 : -INFINITY;
          mx = fmaxf(mx, s);
        }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mn = fmaxf(mrow[rr], mx);
      const float mu = mn == -INFINITY ? 0.f : mn;
      const float alpha = exp2f(mrow[rr] - mu);
      float sum = 0.f, csum = 0.f;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float pe = exp2f(sacc[nt][2 * rr + e] - mu);
          sum += pe;
          csum += pe * dpa[nt][2 * rr + e];
        }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      csum += __shfl_xor_sync(0xffffffffu, csum, 1);
      csum += __shfl_xor_sync(0xffffffffu, csum, 2);
      lrow[rr] = lrow[rr] * alpha + sum;
      crow[rr] = crow[rr] * alpha + csum;
      mrow[rr] = mn;
    }
  });
  float lse2[2], delta[2];
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    // A row that sees no key (only padding rows past S) gets P = 0.
    lse2[rr] = lrow[rr] > 0.f ? mrow[rr] + log2f(lrow[rr]) : INFINITY;
    delta[rr] = lrow[rr] > 0.f ? crow[rr] / lrow[rr] : 0.f;
  }

  // Sweep 2: dQ += dS.K.
  float dqa[DN][4] = {};
  sweep([&](const T* Ks, const T* Vs, int64_t n0) {
    float sacc[NT][4] = {}, dpa[NT][4] = {};
    mma_abt<T, KC, NT>(sacc, Aq, Ks, LD, lane);
    mma_abt<T, KC, NT>(dpa, Ag, Vs, LD, lane);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int rr = i >> 1;
        const float pe = visible(n0 + nt * 8 + 2 * c + (i & 1), rr) ? exp2f(sacc[nt][i] * sl2 - lse2[rr]) : 0.f;
        sacc[nt][i] = pe * (dpa[nt][i] - delta[rr]);
      }
    uint32_t ds[NT / 2][4];
    to_afrag<T, NT / 2>(ds, sacc);
    mma_ab<T, NT / 2, DN>(dqa, ds, Ks, LD, lane);
  });

#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const int64_t s = qpos[rr];
    if (s >= S) continue;
    T* out = dq + ((b * S + s) * p.Nq + h) * D;
#pragma unroll
    for (int dn = 0; dn < DN; ++dn)
      *reinterpret_cast<uint32_t*>(out + dn * 8 + 2 * c) =
          pack2<T>(dqa[dn][2 * rr] * p.scale, dqa[dn][2 * rr + 1] * p.scale);
    if (c == 0) {
      lse_out[(b * p.Nq + h) * S + s] = lse2[rr];
      delta_out[(b * p.Nq + h) * S + s] = delta[rr];
    }
  }
}

template <class T, int D>
__global__ void __launch_bounds__(128)
    attn_grad_kv_tc_kernel(TcParams p, const T* q, const T* k, const T* v, const T* dy, T* dk, T* dv,
                           const float* lse_in, const float* delta_in) {
  pdl_trigger();
  pdl_wait();
  constexpr int LD = D + 8, KC = D / 16, DN = D / 8, QT = key_side_qt<D>(), NQ = QT / 8;
  extern __shared__ uint4 grad_kv_smem[];
  T* const Ks = reinterpret_cast<T*>(grad_kv_smem);
  T* const Vs = Ks + kRows * LD;
  T* const Qs0 = Vs + kRows * LD;  // stage st: Qs0 + st * QT * LD
  T* const Gs0 = Qs0 + 2 * QT * LD;
  float* const lse_s = reinterpret_cast<float*>(Gs0 + 2 * QT * LD);  // [2][QT]
  float* const delta_s = lse_s + 2 * QT;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, c = lane & 3;
  const int64_t j0 = static_cast<int64_t>(blockIdx.x) * kRows;  // most queries first
  const int64_t kvh = blockIdx.y, b = blockIdx.z;
  const int64_t S = p.S, G = p.Nq / p.Nkv;
  const int64_t kpos[2] = {j0 + warp * 16 + g, j0 + warp * 16 + g + 8};
  const int64_t s_begin = p.causal ? j0 : 0;  // the queries that see a key of the block
  const int64_t per_head = (S - s_begin + QT - 1) / QT;
  const int64_t iters = G * per_head;
  const float sl2 = p.scale * kLog2e;

  load_rows<T, D>(Ks, k, b, S, p.Nkv, kvh, j0, kRows, tid, blockDim.x);
  load_rows<T, D>(Vs, v, b, S, p.Nkv, kvh, j0, kRows, tid, blockDim.x);
  auto load_queries = [&](int64_t it, int st) {
    const int64_t h = kvh * G + it / per_head, s0 = s_begin + (it % per_head) * QT;
    load_rows<T, D>(Qs0 + st * QT * LD, q, b, S, p.Nq, h, s0, QT, tid, blockDim.x);
    load_rows<T, D>(Gs0 + st * QT * LD, dy, b, S, p.Nq, h, s0, QT, tid, blockDim.x);
    // The stage was last read before the previous iteration's closing barrier.
    for (int i = tid; i < QT; i += blockDim.x) {
      const int64_t s = s0 + i;
      lse_s[st * QT + i] = s < S ? lse_in[(b * p.Nq + h) * S + s] : INFINITY;
      delta_s[st * QT + i] = s < S ? delta_in[(b * p.Nq + h) * S + s] : 0.f;
    }
  };
  if (iters > 0) load_queries(0, 0);
  cp_async_commit();

  float dka[DN][4] = {}, dva[DN][4] = {};
  const T* Ak = Ks + warp * 16 * LD;
  const T* Av = Vs + warp * 16 * LD;
  double_buffered(iters, load_queries, [&](int64_t it, int st) {
    const T* Qs = Qs0 + st * QT * LD;
    const T* Gs = Gs0 + st * QT * LD;
    const int64_t s0 = s_begin + (it % per_head) * QT;
    float sT[NQ][4] = {}, dpT[NQ][4] = {};
    mma_abt<T, KC, NQ>(sT, Ak, Qs, LD, lane);  // S^T = K.Q^T: rows keys, columns queries
    mma_abt<T, KC, NQ>(dpT, Av, Gs, LD, lane);  // dP^T = V.dY^T
#pragma unroll
    for (int nt = 0; nt < NQ; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int qi = nt * 8 + 2 * c + (i & 1);
        const int64_t s = s0 + qi, key = kpos[i >> 1];
        const bool ok = s < S && key < S && (!p.causal || s >= key);
        const float pe = ok ? exp2f(sT[nt][i] * sl2 - lse_s[st * QT + qi]) : 0.f;
        sT[nt][i] = pe;
        dpT[nt][i] = pe * (dpT[nt][i] - delta_s[st * QT + qi]);
      }
    uint32_t pa[NQ / 2][4], da[NQ / 2][4];
    to_afrag<T, NQ / 2>(pa, sT);
    to_afrag<T, NQ / 2>(da, dpT);
    mma_ab<T, NQ / 2, DN>(dva, pa, Gs, LD, lane);  // dV += P^T.dY
    mma_ab<T, NQ / 2, DN>(dka, da, Qs, LD, lane);  // dK += dS^T.Q
  });

#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const int64_t j = kpos[rr];
    if (j >= S) continue;
    const int64_t row = ((b * S + j) * p.Nkv + kvh) * D;
#pragma unroll
    for (int dn = 0; dn < DN; ++dn) {
      *reinterpret_cast<uint32_t*>(dk + row + dn * 8 + 2 * c) =
          pack2<T>(dka[dn][2 * rr] * p.scale, dka[dn][2 * rr + 1] * p.scale);
      *reinterpret_cast<uint32_t*>(dv + row + dn * 8 + 2 * c) = pack2<T>(dva[dn][2 * rr], dva[dn][2 * rr + 1]);
    }
  }
}

template <class K>
void allow_smem_once(K kernel, size_t bytes, bool* done) {
  if (*done) return;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
             "cudaFuncSetAttribute", "attention_grad(flash-tc)");
  *done = true;
}

template <class T, int D>
void launch(const Launch& L, const AttentionGradArgs& a, float* lse, float* delta) {
  const TcParams p{a.B, a.S, a.Nq, a.Nkv, a.scale, a.causal};
  const unsigned blocks = static_cast<unsigned>((a.S + kRows - 1) / kRows);
  static bool q_attr = false, kv_attr = false;
  allow_smem_once(attn_grad_q_tc_kernel<T, D>, q_side_smem<D>(), &q_attr);
  allow_smem_once(attn_grad_kv_tc_kernel<T, D>, kv_side_smem<D>(), &kv_attr);
  launch_kernel(L, "attention_grad(flash-tc q)", dim3(blocks, static_cast<unsigned>(a.Nq), static_cast<unsigned>(a.B)),
                128, q_side_smem<D>(), attn_grad_q_tc_kernel<T, D>, p, static_cast<const T*>(a.q),
                static_cast<const T*>(a.k), static_cast<const T*>(a.v), static_cast<const T*>(a.dy),
                static_cast<T*>(a.dq), lse, delta);
  launch_kernel(L, "attention_grad(flash-tc kv)", dim3(blocks, static_cast<unsigned>(a.Nkv), static_cast<unsigned>(a.B)),
                128, kv_side_smem<D>(), attn_grad_kv_tc_kernel<T, D>, p, static_cast<const T*>(a.q),
                static_cast<const T*>(a.k), static_cast<const T*>(a.v), static_cast<const T*>(a.dy),
                static_cast<T*>(a.dk), static_cast<T*>(a.dv), static_cast<const float*>(lse),
                static_cast<const float*>(delta));
}

template <class T>
void launch_d(const Launch& L, const AttentionGradArgs& a, float* lse, float* delta) {
  switch (a.D) {
    case 16: return launch<T, 16>(L, a, lse, delta);
    case 32: return launch<T, 32>(L, a, lse, delta);
    case 64: return launch<T, 64>(L, a, lse, delta);
    default: return launch<T, 128>(L, a, lse, delta);
  }
}

}  // namespace

bool attention_grad_tc_supported(const AttentionGradArgs& a) {
  return a.tensor_cores && (a.dtype == DType::BF16 || a.dtype == DType::F16) &&
         (a.D == 16 || a.D == 32 || a.D == 64 || a.D == 128);
}

void attention_grad_tc(const Launch& L, const AttentionGradArgs& a, float* lse, float* delta) {
  if (a.dtype == DType::BF16)
    launch_d<__nv_bfloat16>(L, a, lse, delta);
  else
    launch_d<__half>(L, a, lse, delta);
}

}  // namespace bmsys::rt::cuda::train
