// The weight-only INT8 GEMV on the tensor cores (int8.h: gemv_int8_mma): decode's
// y[m,n] = (sum_k x[m,k] q[n,k]) * scale[n] + bias[n] for M <= kGemvMaxRows rows of x,
// for up to three weights sharing x (q/k/v, gate/up) in one launch.
//
// Why: the SIMT GEMV (int8.cu) turns every weight into a float (a byte permute and an
// add) and multiplies it by x (a convert and an FMA): four instructions a byte. Here no
// instruction touches a weight after its load: a 16-byte load is two A operands of
// mma.m16n8k32.s8 as it is.
//
// How x becomes INT8 without losing precision: each row of x is written as P signed
// base-256 digits, x[m,k] = 2^e[m] * sum_p d[p][m,k] 256^p + r with d in [-128, 127],
// e[m] chosen so that max_k |x[m,k]| / 2^e[m] < 2^(8P-2), and |r| <= 2^(e[m]-1): P = 3
// (22 bits) for bf16 and f16 inputs, whose 8 and 11 significant bits it holds exactly
// down to 2^-11 of the row's largest element, and P = 4 (30 bits) for f32. The digits
// are the B operand's 8 columns (column m*P + p), so one mma computes every digit plane
// of up to 2 rows of x (3 column tiles for 8 rows). The products sum exactly in int32
// (|sum| <= 127 * 128 * K < 2^31 for K <= kGemvI8MmaMaxK), partial sums of the warps
// add exactly in shared memory, and the planes combine exactly in a double:
// y = float(sum_p 256^p acc[p]) * 2^e * scale + bias. The result is the exact dot
// product of q with the 2^e-rounded x, rounded once; it does not depend on how K is
// split, so grouped launches and the order of the warps cannot change it. A row of x
// with an Inf or NaN gives NaN.
//
// Work split: a tile is 16 rows of one weight (mma's M). A persistent block of 16 warps
// takes tiles b, b + grid, ...; warp w takes the 64-byte column units w, w + 16, ... of
// the tile's rows (lane 4g + t loads rows g and g + 8 at 16 * (4 * unit + t)), 4 units
// in flight: a K = 4096 tile (64 KB) at once. The first tile's loads (and its rows'
// scales) go out before griddepcontrol.wait where no earlier kernel of the flush writes
// them (Launch::early_loads). Each next tile's loads go out as soon as the registers are consumed,
// while the tile before is summed and stored. x is cut into digits once per block.
#include <algorithm>
#include <climits>

#include "runtime/backends/cuda/device_util.cuh"
#include "runtime/backends/cuda/int8.h"
#include "runtime/backends/cuda/kernels.h"

namespace bmsys::rt::cuda {

namespace {

constexpr int kWarps = 16;     // a block: K split over 16 warps
constexpr int kTileRows = 16;  // rows of q a tile covers (mma's M)
constexpr int kUnits = 4;      // 64-byte units a warp has in flight (2 x 4 16-byte loads a lane)
// Shared memory a block may use for x's digits: 2 blocks an SM with room to spare.
constexpr int64_t kMaxSmemBytes = 96 << 10;

template <class T>
__host__ __device__ constexpr int digit_planes() {
  return sizeof(T) == 4 ? 4 : 3;
}

// Bytes between two digit columns in shared memory: the K units padded to 128 bytes, plus
// 64, so that the 8 lanes of a quarter warp (columns g and g+1, 16 bytes each at t * 16)
// read 8 distinct 16-byte bank groups.
int64_t digit_stride(int64_t K) { return ((K + 63) / 64 * 64 + 127) / 128 * 128 + 64; }

// The weights of a launch, their 16-row tiles numbered job after job.
struct MmaRows {
  const int8_t* q[kGemvMaxJobs];
  int N[kGemvMaxJobs];
  int first_tile[kGemvMaxJobs];
  int njobs;
  int tiles;
};

template <class T>
struct MmaK {
  const T* x;
  int M, K, stride;  // stride: digit_stride(K)
  MmaRows w;
  const float* scale[kGemvMaxJobs];
  const T* bias[kGemvMaxJobs];
  T* y[kGemvMaxJobs];
  bool early;  // Launch::early_loads: the first tile may load before griddepcontrol.wait
};

// a[j] by constant indices only (a dynamic index would copy the parameter struct to local
// memory).
template <class A>
__device__ __forceinline__ A pick(const A (&a)[kGemvMaxJobs], int j) {
  return j == 0 ? a[0] : j == 1 ? a[1] : a[2];
}

__device__ __forceinline__ void mma_s8(int (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                       uint32_t a3, uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// 4 bytes global -> shared, asynchronously (cp_async_wait_all waits for this thread's).
__device__ __forceinline__ void cp_async4(void* dst, const void* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(static_cast<unsigned>(__cvta_generic_to_shared(dst))),
               "l"(src)
               : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

// The exponent e of a row whose largest |x| has the bits `amax` (the bits of a
// non-negative float order as unsigned ints, NaN above Inf): INT_MIN for Inf or NaN.
template <int P>
__device__ __forceinline__ int row_exponent(unsigned amax) {
  const float a = __uint_as_float(amax);
  if (!(a <= 3.402823466e38f)) return INT_MIN;
  if (a == 0.f) return 0;
  int E = 0;
  frexpf(a, &E);  // a < 2^E
  return E - (8 * P - 2);
}

// A tile's rows: job jb's rows n0 .. n0 + 15.
struct Tile {
  int jb, n0, N;
};
__device__ __forceinline__ Tile tile_of(const MmaRows& w, int tile) {
  Tile o;
  o.jb = w.njobs > 1 && tile >= w.first_tile[1] ? (w.njobs > 2 && tile >= w.first_tile[2] ? 2 : 1) : 0;
  o.n0 = (tile - pick(w.first_tile, o.jb)) * kTileRows;
  o.N = pick(w.N, o.jb);
  return o;
}

// Persistent: block b computes tiles b, b + gridDim.x, ... NB column tiles of 8 digit
// columns (NB = ceil(M * P / 8)).
template <class T, int NB>
__global__ void __launch_bounds__(kWarps * 32, 2) gemv_int8_mma_kernel(const MmaK<T> a) {
  constexpr int P = digit_planes<T>();
  pdl_trigger();
  pdl_wait_unless(a.early);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int M = a.M, K = a.K, stride = a.stride;
  const int nv = K / 16, units = (nv + 3) / 4;
  // Rounds of kUnits units this warp takes in every tile: units warp + kWarps * (r *
  // kUnits + u).
  const int rounds = warp < units ? (units - warp + kWarps * kUnits - 1) / (kWarps * kUnits) : 0;

  // The weights in flight: round r of the tile whose rows qa, qb point at. A lane past
  // its tile's rows or past K keeps zeros (they add nothing).
  const uint4 *qa = nullptr, *qb = nullptr;
  bool row_a = false, row_b = false;
  auto aim = [&](int tile) {
    const Tile o = tile_of(a.w, tile);
    const int8_t* q = pick(a.w.q, o.jb);
    row_a = o.n0 + g < o.N;
    row_b = o.n0 + g + 8 < o.N;
    qa = reinterpret_cast<const uint4*>(q + static_cast<int64_t>(row_a ? o.n0 + g : 0) * K);
    qb = reinterpret_cast<const uint4*>(q + static_cast<int64_t>(row_b ? o.n0 + g + 8 : 0) * K);
  };
  uint4 wa[kUnits] = {}, wb[kUnits] = {};
  auto load_round = [&](int r) {
#pragma unroll
    for (int u = 0; u < kUnits; ++u) {
      wa[u] = make_uint4(0, 0, 0, 0);
      wb[u] = make_uint4(0, 0, 0, 0);
    }
    if (row_a || row_b) {
#pragma unroll
      for (int u = 0; u < kUnits; ++u) {
        const int c = (warp + kWarps * (r * kUnits + u)) * 4 + t;
        if (c < nv) {
          if (row_a) wa[u] = load_stream16(qa + c);
          if (row_b) wb[u] = load_stream16(qb + c);
        }
      }
    }
  };
  // The first round before the wait, inside a branch: ptxas keeps the wait below a
  // divergent branch but may hoist it above merely predicated loads (docs/cuda.md,
  // session 8; scripts/gpu/check_sass.py checks the order).
  // The scales of a tile's rows go to shared memory a tile ahead (cp.async: no register
  // waits for them), so that storing a tile's outputs does not wait on memory.
  __shared__ float scale_s[2][kTileRows];
  auto prefetch_scale = [&](int tile, int buf) {
    if (tid < kTileRows && tile < a.w.tiles) {
      const Tile o = tile_of(a.w, tile);
      const int n = o.n0 + tid;
      if (n < o.N) cp_async4(&scale_s[buf][tid], pick(a.scale, o.jb) + n);
    }
  };
  int tile = blockIdx.x;
  aim(tile);
  if (rounds > 0) load_round(0);
  prefetch_scale(tile, 0);
  pdl_wait();

  // --- x as digits, once per block -----------------------------------------------------
  extern __shared__ uint4 gemv_i8_mma_smem[];
  int8_t* dig = reinterpret_cast<int8_t*>(gemv_i8_mma_smem);  // [M * P][stride]
  __shared__ unsigned amax_part[kWarps][kGemvMaxRows];
  __shared__ int exp_s[kGemvMaxRows];
  __shared__ int acc_s[2][kTileRows][8 * NB];  // two tiles' sums: one barrier a tile
  constexpr int PN = Pack<T>::N;
  const int npk = K / PN;
  for (int m = 0; m < M; ++m) {
    unsigned mx = 0;
    for (int j = tid; j < npk; j += kWarps * 32) {
      const Pack<T> v = load_pack(a.x + m * K + j * PN);
#pragma unroll
      for (int e = 0; e < PN; ++e) mx = max(mx, __float_as_uint(fabsf(to_f(v.v[e]))));
    }
    mx = __reduce_max_sync(0xffffffffu, mx);
    if (lane == 0) amax_part[warp][m] = mx;
  }
  for (int i = tid; i < 2 * kTileRows * 8 * NB; i += kWarps * 32) (&acc_s[0][0][0])[i] = 0;
  const int kpad = units * 64;  // digits past K are zero
  for (int i = tid; i < M * P * 4; i += kWarps * 32) {
    const int off = K + (i & 3) * 16;
    if (off < kpad) *reinterpret_cast<uint4*>(dig + (i >> 2) * stride + off) = make_uint4(0, 0, 0, 0);
  }
  __syncthreads();
  for (int m = 0; m < M; ++m) {
    unsigned mx = 0;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) mx = max(mx, amax_part[w][m]);
    const int e = row_exponent<P>(mx);
    if (tid == 0) exp_s[m] = e;
    for (int j = tid; j < npk; j += kWarps * 32) {
      const Pack<T> v = load_pack(a.x + m * K + j * PN);  // again: from L1
      uint32_t word[P][PN / 4];
#pragma unroll
      for (int p = 0; p < P; ++p)
#pragma unroll
        for (int w = 0; w < PN / 4; ++w) word[p][w] = 0;
#pragma unroll
      for (int el = 0; el < PN; ++el) {
        int r = e == INT_MIN ? 0 : __float2int_rn(ldexpf(to_f(v.v[el]), -e));
#pragma unroll
        for (int p = 0; p < P; ++p) {
          const int d = static_cast<int8_t>(r & 0xff);  // r = d (mod 256), d in [-128, 127]
          word[p][el / 4] |= (static_cast<uint32_t>(d) & 0xffu) << (8 * (el % 4));
          r = (r - d) >> 8;
        }
      }
#pragma unroll
      for (int p = 0; p < P; ++p) {
        int8_t* dst = dig + (m * P + p) * stride + j * PN;
        if constexpr (PN == 8)
          *reinterpret_cast<uint2*>(dst) = make_uint2(word[p][0], word[p][1]);
        else
          *reinterpret_cast<uint32_t*>(dst) = word[p][0];
      }
    }
  }
  __syncthreads();

  // --- the tiles -------------------------------------------------------------------------
  const int ncols = M * P;
  // This lane's digits: column g of each column tile, from byte 16 t of a unit.
  const int8_t* dl = dig + g * stride + t * 16;
  for (int buf = 0; tile < a.w.tiles; tile += gridDim.x, buf ^= 1) {
    int acc[NB][4];
#pragma unroll
    for (int nb = 0; nb < NB; ++nb)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[nb][i] = 0;
    for (int r = 0; r < rounds; ++r) {
#pragma unroll
      for (int u = 0; u < kUnits; ++u) {
        const int unit = warp + kWarps * (r * kUnits + u);
        if (unit < units) {
#pragma unroll
          for (int nb = 0; nb < NB; ++nb) {
            uint4 d = make_uint4(0, 0, 0, 0);
            if (nb * 8 + g < ncols) d = *reinterpret_cast<const uint4*>(dl + nb * 8 * stride + unit * 64);
            mma_s8(acc[nb], wa[u].x, wb[u].x, wa[u].y, wb[u].y, d.x, d.y);
            mma_s8(acc[nb], wa[u].z, wb[u].z, wa[u].w, wb[u].w, d.z, d.w);
          }
        }
      }
      // The registers are free: the next round's loads go out now, those of the next
      // tile while this one is summed and stored.
      if (r + 1 < rounds) {
        load_round(r + 1);
      } else if (tile + gridDim.x < a.w.tiles) {
        aim(tile + gridDim.x);
        load_round(0);
      }
    }
    // Thread (g, t) holds rows g and g + 8, columns 2t and 2t + 1 of each column tile.
#pragma unroll
    for (int nb = 0; nb < NB; ++nb)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int col = nb * 8 + 2 * t + (i & 1);
        if (col < ncols) atomicAdd(&acc_s[buf][g + (i >> 1) * 8][col], acc[nb][i]);
      }
    cp_async_wait_all();  // this tile's scales
    __syncthreads();
    // Thread (row, m) zeroes what it read: the buffer is next used two tiles on, after the
    // next tile's barrier.
    if (tid < kTileRows * M) {
      const int rr = tid % kTileRows, m = tid / kTileRows;
      const Tile o = tile_of(a.w, tile);
      const int n = o.n0 + rr;
      double sum = 0.0;
#pragma unroll
      for (int p = P - 1; p >= 0; --p) {
        sum = sum * 256.0 + acc_s[buf][rr][m * P + p];
        acc_s[buf][rr][m * P + p] = 0;
      }
      if (n < o.N) {
        const T* bias = pick(a.bias, o.jb);
        const int e = exp_s[m];
        const float dot = e == INT_MIN ? __int_as_float(0x7fffffff) : ldexpf(static_cast<float>(sum), e);
        pick(a.y, o.jb)[static_cast<int64_t>(m) * o.N + n] =
            from_f<T>(dot * scale_s[buf][rr] + (bias ? to_f(bias[n]) : 0.f));
      }
    }
    prefetch_scale(tile + gridDim.x, buf ^ 1);
  }
}

int digit_planes(DType t) { return t == DType::F32 ? digit_planes<float>() : digit_planes<__nv_bfloat16>(); }

// Dynamic shared memory: the digits.
int64_t smem_bytes(DType t, int64_t M, int64_t K) { return M * digit_planes(t) * digit_stride(K); }

// Blocks of a launch: those resident at once (two an SM), at most one a tile.
int grid_of(int tiles) { return std::min(tiles, 2 * sm_count("linear_int8(gemv mma)")); }

// The 16-row tiles of up to kGemvMaxJobs weights of `rows` rows each.
MmaRows rows_of(const int8_t* const* q, const int64_t* N, int njobs) {
  MmaRows w{};
  w.njobs = njobs;
  int64_t tiles = 0;
  for (int j = 0; j < njobs; ++j) {
    if (!aligned16(q[j]) || N[j] >= (int64_t{1} << 30))
      fail("cuda backend: linear_int8 gemv (tensor cores): weight {} is not 16-byte aligned or has {} rows (internal)",
           j, N[j]);
    w.q[j] = q[j];
    w.N[j] = static_cast<int>(N[j]);
    w.first_tile[j] = static_cast<int>(tiles);
    tiles += (N[j] + kTileRows - 1) / kTileRows;
  }
  w.tiles = static_cast<int>(tiles);
  return w;
}

template <class T, int NB>
void launch_mma(const Launch& L, const MmaK<T>& a, size_t smem) {
  allow_dynamic_smem(reinterpret_cast<const void*>(gemv_int8_mma_kernel<T, NB>), static_cast<int>(kMaxSmemBytes),
                     "linear_int8(gemv mma)");
  launch_kernel(L, "linear_int8(gemv mma)", static_cast<unsigned>(grid_of(a.w.tiles)), kWarps * 32, smem,
                gemv_int8_mma_kernel<T, NB>, a);
}

}  // namespace

bool gemv_int8_mma_fits(DType t, int64_t M, int64_t K) {
  return (t == DType::F32 || t == DType::F16 || t == DType::BF16) && M >= 1 && M <= kGemvMaxRows && K >= 16 &&
         K % 16 == 0 && K <= kGemvI8MmaMaxK && smem_bytes(t, M, K) <= kMaxSmemBytes;
}

void gemv_int8_mma(const Launch& L, DType t, const void* x, int64_t M, int64_t K, const Int8GemvJob* jobs,
                   int njobs) {
  if (!gemv_int8_mma_fits(t, M, K) || njobs < 1 || njobs > kGemvMaxJobs || !aligned16(x))
    fail("cuda backend: linear_int8 gemv (tensor cores): {} rows of K = {}, {} weights do not fit (internal)", M, K,
         njobs);
  BMSYS_DISPATCH_FLOAT(t, T, "linear_int8(gemv mma)", {
    MmaK<T> a{};
    a.early = L.early_loads;
    a.x = static_cast<const T*>(x);
    a.M = static_cast<int>(M);
    a.K = static_cast<int>(K);
    a.stride = static_cast<int>(digit_stride(K));
    const int8_t* q[kGemvMaxJobs];
    int64_t N[kGemvMaxJobs];
    for (int j = 0; j < njobs; ++j) {
      q[j] = jobs[j].q;
      N[j] = jobs[j].N;
      a.scale[j] = jobs[j].scale;
      a.bias[j] = static_cast<const T*>(jobs[j].bias);
      a.y[j] = static_cast<T*>(jobs[j].y);
    }
    a.w = rows_of(q, N, njobs);
    if (a.w.tiles == 0) return;
    const int nb = static_cast<int>((M * digit_planes<T>() + 7) / 8);
    const size_t smem = static_cast<size_t>(smem_bytes(t, M, K));
    if (nb == 1) launch_mma<T, 1>(L, a, smem);
    else if (nb == 2) launch_mma<T, 2>(L, a, smem);
    else if (nb == 3) launch_mma<T, 3>(L, a, smem);
    else if constexpr (digit_planes<T>() == 4) launch_mma<T, 4>(L, a, smem);  // f32, M > 6
  });
}

}  // namespace bmsys::rt::cuda
