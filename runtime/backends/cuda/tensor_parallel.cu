// The compute steps of the CUDA backend's tensor-parallel kernels (tensor_parallel.h):
// vocab-parallel embedding and cross-entropy, the scalar steps of global_norm over
// tensor-parallel shards. Reference: backends/cpu/cpu_tensor_parallel.cpp. Every
// reduction runs in a fixed order (no floating-point atomics).
#include <cfloat>

#include "runtime/backends/cuda/device_util.cuh"
#include "runtime/backends/cuda/tensor_parallel.h"
#include "runtime/backends/cuda/train_kernels.h"

namespace bmsys::rt::cuda {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ double tp_loss_scale(const Launch& L) {
  return L.scalars ? __longlong_as_double(static_cast<long long>(L.scalars[kScalarLossScale])) : 1.0;
}

// y[i,:] = table[ids[i] - start, :] when this rank holds the id's row, else zeros;
// ids outside the whole vocabulary [0, vocab) are reported.
template <class T>
__global__ void tp_embedding_kernel(Launch L, T* y, const int64_t* ids, int64_t n, const T* table, int64_t V,
                                    int64_t H, int64_t start, int64_t vocab) {
  pdl_trigger();
  pdl_wait();
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const int64_t id = ids[i];
    if ((id < 0 || id >= vocab) && threadIdx.x == 0) report_error(L, kErrTokenId, id, i, vocab);
    const int64_t local = id - start;
    T* dst = y + i * H;
    if (local >= 0 && local < V) {
      const T* src = table + local * H;
      for (int64_t j = threadIdx.x; j < H; j += blockDim.x) dst[j] = src[j];
    } else {
      for (int64_t j = threadIdx.x; j < H; j += blockDim.x) dst[j] = from_f<T>(0.f);
    }
  }
}

// Scored row i (of n = B·(S - shift)) is position (i / per, i % per), per = S - shift.
template <class T>
__global__ void xent_max_kernel(float* mx, const T* logits, int64_t B, int64_t S, int64_t V, int shift) {
  pdl_trigger();
  pdl_wait();
  __shared__ float sh[33];
  const int64_t per = S - shift, n = B * per;
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    const int64_t b = r / per, s = r - b * per;
    const T* x = logits + (b * S + s) * V;
    float m = -INFINITY;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) m = fmaxf(m, to_f(x[i]));
    m = block_max(m, sh);
    if (threadIdx.x == 0) mx[r] = m;
  }
}

// sums[r] = sum of exp(x - mx[r]) over this rank's columns; with targets, sums[n + r] =
// the label's logit when this rank holds its column, else 0. Labels outside the whole
// vocabulary are reported.
template <class T>
__global__ void xent_sums_kernel(Launch L, double* sums, const T* logits, const int64_t* labels, const float* mx,
                                 int64_t B, int64_t S, int64_t V, int shift, int64_t start, int64_t vocab,
                                 int targets) {
  pdl_trigger();
  pdl_wait();
  __shared__ double sh[33];
  const int64_t per = S - shift, n = B * per;
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    const int64_t b = r / per, s = r - b * per;
    const T* x = logits + (b * S + s) * V;
    const float m = mx[r];
    double acc = 0;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) acc += static_cast<double>(expf(to_f(x[i]) - m));
    acc = block_sum(acc, sh);
    if (threadIdx.x == 0) {
      sums[r] = acc;
      const int64_t lab = labels[b * S + s + shift];
      if (lab < 0 || lab >= vocab) report_error(L, kErrLabel, lab, b * S + s + shift, vocab);
      if (targets) {
        const int64_t local = lab - start;
        sums[n + r] = local >= 0 && local < V ? static_cast<double>(to_f(x[local])) : 0.0;
      }
    }
  }
}

template <class O>
__global__ void xent_loss_kernel(O* loss, const float* mx, const double* sums, int64_t n) {
  pdl_trigger();
  pdl_wait();
  __shared__ double sh[33];
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    s += static_cast<double>(mx[i]) + log(sums[i]) - sums[n + i];
  s = block_sum(s, sh);
  if (threadIdx.x == 0) loss[0] = from_f<O>(static_cast<float>(s / static_cast<double>(n)));
}

template <class T>
__global__ void xent_grad_kernel(Launch L, T* out, const T* logits, const int64_t* labels, const float* mx,
                                 const double* sums, int64_t B, int64_t S, int64_t V, int shift, int64_t start,
                                 int loss_scaling) {
  pdl_trigger();
  pdl_wait();
  const int64_t per = S - shift;
  const double count = static_cast<double>(B * per);
  const double scale = loss_scaling ? tp_loss_scale(L) : 1.0;
  for (int64_t row = blockIdx.x; row < B * S; row += gridDim.x) {
    const int64_t b = row / S, s = row - b * S;
    T* o = out + row * V;
    if (s >= per) {
      for (int64_t i = threadIdx.x; i < V; i += blockDim.x) o[i] = from_f<T>(0.f);
      continue;
    }
    const int64_t r = b * per + s;
    const T* x = logits + row * V;
    const float m = mx[r];
    const double sum = sums[r];
    const int64_t lab = labels[b * S + s + shift] - start;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
      const double p = static_cast<double>(expf(to_f(x[i]) - m)) / sum;
      o[i] = from_f<T>(static_cast<float>((p - (i == lab ? 1.0 : 0.0)) / count * scale));
    }
  }
}

__global__ void norm_scalar_kernel(float* y, const float* t, int mode) {
  switch (mode) {
    case 0: y[0] = y[0] * y[0]; break;
    case 1: y[0] = y[0] + t[0] * t[0]; break;
    default: y[0] = sqrtf(y[0]); break;
  }
}

unsigned row_grid(int64_t rows) { return static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(rows, 1), 1 << 20)); }

}  // namespace

void run_tp_step(const TrainOp& op, const Launch& L, const TrainEnv& env) {
  const auto& in = op.in;
  const TensorView& y = op.out.at(0);
  const int sh = op.shift ? 1 : 0;
  switch (op.tp_step) {
    case kTpEmbedding: {
      const int64_t n = in[0].numel(), V = in[1].shape[0], H = in[1].shape[1];
      BMSYS_DISPATCH_FLOAT(y.dtype, T, "embedding (vocab-parallel)", {
        launch_kernel(L, "embedding (vocab-parallel)", row_grid(std::min<int64_t>(n, 65535 * 8)), 128, 0,
                      tp_embedding_kernel<T>, L, static_cast<T*>(y.data), in[0].as<int64_t>(), n,
                      static_cast<const T*>(in[1].data), V, H, op.tp_start, op.tp_vocab);
      });
      return;
    }
    case kTpEmbeddingGrad:
      train::embedding_grad(L, y.dtype, y.data, in[0].as<int64_t>(), in[0].numel(), in[1].data, y.shape[0],
                            in[1].shape.back(), env.scratch, env.scratch_bytes, op.tp_start, op.tp_vocab);
      return;
    case kTpXentMax: {
      const TensorView& x = in[0];
      const int64_t B = x.shape[0], S = x.shape[1], V = x.shape[2];
      BMSYS_DISPATCH_FLOAT(x.dtype, T, "cross_entropy (vocab-parallel)", {
        launch_kernel(L, "cross_entropy (vocab-parallel)", row_grid(B * (S - sh)), kThreads, 0, xent_max_kernel<T>,
                      y.as<float>(), static_cast<const T*>(x.data), B, S, V, sh);
      });
      return;
    }
    case kTpXentSums: {
      const TensorView& x = in[0];
      const int64_t B = x.shape[0], S = x.shape[1], V = x.shape[2];
      const int targets = y.numel() == 2 * B * (S - sh) ? 1 : 0;
      BMSYS_DISPATCH_FLOAT(x.dtype, T, "cross_entropy (vocab-parallel)", {
        launch_kernel(L, "cross_entropy (vocab-parallel)", row_grid(B * (S - sh)), kThreads, 0,
                      xent_sums_kernel<T>, L, y.as<double>(), static_cast<const T*>(x.data), in[1].as<int64_t>(),
                      in[2].as<float>(), B, S, V, sh, op.tp_start, op.tp_vocab, targets);
      });
      return;
    }
    case kTpXentLoss: {
      const int64_t n = in[0].numel();
      BMSYS_DISPATCH_FLOAT(y.dtype, O, "cross_entropy (vocab-parallel)", {
        launch_kernel(L, "cross_entropy (vocab-parallel)", 1, 1024, 0, xent_loss_kernel<O>, static_cast<O*>(y.data),
                      in[0].as<float>(), in[1].as<double>(), n);
      });
      return;
    }
    case kTpXentGrad: {
      const TensorView& x = in[0];
      const int64_t B = x.shape[0], S = x.shape[1], V = x.shape[2];
      BMSYS_DISPATCH_FLOAT(x.dtype, T, "cross_entropy_grad (vocab-parallel)", {
        launch_kernel(L, "cross_entropy_grad (vocab-parallel)", row_grid(B * S), kThreads, 0, xent_grad_kernel<T>, L,
                      static_cast<T*>(y.data), static_cast<const T*>(x.data), in[1].as<int64_t>(), in[2].as<float>(),
                      in[3].as<double>(), B, S, V, sh, op.tp_start, op.loss_scaling ? 1 : 0);
      });
      return;
    }
    case kTpNormSquare:
    case kTpNormAddSquare:
    case kTpNormSqrt: {
      const int mode = op.tp_step == kTpNormSquare ? 0 : op.tp_step == kTpNormAddSquare ? 1 : 2;
      Launch L1 = L;
      L1.pdl = false;
      launch_kernel(L1, "global_norm (tensor-parallel)", 1, 1, 0, norm_scalar_kernel, y.as<float>(),
                    mode == 1 ? in[0].as<float>() : static_cast<const float*>(nullptr), mode);
      return;
    }
    default:
      break;
  }
  fail("cuda backend: unknown tensor-parallel step {}", op.tp_step);
}

}  // namespace bmsys::rt::cuda
