// Attention kernels (docs/kernels.md `attention`):
//  - decode: one new token per sequence (S == 1) with a KV cache; split over the keys
//    (flash-decoding) by the blocks of a thread-block cluster, merged through
//    distributed shared memory.
//    Writes the new key/value row into the cache itself.
//  - flash-tc: prefill in f16/bf16 for head_dim 16/32/64/128: a FlashAttention-2 style
//    kernel on mma.sync m16n8k16 tensor-core instructions (64 queries x 64 keys tiles,
//    online softmax in registers, f32 accumulation).
//  - flash-simt: every other case (f32, other head sizes): one warp per query row,
//    online softmax, f32 accumulation.
// Start_pos P is read from device memory so CUDA graphs can replay decode steps.
#include <cooperative_groups.h>

#include <cfloat>

#include "runtime/backends/cuda/device_util.cuh"
#include "runtime/backends/cuda/kernels.h"
#include "runtime/backends/cuda/mma_util.cuh"

namespace bmsys::rt::cuda {

namespace {

constexpr int kMaxD = 256;     // largest head_dim of the SIMT / decode kernels
constexpr int kMaxE = kMaxD / 32;
constexpr int kDecodeG = 8;    // query heads per decode block
constexpr int kDecodeMaxSplits = 8;  // decode key splits: the blocks of one cluster
// Decode blocks an SM holds at least (registers capped to fit): a Llama-7B step has 32
// clusters of 8 blocks, and with 2 blocks an SM only 30 clusters are resident at once
// (H200), so two waited for a second wave (the rope variant at 99 registers: 20 us).
constexpr int kDecodeMinBlocks = 3;

template <class T>
struct AttnK {
  const T* q;
  const T* knew;  // this call's k [B,S,Nkv*D]
  const T* vnew;
  T* y;
  T* kc;  // cache [Bmax,Smax,Nkv*D] or null
  T* vc;
  int64_t B, S, Nq, Nkv, D, Smax;
  float scale;
  int causal;
  // Decode with rope (rope_attention): positions [B], the table of angles, log2(theta).
  const int64_t* rope_pos;
  const float2* rope_table;
  int64_t rope_table_len;
  double rope_log2_theta;
};

// --- cache write: kc[b, P+s] = k[b, s] --------------------------------------------------
template <class T>
__global__ void cache_write_kernel(Launch L, AttnK<T> a) {
  pdl_trigger();
  pdl_wait();
  const int64_t P = start_pos(L);
  const int64_t row = a.Nkv * a.D;
  const int64_t n = a.B * a.S * row;
  for (int64_t i = gtid(); i < n; i += gstride()) {
    const int64_t e = i % row, bs = i / row;
    const int64_t b = bs / a.S, s = bs - b * a.S;
    const int64_t dst = (b * a.Smax + P + s) * row + e;
    a.kc[dst] = a.knew[i];
    a.vc[dst] = a.vnew[i];
  }
}

// --- SIMT flash: one warp per (b, s, h) -------------------------------------------------
template <class T>
__global__ void attn_simt_kernel(Launch L, AttnK<T> a) {
  pdl_trigger();
  pdl_wait();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t s = (int64_t)blockIdx.x * (blockDim.x >> 5) + warp;
  const int64_t h = blockIdx.y, b = blockIdx.z;
  if (s >= a.S) return;
  const bool cached = a.kc != nullptr;
  const int64_t P = cached ? start_pos(L) : 0;
  const int64_t G = a.Nq / a.Nkv, kvh = h / G, D = a.D;
  const int64_t row = a.Nkv * D;
  const T* kb = cached ? a.kc + b * a.Smax * row : a.knew + b * a.S * row;
  const T* vb = cached ? a.vc + b * a.Smax * row : a.vnew + b * a.S * row;
  kb += kvh * D;
  vb += kvh * D;
  const T* qr = a.q + ((b * a.S + s) * a.Nq + h) * D;
  float qv[kMaxE], acc[kMaxE];
#pragma unroll
  for (int e = 0; e < kMaxE; ++e) {
    const int64_t d = lane + 32 * e;
    qv[e] = d < D ? to_f(qr[d]) * a.scale : 0.f;
    acc[e] = 0.f;
  }
  const int64_t nk = a.causal ? P + s + 1 : P + a.S;
  float m = -INFINITY, l = 0.f;
  for (int64_t j = 0; j < nk; ++j) {
    const T* kr = kb + j * row;
    float dot = 0.f;
#pragma unroll
    for (int e = 0; e < kMaxE; ++e) {
      const int64_t d = lane + 32 * e;
      if (d < D) dot += qv[e] * to_f(kr[d]);
    }
    dot = warp_sum(dot);
    const float mn = fmaxf(m, dot);
    const float corr = expf(m - mn);  // m = -inf: 0
    const float p = expf(dot - mn);
    l = l * corr + p;
    const T* vr = vb + j * row;
#pragma unroll
    for (int e = 0; e < kMaxE; ++e) {
      const int64_t d = lane + 32 * e;
      if (d < D) acc[e] = acc[e] * corr + p * to_f(vr[d]);
    }
    m = mn;
  }
  T* yr = a.y + ((b * a.S + s) * a.Nq + h) * D;
  const float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
  for (int e = 0; e < kMaxE; ++e) {
    const int64_t d = lane + 32 * e;
    if (d < D) yr[d] = from_f<T>(acc[e] * inv);
  }
}

// --- decode (S == 1, with cache) --------------------------------------------------------
// grid (Nkv * ngroups * nsplit, B) in clusters of the nsplit blocks (at most 8, the
// portable cluster size) that split the keys of one (b, kv head group); W warps a block.
// A block serves up to GC query heads of one kv head (their q in registers, lanes over
// head dims: d = lane + 32 e, e < E) over the keys of its split; each warp takes 4 keys
// per step (their k and v rows loaded together), scores them with warp reductions and
// updates an online softmax. The warps are merged in shared memory, then the splits by
// the cluster's first block, which reads the others' shared memory (distributed shared
// memory): one launch, and no partial results, fences or atomics in global memory.
// With ROPE (rope_attention; D == 32 E, E even), q and the new key row are read before
// their rotation: each lane rotates its pairs (d, d + D/2), which are its elements e and
// e + E/2, rounds them to T as the rope kernel's output is, and the new row enters the
// cache rotated.
template <class T, int E>
__device__ __forceinline__ void rotated_row(float (&out)[E], const T* x, int lane, int64_t p, const AttnK<T>& a) {
  constexpr int EH = E / 2;
  float raw[E];
#pragma unroll
  for (int e = 0; e < E; ++e) raw[e] = to_f(x[lane + 32 * e]);
#pragma unroll
  for (int e = 0; e < EH; ++e) {
    const float2 r = rope_rotate(raw[e], raw[e + EH],
                                 rope_cos_sin(p, lane + 32 * e, 32 * E, a.rope_log2_theta, a.rope_table, a.rope_table_len));
    out[e] = to_f(from_f<T>(r.x));
    out[e + EH] = to_f(from_f<T>(r.y));
  }
}

template <class T, int GC, int E, int W, bool ROPE>
__global__ void __launch_bounds__(W * 32, kDecodeMinBlocks) attn_decode_kernel(Launch L, AttnK<T> a, int nsplit,
                                                             int ngroups) {
  pdl_trigger();
  namespace cg = cooperative_groups;
  const cg::cluster_group cluster = cg::this_cluster();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int z = static_cast<int>(cluster.block_rank());
  const int64_t hg = blockIdx.x / nsplit;
  const int64_t kvh = hg / ngroups, grp = hg % ngroups;
  const int64_t b = blockIdx.y;
  const int64_t D = a.D, G = a.Nq / a.Nkv, row = a.Nkv * D;
  // start_pos comes from the scalars set before the step (never by a kernel this launch
  // waits for), and the cached keys before it were written by earlier steps: this warp's
  // first four k and v rows go to L1 while the previous kernel drains (lanes 8u..8u+7:
  // key u, k then v, four 128-byte lines each). The prefetch sits in a divergent branch,
  // which keeps griddepcontrol.wait below it (scripts/gpu/check_sass.py).
  const int64_t P = start_pos(L);
  const int64_t nk = P + 1;
  const int64_t chunk = (nk + nsplit - 1) / nsplit;
  const int64_t j0 = z * chunk;
  const int64_t j1 = j0 + chunk < nk ? j0 + chunk : nk;
  const T* kb = a.kc + b * a.Smax * row + kvh * D;
  const T* vb = a.vc + b * a.Smax * row + kvh * D;
  {
    const int64_t key = j0 + warp * 4 + (lane >> 3);
    const int64_t line = (lane & 3) * (128 / static_cast<int64_t>(sizeof(T)));
    if (key < j1 && key < P && line < D) prefetch_l1(((lane >> 2) & 1 ? vb : kb) + key * row + line);
  }
  pdl_wait();
  __shared__ float red[W][GC][2];
  __shared__ float reo[W][GC][E * 32];
  __shared__ float part_ml[GC][2];      // this split's running max and sum per head
  __shared__ float part_o[GC][E * 32];  // and its output, not yet divided by the sum
  const int64_t h0 = kvh * G + grp * GC;
  const int Gc = static_cast<int>(G - grp * GC < GC ? G - grp * GC : GC);
  const T* knew = a.knew + b * row + kvh * D;  // S == 1
  const T* vnew = a.vnew + b * row + kvh * D;

  const int64_t pos = ROPE ? a.rope_pos[b] : 0;
  // The new key/value row enters the cache; this launch reads it from k/v instead.
  if (z == 0 && grp == 0) {
    T* kd = a.kc + (b * a.Smax + P) * row + kvh * D;
    T* vd = a.vc + (b * a.Smax + P) * row + kvh * D;
    const int64_t half = D / 2;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
      if (ROPE) {
        const int64_t i = d < half ? d : d - half;
        const float2 r = rope_rotate(to_f(knew[i]), to_f(knew[i + half]),
                                     rope_cos_sin(pos, i, D, a.rope_log2_theta, a.rope_table, a.rope_table_len));
        kd[d] = from_f<T>(d < half ? r.x : r.y);
      } else {
        kd[d] = knew[d];
      }
      vd[d] = vnew[d];
    }
  }
  float qv[GC][E];
  float kn[E];  // the rotated new key row (ROPE)
  if constexpr (ROPE) {
#pragma unroll
    for (int g = 0; g < GC; ++g) {
      if (g < Gc) rotated_row<T, E>(qv[g], a.q + (b * a.Nq + h0 + g) * D, lane, pos, a);
#pragma unroll
      for (int e = 0; e < E; ++e) qv[g][e] = g < Gc ? qv[g][e] * a.scale : 0.f;
    }
    rotated_row<T, E>(kn, knew, lane, pos, a);
  } else {
#pragma unroll
    for (int g = 0; g < GC; ++g)
#pragma unroll
      for (int e = 0; e < E; ++e) {
        const int64_t d = lane + 32 * e;
        qv[g][e] = (g < Gc && d < D) ? to_f(a.q[(b * a.Nq + h0 + g) * D + d]) * a.scale : 0.f;
      }
  }

  float m[GC], l[GC], acc[GC][E];
#pragma unroll
  for (int g = 0; g < GC; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.f;
#pragma unroll
    for (int e = 0; e < E; ++e) acc[g][e] = 0.f;
  }

  for (int64_t j = j0 + warp * 4; j < j1; j += 4 * W) {
    float kv[4][E], vv[4][E];
    bool valid[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int64_t key = j + u;
      valid[u] = key < j1;
      const int64_t kc = valid[u] ? key : j;  // a readable row for the padding
      const T* kr = kc == P ? knew : kb + kc * row;
      const T* vr = kc == P ? vnew : vb + kc * row;
#pragma unroll
      for (int e = 0; e < E; ++e) {
        const int64_t d = lane + 32 * e;
        if (ROPE && kc == P)
          kv[u][e] = kn[e];
        else
          kv[u][e] = d < D ? to_f(kr[d]) : 0.f;
        vv[u][e] = d < D ? to_f(vr[d]) : 0.f;
      }
    }
#pragma unroll
    for (int g = 0; g < GC; ++g) {
      if (g >= Gc) continue;
      float sc[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        float t = 0.f;
#pragma unroll
        for (int e = 0; e < E; ++e) t = fmaf(qv[g][e], kv[u][e], t);
        t = warp_sum(t);
        sc[u] = valid[u] ? t : -INFINITY;
      }
      const float mx = fmaxf(fmaxf(sc[0], sc[1]), fmaxf(sc[2], sc[3]));
      const float mn = fmaxf(m[g], mx);  // finite: key j is valid
      const float corr = expf(m[g] - mn);
      float p[4], ps = 0.f;
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        p[u] = valid[u] ? expf(sc[u] - mn) : 0.f;
        ps += p[u];
      }
      l[g] = l[g] * corr + ps;
      m[g] = mn;
#pragma unroll
      for (int e = 0; e < E; ++e) {
        float v = acc[g][e] * corr;
#pragma unroll
        for (int u = 0; u < 4; ++u) v = fmaf(p[u], vv[u][e], v);
        acc[g][e] = v;
      }
    }
  }

  // Merge the warps into this split's part.
#pragma unroll
  for (int g = 0; g < GC; ++g) {
    if (g >= Gc) continue;
    if (lane == 0) {
      red[warp][g][0] = m[g];
      red[warp][g][1] = l[g];
    }
#pragma unroll
    for (int e = 0; e < E; ++e) reo[warp][g][lane + 32 * e] = acc[g][e];
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < (int64_t)Gc * D; i += blockDim.x) {
    const int g = static_cast<int>(i / D);
    const int64_t d = i - g * D;
    float M = -INFINITY;
    for (int w = 0; w < W; ++w) M = fmaxf(M, red[w][g][0]);
    float Ls = 0.f, O = 0.f;
    if (M != -INFINITY) {
      for (int w = 0; w < W; ++w) {
        const float f = expf(red[w][g][0] - M);
        Ls += red[w][g][1] * f;
        O += reo[w][g][d] * f;
      }
    }
    part_o[g][d] = O;
    if (d == 0) {
      part_ml[g][0] = M;
      part_ml[g][1] = Ls;
    }
  }
  // Merge the splits: the first block reads every block's part.
  cluster.sync();
  if (z == 0) {
    for (int64_t i = threadIdx.x; i < (int64_t)Gc * D; i += blockDim.x) {
      const int g = static_cast<int>(i / D);
      const int64_t d = i - g * D;
      float M = -INFINITY;
      for (int r = 0; r < nsplit; ++r) M = fmaxf(M, cluster.map_shared_rank(&part_ml[g][0], r)[0]);
      float Ls = 0.f, O = 0.f;
      for (int r = 0; r < nsplit; ++r) {
        const float* ml = cluster.map_shared_rank(&part_ml[g][0], r);
        if (ml[0] == -INFINITY) continue;
        const float f = expf(ml[0] - M);
        Ls += ml[1] * f;
        O += cluster.map_shared_rank(&part_o[g][0], r)[d] * f;
      }
      a.y[(b * a.Nq + h0 + g) * D + d] = from_f<T>(Ls > 0.f ? O / Ls : 0.f);
    }
  }
  // A block's shared memory must outlive the first block's reads of it.
  cluster.sync();
}

// Warps per decode block: 8, or 4 where 8 would need more than 48 KB of shared memory.
template <int GC, int E>
constexpr int decode_warps() {
  return GC * E <= 16 ? 8 : 4;
}

template <class T, int GC, int E>
void launch_decode_e(const Launch& L, dim3 grid, unsigned cluster, const AttnK<T>& k, int ns, int ng) {
  constexpr int W = decode_warps<GC, E>();
  if constexpr (E % 2 == 0) {
    if (k.rope_pos) {
      launch_kernel_cluster(L, "attention(decode+rope)", grid, W * 32, 0, cluster,
                            attn_decode_kernel<T, GC, E, W, true>, L, k, ns, ng);
      return;
    }
  }
  if (k.rope_pos) fail("cuda backend: attention(decode): rope with head_dim {}", k.D);
  launch_kernel_cluster(L, "attention(decode)", grid, W * 32, 0, cluster, attn_decode_kernel<T, GC, E, W, false>,
                        L, k, ns, ng);
}

template <class T, int GC>
void launch_decode_g(const Launch& L, dim3 grid, unsigned cluster, const AttnK<T>& k, int ns, int ng) {
  if (k.D <= 32)
    launch_decode_e<T, GC, 1>(L, grid, cluster, k, ns, ng);
  else if (k.D <= 64)
    launch_decode_e<T, GC, 2>(L, grid, cluster, k, ns, ng);
  else if (k.D <= 128)
    launch_decode_e<T, GC, 4>(L, grid, cluster, k, ns, ng);
  else
    launch_decode_e<T, GC, 8>(L, grid, cluster, k, ns, ng);
}

// --- tensor-core flash attention (f16 / bf16) -------------------------------------------
constexpr int kBM = 64, kBN = 64;

template <int D>
constexpr size_t flash_smem_bytes() {
  return 4ull * kBN * (D + 8) * 2;  // K and V, two stages each, padded rows of 16-bit values
}

// 64 query rows per block (16 per warp), key/value tiles of 64 rows double-buffered in
// shared memory by cp.async (the next tile loads while this one computes); S = Q.K^T and
// O += P.V on mma.sync.m16n8k16 with B fragments from ldmatrix (.trans for V); online
// softmax on the accumulators in registers. Rows are padded by 8 elements, so fragment
// loads are conflict-free.
template <class T, int D>
__global__ void __launch_bounds__(128) attn_flash_tc_kernel(Launch L, AttnK<T> a) {
  pdl_trigger();
  pdl_wait();
  constexpr int LD = D + 8;
  constexpr int KC = D / 16, DN = D / 8, NT = kBN / 8, CPR = D / 8;
  extern __shared__ uint4 flash_smem[];
  T* const sbase = reinterpret_cast<T*>(flash_smem);
  T* const Ks0 = sbase;
  T* const Vs0 = sbase + 2 * kBN * LD;  // stage st: Ks0 + st*kBN*LD, Vs0 + st*kBN*LD
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, c = lane & 3;
  const int64_t mb = gridDim.x - 1 - blockIdx.x;  // longest causal rows first
  const int64_t h = blockIdx.y, b = blockIdx.z;
  const bool cached = a.kc != nullptr;
  const int64_t P = cached ? start_pos(L) : 0;
  const int64_t S = a.S, G = a.Nq / a.Nkv, kvh = h / G, row = a.Nkv * D;
  const int64_t m0 = mb * kBM;
  const T* kb = (cached ? a.kc + b * a.Smax * row : a.knew + b * S * row) + kvh * D;
  const T* vb = (cached ? a.vc + b * a.Smax * row : a.vnew + b * S * row) + kvh * D;

  // Q tile -> shared (stage 0 of K as staging) -> fragments.
  for (int i = tid; i < kBM * CPR; i += blockDim.x) {
    const int r = i / CPR, cc = (i % CPR) * 8;
    const int64_t s = m0 + r;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (s < S) v = *reinterpret_cast<const uint4*>(a.q + ((b * S + s) * a.Nq + h) * D + cc);
    *reinterpret_cast<uint4*>(&Ks0[r * LD + cc]) = v;
  }
  __syncthreads();
  uint32_t qf[KC][4];
  const int r0 = warp * 16 + g, r1 = r0 + 8;
#pragma unroll
  for (int kc = 0; kc < KC; ++kc) {
    qf[kc][0] = *reinterpret_cast<const uint32_t*>(&Ks0[r0 * LD + kc * 16 + 2 * c]);
    qf[kc][1] = *reinterpret_cast<const uint32_t*>(&Ks0[r1 * LD + kc * 16 + 2 * c]);
    qf[kc][2] = *reinterpret_cast<const uint32_t*>(&Ks0[r0 * LD + kc * 16 + 2 * c + 8]);
    qf[kc][3] = *reinterpret_cast<const uint32_t*>(&Ks0[r1 * LD + kc * 16 + 2 * c + 8]);
  }
  __syncthreads();

  float o[DN][4];
#pragma unroll
  for (int i = 0; i < DN; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};
  const float sl2 = a.scale * 1.4426950408889634f;
  const int64_t qpos[2] = {P + m0 + r0, P + m0 + r1};
  const int64_t kend = a.causal ? P + (S < m0 + kBM ? S : m0 + kBM) : P + S;
  const int64_t ntiles = (kend + kBN - 1) / kBN;

  auto load_tile = [&](int64_t t, int st) {
    const int64_t n0 = t * kBN;
    T* Kd = Ks0 + st * kBN * LD;
    T* Vd = Vs0 + st * kBN * LD;
    for (int i = tid; i < kBN * CPR; i += blockDim.x) {
      const int r = i / CPR, cc = (i % CPR) * 8;
      const int64_t j = n0 + r;
      const bool ok = j < kend;
      const int64_t js = ok ? j : 0;
      cp_async16z(&Kd[r * LD + cc], kb + js * row + cc, ok ? 16u : 0u);
      cp_async16z(&Vd[r * LD + cc], vb + js * row + cc, ok ? 16u : 0u);
    }
  };
  if (ntiles > 0) load_tile(0, 0);
  cp_async_commit();

  // ldmatrix row addresses of this thread: matrix mi = lane / 8, row lane % 8.
  const int mi = lane >> 3, mr = lane & 7;

  double_buffered(ntiles, load_tile, [&](int64_t t, int st) {
    const T* Ks = Ks0 + st * kBN * LD;
    const T* Vs = Vs0 + st * kBN * LD;
    const int64_t n0 = t * kBN;

    float sacc[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      sacc[nt][0] = sacc[nt][1] = sacc[nt][2] = sacc[nt][3] = 0.f;
      if constexpr (KC == 1) {
        uint32_t b0, b1;
        ldsm_x2(smem_u32(&Ks[(nt * 8 + mr) * LD + (mi & 1) * 8]), b0, b1);
        mma16816<T>(sacc[nt], qf[0], b0, b1);
      } else {
#pragma unroll
        for (int kc = 0; kc < KC; kc += 2) {
          uint32_t b0, b1, b2, b3;
          ldsm_x4(smem_u32(&Ks[(nt * 8 + mr) * LD + (kc + (mi >> 1)) * 16 + (mi & 1) * 8]), b0, b1, b2, b3);
          mma16816<T>(sacc[nt], qf[kc], b0, b1);
          mma16816<T>(sacc[nt], qf[kc + 1], b2, b3);
        }
      }
    }
    // Scale, mask, online softmax (rows r0: elements 0,1; r1: elements 2,3).
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int64_t key = n0 + nt * 8 + 2 * c + e;
          float v = sacc[nt][2 * rr + e] * sl2;
          if (key >= kend || (a.causal && key > qpos[rr])) v = -INFINITY;
          sacc[nt][2 * rr + e] = v;
          mx = fmaxf(mx, v);
        }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mn = fmaxf(mrow[rr], mx);
      const float mu = mn == -INFINITY ? 0.f : mn;
      const float alpha = exp2f(mrow[rr] - mu);
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float p = exp2f(sacc[nt][2 * rr + e] - mu);
          sacc[nt][2 * rr + e] = p;
          sum += p;
        }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      lrow[rr] = lrow[rr] * alpha + sum;
      mrow[rr] = mn;
#pragma unroll
      for (int dn = 0; dn < DN; ++dn) {
        o[dn][2 * rr] *= alpha;
        o[dn][2 * rr + 1] *= alpha;
      }
    }
    // O += P V
#pragma unroll
    for (int kc2 = 0; kc2 < kBN / 16; ++kc2) {
      uint32_t pa[4];
      pa[0] = pack2<T>(sacc[2 * kc2][0], sacc[2 * kc2][1]);
      pa[1] = pack2<T>(sacc[2 * kc2][2], sacc[2 * kc2][3]);
      pa[2] = pack2<T>(sacc[2 * kc2 + 1][0], sacc[2 * kc2 + 1][1]);
      pa[3] = pack2<T>(sacc[2 * kc2 + 1][2], sacc[2 * kc2 + 1][3]);
#pragma unroll
      for (int dn = 0; dn < DN; dn += 2) {
        uint32_t b0, b1, b2, b3;
        ldsm_x4_t(smem_u32(&Vs[(kc2 * 16 + (mi & 1) * 8 + mr) * LD + (dn + (mi >> 1)) * 8]), b0, b1, b2, b3);
        mma16816<T>(o[dn], pa, b0, b1);
        mma16816<T>(o[dn + 1], pa, b2, b3);
      }
    }
  });

#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const int64_t s = m0 + (rr ? r1 : r0);
    if (s >= S) continue;
    const float inv = lrow[rr] > 0.f ? 1.f / lrow[rr] : 0.f;
    T* yr = a.y + ((b * S + s) * a.Nq + h) * D;
#pragma unroll
    for (int dn = 0; dn < DN; ++dn)
      *reinterpret_cast<uint32_t*>(yr + dn * 8 + 2 * c) =
          pack2<T>(o[dn][2 * rr] * inv, o[dn][2 * rr + 1] * inv);
  }
}

bool tc_head_dim(int64_t D) { return D == 16 || D == 32 || D == 64 || D == 128; }

bool use_tc(const AttentionArgs& a, bool allow_tc) {
  return allow_tc && (a.dtype == DType::BF16 || a.dtype == DType::F16) && tc_head_dim(a.D);
}

bool use_decode(const AttentionArgs& a) { return a.k_cache != nullptr && a.S == 1 && a.D <= kMaxD; }

// Query heads per decode block: the smallest of 1, 2, 4, 8 that covers the group.
int decode_gc(const AttentionArgs& a) {
  const int64_t G = a.Nq / a.Nkv;
  return G <= 1 ? 1 : G <= 2 ? 2 : G <= 4 ? 4 : kDecodeG;
}

int decode_groups(const AttentionArgs& a) {
  const int64_t G = a.Nq / a.Nkv;
  const int gc = decode_gc(a);
  return static_cast<int>((G + gc - 1) / gc);
}

// Key splits per (b, kv head group): enough blocks for two per SM, at least 32 keys a
// split at full length, and a cluster's worth at most.
int decode_splits(const AttentionArgs& a, int num_sms) {
  const int64_t blocks = a.Nkv * decode_groups(a) * a.B;
  int64_t want = (2 * static_cast<int64_t>(num_sms) + blocks - 1) / blocks;
  int64_t cap = (a.Smax + 31) / 32;
  if (want > cap) want = cap;
  if (want > kDecodeMaxSplits) want = kDecodeMaxSplits;
  if (want < 1) want = 1;
  return static_cast<int>(want);
}

template <class T>
AttnK<T> make_args(const AttentionArgs& a) {
  AttnK<T> k;
  k.q = static_cast<const T*>(a.q);
  k.knew = static_cast<const T*>(a.k);
  k.vnew = static_cast<const T*>(a.v);
  k.y = static_cast<T*>(a.y);
  k.kc = static_cast<T*>(a.k_cache);
  k.vc = static_cast<T*>(a.v_cache);
  k.B = a.B;
  k.S = a.S;
  k.Nq = a.Nq;
  k.Nkv = a.Nkv;
  k.D = a.D;
  k.Smax = a.Smax;
  k.scale = a.scale;
  k.causal = a.causal ? 1 : 0;
  k.rope_pos = a.rope_pos;
  k.rope_table = static_cast<const float2*>(a.rope_table);
  k.rope_table_len = a.rope_table ? a.rope_table_len : 0;
  k.rope_log2_theta = a.rope_pos ? std::log2(a.rope_theta) : 0.0;
  return k;
}

template <class T, int D>
void launch_tc(const Launch& L, const AttnK<T>& k) {
  dim3 grid(static_cast<unsigned>((k.S + kBM - 1) / kBM), static_cast<unsigned>(k.Nq),
            static_cast<unsigned>(k.B));
  constexpr size_t smem = flash_smem_bytes<D>();
  static bool attr = false;
  if (!attr) {
    check_cuda(cudaFuncSetAttribute(attn_flash_tc_kernel<T, D>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
               "cudaFuncSetAttribute", "attention(flash-tc)");
    attr = true;
  }
  launch_kernel(L, "attention(flash-tc)", grid, 128, smem, attn_flash_tc_kernel<T, D>, L, k);
}

template <class T>
bool launch_tc_any(const Launch& L, const AttnK<T>& k) {
  switch (k.D) {
    case 16: launch_tc<T, 16>(L, k); return true;
    case 32: launch_tc<T, 32>(L, k); return true;
    case 64: launch_tc<T, 64>(L, k); return true;
    case 128: launch_tc<T, 128>(L, k); return true;
  }
  return false;
}
template <>
bool launch_tc_any<float>(const Launch&, const AttnK<float>&) {
  return false;
}

}  // namespace

bool attention_fuses_rope(const AttentionArgs& a) {
  return use_decode(a) && (a.D == 64 || a.D == 128 || a.D == 256);
}

const char* attention_impl(const AttentionArgs& a, bool allow_tc) {
  if (use_decode(a)) return "decode";
  if (use_tc(a, allow_tc)) return "flash-tc";
  return "flash-simt";
}

void attention(const Launch& L, const AttentionArgs& a, int num_sms, bool allow_tc) {
  if (a.D > kMaxD && !use_tc(a, allow_tc))
    fail("cuda backend: attention: head_dim {} is larger than {}", a.D, kMaxD);
  if (a.rope_pos && !attention_fuses_rope(a))
    fail("cuda backend: attention: rope inside attention needs a decode step with head_dim 64, 128 or 256");
  BMSYS_DISPATCH_FLOAT(a.dtype, T, "attention", {
    AttnK<T> k = make_args<T>(a);
    if (use_decode(a)) {
      const int ns = decode_splits(a, num_sms), ng = decode_groups(a);
      const dim3 grid(static_cast<unsigned>(a.Nkv * ng * ns), static_cast<unsigned>(a.B));
      const unsigned cl = static_cast<unsigned>(ns);
      switch (decode_gc(a)) {
        case 1: launch_decode_g<T, 1>(L, grid, cl, k, ns, ng); break;
        case 2: launch_decode_g<T, 2>(L, grid, cl, k, ns, ng); break;
        case 4: launch_decode_g<T, 4>(L, grid, cl, k, ns, ng); break;
        default: launch_decode_g<T, kDecodeG>(L, grid, cl, k, ns, ng); break;
      }
      return;
    }
    if (a.k_cache) {
      const int64_t n = a.B * a.S * a.Nkv * a.D;
      launch_kernel(L, "attention(cache write)", grid_for(n, 256), 256, 0, cache_write_kernel<T>,
                    L, k);
    }
    if (use_tc(a, allow_tc) && launch_tc_any<T>(L, k)) return;
    dim3 grid(static_cast<unsigned>((a.S + 3) / 4), static_cast<unsigned>(a.Nq),
              static_cast<unsigned>(a.B));
    launch_kernel(L, "attention(flash-simt)", grid, 128, 0, attn_simt_kernel<T>, L, k);
  });
}

}  // namespace bmsys::rt::cuda
