// The next token picked on the device (kernels.h: pick_rows), by core/pick.h's
// definition, so that sampled decoding is fed on the device like greedy decoding.
//
// pick_token orders the candidates by decreasing logit (ties: lower id first), keeps
// the top-k, then the smallest prefix whose probability reaches top-p, and scans that
// prefix (in id order when nothing is cut) for the first token whose cumulative
// probability exceeds uniform * total. Here:
//  - Where top-k or top-p cut, the logits become 64-bit keys, the float's orderable bits
//    above the inverted id (NaN as -inf, -0 as +0), so that a descending sort of the keys
//    is exactly that order; cub sorts them (DeviceRadixSort for one row,
//    DeviceSegmentedRadixSort for several).
//  - One block a row then runs up to three passes over the scan order: the total (for
//    top-p), the first prefix reaching top-p of it, the draw. In a pass thread t sums a
//    contiguous segment of the order, a block scan gives each segment's offset, and the
//    thread re-walks its segment to find where the running sum crosses. The segments
//    depend on the row's candidate count only, so the draw's pass sees the same sums the
//    prefix's pass saw.
// The host sums in another order (one running sum), and its exp() may differ from the
// device's in the last bit: a token can differ from the host's only where the uniform
// falls within rounding (~1e-15 relative) of a boundary between two tokens.
#include <cub/cub.cuh>
#include <cuda/functional>

#include <climits>

#include "runtime/backends/cuda/device_util.cuh"
#include "runtime/backends/cuda/kernels.h"

namespace bmsys::rt::cuda {

namespace {

constexpr int kPickThreads = 1024;
constexpr int kPickRows = 64;  // rows (and their uniforms) one launch of pick_kernel takes

// NaN counts as -inf (never drawn), and -0 as +0 (the host compares them equal).
__device__ __forceinline__ float clean(float f) { return f != f ? -INFINITY : (f == 0.f ? 0.f : f); }
// Unsigned ints that order as the floats do.
__device__ __forceinline__ uint32_t orderable(float f) {
  const uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float from_orderable(uint32_t o) {
  return __uint_as_float((o & 0x80000000u) ? (o & 0x7fffffffu) : ~o);
}

// keys[r * V + i] = orderable(logit) << id_bits | (2^id_bits - 1 - i); offsets[r] = r * V.
template <class T>
__global__ void pick_keys_kernel(uint64_t* keys, int* offsets, const T* x, int64_t rows, int V, int64_t stride,
                                 int id_bits) {
  pdl_trigger();
  pdl_wait();
  const int64_t n = rows * V;
  const uint64_t id_max = (uint64_t{1} << id_bits) - 1;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / V, id = i - r * V;
    keys[i] = (static_cast<uint64_t>(orderable(clean(to_f(x[r * stride + id])))) << id_bits) |
              (id_max - static_cast<uint64_t>(id));
  }
  if (blockIdx.x == 0)
    for (int64_t r = threadIdx.x; r <= rows; r += blockDim.x) offsets[r] = static_cast<int>(r * V);
}

template <class T>
struct PickArgs {
  const T* x;              // row r at x + r * stride
  int64_t stride;
  const uint64_t* keys;    // sorted, row r at keys + r * V; null: scan in id order
  int V, n;                // vocabulary, candidates (top-k or V)
  int id_bits;
  double temperature, top_p;
  int64_t* out;
  int row0;                // this launch's first row
  double u[kPickRows];     // the rows' uniforms
};

template <class T>
__global__ void __launch_bounds__(kPickThreads) pick_kernel(const PickArgs<T> a) {
  pdl_trigger();
  pdl_wait();
  using Reduce = cub::BlockReduce<double, kPickThreads>;
  using Scan = cub::BlockScan<double, kPickThreads>;
  __shared__ union {
    typename Reduce::TempStorage reduce;
    typename Scan::TempStorage scan;
  } tmp;
  __shared__ double s_d;
  __shared__ int s_i;
  const int t = threadIdx.x, r = a.row0 + blockIdx.x;
  const T* row = a.x + r * a.stride;
  const uint64_t* keys = a.keys ? a.keys + static_cast<int64_t>(r) * a.V : nullptr;
  const uint64_t id_max = (uint64_t{1} << a.id_bits) - 1;
  // Element j of the scan order: its id, and its logit / temperature as the host has it.
  auto elem = [&](int j, int& id) -> double {
    float f;
    if (keys) {
      const uint64_t k = keys[j];
      id = static_cast<int>(id_max - (k & id_max));
      f = from_orderable(static_cast<uint32_t>(k >> a.id_bits));
    } else {
      id = j;
      f = clean(to_f(row[j]));
    }
    return static_cast<double>(f) / a.temperature;
  };
  int id0 = 0;
  double mx;
  if (keys) {
    mx = elem(0, id0);
  } else {
    double m = -INFINITY;
    for (int j = t; j < a.n; j += kPickThreads) {
      int id;
      m = fmax(m, elem(j, id));
    }
    m = Reduce(tmp.reduce).Reduce(m, ::cuda::maximum<>{});
    if (t == 0) s_d = m;
    __syncthreads();
    mx = s_d;
    __syncthreads();
  }
  if (!isfinite(mx)) {  // every candidate -inf, or one +inf: the first maximum
    if (!keys) {
      if (t == 0) s_i = INT_MAX;
      __syncthreads();
      for (int j = t; j < a.n; j += kPickThreads) {
        int id;
        if (elem(j, id) == mx) {
          atomicMin(&s_i, j);
          break;
        }
      }
      __syncthreads();
      id0 = s_i == INT_MAX ? 0 : s_i;
    }
    if (t == 0) a.out[r] = id0;
    return;
  }

  // One pass: the running sum of exp(x - mx) over the scan order; returns the first j <
  // jmax at which pred(sum) holds and the sum there, or -1 and the sum of all n.
  const int seg = (a.n + kPickThreads - 1) / kPickThreads;
  const int lo = min(a.n, t * seg), hi = min(a.n, lo + seg);
  auto pass = [&](int jmax, auto pred, double& at) -> int {
    double s = 0;
    for (int j = lo; j < hi; ++j) {
      int id;
      s += exp(elem(j, id) - mx);
    }
    double off, total;
    Scan(tmp.scan).ExclusiveSum(s, off, total);
    if (t == 0) s_i = INT_MAX;
    __syncthreads();
    int mine = -1;
    double c = off, mine_at = 0;
    for (int j = lo; j < hi && j < jmax; ++j) {
      int id;
      c += exp(elem(j, id) - mx);
      if (pred(c)) {
        mine = j;
        mine_at = c;
        break;
      }
    }
    if (mine >= 0) atomicMin(&s_i, mine);
    __syncthreads();
    const int found = s_i;
    if (found != INT_MAX && mine == found) s_d = mine_at;
    __syncthreads();
    at = found != INT_MAX ? s_d : total;
    __syncthreads();
    return found != INT_MAX ? found : -1;
  };

  int keep = a.n;
  double total = 0;
  if (a.top_p < 1) {
    double all = 0;
    pass(0, [](double) { return false; }, all);
    const double want = a.top_p * all;
    const int j = pass(a.n, [&](double c) { return c >= want; }, total);
    if (j >= 0) keep = j + 1;  // else (rounding): all of them, total = their sum
  } else {
    pass(0, [](double) { return false; }, total);
  }
  const double u = a.u[blockIdx.x] * total;
  double at = 0;
  int j = pass(keep, [&](double c) { return u < c; }, at);
  if (j < 0) j = keep - 1;
  if (t == 0) {
    int id;
    elem(j, id);
    a.out[r] = id;
  }
}

int id_bits_for(int64_t V) {
  int bits = 1;
  while ((int64_t{1} << bits) < V) ++bits;
  return bits;
}

// Bytes `align`-rounded, so that the scratch's parts stay aligned.
size_t aligned(size_t bytes) { return (bytes + 255) / 256 * 256; }

size_t sort_temp_bytes(int64_t rows, int64_t V, int end_bit) {
  size_t bytes = 0;
  const int n = static_cast<int>(rows * V);
  if (rows == 1)
    check_cuda(cub::DeviceRadixSort::SortKeysDescending(nullptr, bytes, static_cast<const uint64_t*>(nullptr),
                                                        static_cast<uint64_t*>(nullptr), n, 0, end_bit),
               "cub::DeviceRadixSort::SortKeysDescending", "pick: sizing the sort");
  else
    check_cuda(cub::DeviceSegmentedRadixSort::SortKeysDescending(
                   nullptr, bytes, static_cast<const uint64_t*>(nullptr), static_cast<uint64_t*>(nullptr), n,
                   static_cast<int>(rows), static_cast<const int*>(nullptr), static_cast<const int*>(nullptr), 0,
                   end_bit),
               "cub::DeviceSegmentedRadixSort::SortKeysDescending", "pick: sizing the sort");
  return bytes;
}

bool cuts(int64_t V, const PickOptions& o) { return (o.top_k > 0 && o.top_k < V) || o.top_p < 1; }

}  // namespace

size_t pick_scratch_bytes(int64_t rows, int64_t V, const PickOptions& o) {
  if (o.greedy() || !cuts(V, o)) return 0;
  const size_t keys = aligned(static_cast<size_t>(rows * V) * sizeof(uint64_t));
  return 2 * keys + aligned(static_cast<size_t>(rows + 1) * sizeof(int)) +
         aligned(sort_temp_bytes(rows, V, 32 + id_bits_for(V)));
}

void pick_rows(const Launch& L, DType t, int64_t* out, const void* x, int64_t rows, int64_t V, int64_t stride,
               const PickOptions& o, const double* uniforms, void* scratch) {
  if (rows <= 0) return;
  if (o.greedy()) return argmax_rows(L, t, out, x, rows, V, stride);
  if (V < 1 || rows * V > INT_MAX)
    fail("cuda backend: pick: {} rows of {} logits (at most {} in all)", rows, V, INT_MAX);
  const int id_bits = id_bits_for(V);
  const bool sorted = cuts(V, o);
  uint64_t* keys = nullptr;
  if (sorted) {
    auto* base = static_cast<uint8_t*>(scratch);
    const size_t kbytes = aligned(static_cast<size_t>(rows * V) * sizeof(uint64_t));
    auto* keys_in = reinterpret_cast<uint64_t*>(base);
    keys = reinterpret_cast<uint64_t*>(base + kbytes);
    int* offsets = reinterpret_cast<int*>(base + 2 * kbytes);
    void* temp = base + 2 * kbytes + aligned(static_cast<size_t>(rows + 1) * sizeof(int));
    size_t temp_bytes = sort_temp_bytes(rows, V, 32 + id_bits);
    BMSYS_DISPATCH_FLOAT(t, T, "pick", {
      launch_kernel(L, "pick (keys)", grid_for(rows * V, 256, 132 * 8), 256, 0, pick_keys_kernel<T>, keys_in,
                    offsets, static_cast<const T*>(x), rows, static_cast<int>(V), stride, id_bits);
    });
    const int n = static_cast<int>(rows * V);
    if (rows == 1)
      check_cuda(cub::DeviceRadixSort::SortKeysDescending(temp, temp_bytes, keys_in, keys, n, 0, 32 + id_bits,
                                                          L.stream),
                 "cub::DeviceRadixSort::SortKeysDescending", "pick: sorting the logits");
    else
      check_cuda(cub::DeviceSegmentedRadixSort::SortKeysDescending(temp, temp_bytes, keys_in, keys, n,
                                                                   static_cast<int>(rows), offsets, offsets + 1, 0,
                                                                   32 + id_bits, L.stream),
                 "cub::DeviceSegmentedRadixSort::SortKeysDescending", "pick: sorting the logits");
  }
  BMSYS_DISPATCH_FLOAT(t, T, "pick", {
    for (int64_t r0 = 0; r0 < rows; r0 += kPickRows) {
      PickArgs<T> a{};
      a.x = static_cast<const T*>(x);
      a.stride = stride;
      a.keys = keys;
      a.V = static_cast<int>(V);
      a.n = o.top_k > 0 && o.top_k < V ? static_cast<int>(o.top_k) : static_cast<int>(V);
      a.id_bits = id_bits;
      a.temperature = o.temperature;
      a.top_p = o.top_p;
      a.out = out;
      a.row0 = static_cast<int>(r0);
      const int64_t nr = std::min<int64_t>(kPickRows, rows - r0);
      for (int64_t i = 0; i < nr; ++i) a.u[i] = uniforms[r0 + i];
      launch_kernel(L, "pick", static_cast<unsigned>(nr), kPickThreads, 0, pick_kernel<T>, a);
    }
  });
}

}  // namespace bmsys::rt::cuda
