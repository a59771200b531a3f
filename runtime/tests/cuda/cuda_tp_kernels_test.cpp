// The compute steps of the CUDA backend's vocab-parallel kernels
// (backends/cuda/tensor_parallel.h) on one GPU: the two ranks' slices of the vocabulary
// run one after the other, their all-reduces done here on the host, against the CPU
// reference over the whole vocabulary (odd sizes; shift 0 and 1; f32 and bf16). The
// same kernels over NCCL with two GPUs: nccl_tp_test.cpp.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "runtime/backends/cuda/tensor_parallel.h"
#include "runtime/backends/cuda/train_kernels.h"
#include "runtime/tests/cuda/cuda_test_util.h"

using namespace bmsys::rt;
using namespace bmsys::rt::cuda;
using namespace bmsys::rt::cudatest;

namespace {

// Device copies of host tensors, freed at the end of the test.
struct Device {
  std::vector<void*> ptrs;
  ~Device() {
    for (void* p : ptrs) cudaFree(p);
  }
  TensorView put(const HostTensor& t) {
    void* p = nullptr;
    EXPECT_EQ(cudaMalloc(&p, std::max<size_t>(t.bytes(), 1)), cudaSuccess);
    ptrs.push_back(p);
    cudaMemcpy(p, t.data.data(), t.bytes(), cudaMemcpyHostToDevice);
    return TensorView{p, t.dtype, t.shape};
  }
  static HostTensor get(const TensorView& v) {
    HostTensor t(v.dtype, v.shape);
    EXPECT_EQ(cudaMemcpy(t.data.data(), v.data, t.bytes(), cudaMemcpyDeviceToHost), cudaSuccess);
    return t;
  }
};

HostTensor slice_cols(const HostTensor& x, int64_t c0, int64_t w, DType t) {
  const int64_t V = x.shape.back(), n = x.numel() / V;
  Shape s = x.shape;
  s.back() = w;
  HostTensor f(DType::F32, s);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < w; ++c) f.as<float>()[r * w + c] = x.as<float>()[r * V + c0 + c];
  if (t == DType::F32) return f;
  HostTensor o(t, s);
  convert(o.data.data(), t, f.data.data(), DType::F32, f.numel());
  return o;
}

TrainOp tp_op(KernelId k, int step, std::vector<TensorView> in, std::vector<TensorView> out, int64_t start,
              int64_t vocab, bool shift) {
  TrainOp op;
  op.kernel = k;
  op.tp_step = step;
  op.in = std::move(in);
  op.out = std::move(out);
  op.tp_start = start;
  op.tp_vocab = vocab;
  op.shift = shift;
  return op;
}

TEST(CudaTensorParallel, VocabParallelCrossEntropyStepsMatchTheCpuReference) {
  BMSYS_SKIP_WITHOUT_GPU();
  const int64_t B = 3, S = 7, Vl = 29, V = 2 * Vl;
  for (DType t : {DType::F32, DType::BF16})
    for (int shift : {0, 1}) {
      std::mt19937 rng(3 + shift);
      HostTensor logits = as_f32(random_tensor(t, {B, S, V}, rng, -5.f, 5.f));
      HostTensor labels = ids_tensor({B, S}, V, rng);
      Attrs a = attrs({{"shift", int_attr(shift)}});
      CpuBackend cpu;
      auto ref = run_calls(cpu, {logits, labels, HostTensor(DType::F32, {}), HostTensor(DType::F32, {B, S, V})},
                           {{KernelId::CrossEntropy, a, {0, 1}, {2}}, {KernelId::CrossEntropyGrad, a, {0, 1}, {3}}},
                           LaunchContext{});
      const int64_t n = B * (S - shift);
      Device d;
      Launch L;  // default stream, no PDL, no error record
      TrainEnv env;
      TensorView lab = d.put(labels);
      TensorView x[2], mx[2], sums[2];
      for (int r = 0; r < 2; ++r) {
        x[r] = d.put(slice_cols(logits, r * Vl, Vl, t));
        mx[r] = d.put(HostTensor(DType::F32, {n}));
        sums[r] = d.put(HostTensor(DType::F64, {2 * n}));
      }
      // 1-2: row maxima, all-reduced (max) here.
      HostTensor m(DType::F32, {n});
      std::fill(m.as<float>(), m.as<float>() + n, -INFINITY);
      for (int r = 0; r < 2; ++r) {
        run_tp_step(tp_op(KernelId::CrossEntropy, kTpXentMax, {x[r], lab}, {mx[r]}, r * Vl, V, shift), L, env);
        HostTensor part = Device::get(mx[r]);
        for (int64_t i = 0; i < n; ++i) m.as<float>()[i] = std::max(m.as<float>()[i], part.as<float>()[i]);
      }
      // 3-4: sums of exponentials and the labels' logits, all-reduced (sum) here.
      HostTensor s(DType::F64, {2 * n});
      for (int r = 0; r < 2; ++r) {
        cudaMemcpy(mx[r].data, m.data.data(), m.bytes(), cudaMemcpyHostToDevice);
        run_tp_step(tp_op(KernelId::CrossEntropy, kTpXentSums, {x[r], lab, mx[r]}, {sums[r]}, r * Vl, V, shift), L,
                    env);
        HostTensor part = Device::get(sums[r]);
        for (int64_t i = 0; i < 2 * n; ++i) s.as<double>()[i] += part.as<double>()[i];
      }
      // 5: the loss (either rank) and each rank's gradient columns.
      for (int r = 0; r < 2; ++r) cudaMemcpy(sums[r].data, s.data.data(), s.bytes(), cudaMemcpyHostToDevice);
      TensorView loss = d.put(poison(DType::F32, {}));
      run_tp_step(tp_op(KernelId::CrossEntropy, kTpXentLoss, {mx[0], sums[0]}, {loss}, 0, V, shift), L, env);
      EXPECT_LT(rel_err(Device::get(loss), ref[2]), 1e-6) << dtype_name(t) << " shift " << shift;
      for (int r = 0; r < 2; ++r) {
        TensorView g = d.put(poison(t, {B, S, Vl}));
        run_tp_step(tp_op(KernelId::CrossEntropyGrad, kTpXentGrad, {x[r], lab, mx[r], sums[r]}, {g}, r * Vl, V, shift),
                    L, env);
        EXPECT_LT(rel_err(Device::get(g), slice_cols(ref[3], r * Vl, Vl, DType::F32)), tol_for(t))
            << dtype_name(t) << " shift " << shift << " rank " << r;
      }
      EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    }
}

TEST(CudaTensorParallel, VocabParallelEmbeddingStepsMatchTheCpuReference) {
  BMSYS_SKIP_WITHOUT_GPU();
  const int64_t B = 3, S = 5, Vl = 23, V = 2 * Vl, H = 19;
  for (DType t : {DType::F32, DType::BF16}) {
    std::mt19937 rng(9);
    HostTensor ids = ids_tensor({B, S}, V, rng);
    HostTensor table = as_f32(random_tensor(t, {V, H}, rng)), dy = as_f32(random_tensor(t, {B, S, H}, rng));
    Attrs none;
    CpuBackend cpu;
    auto ref = run_calls(cpu, {ids, table, HostTensor(DType::F32, {B, S, H}), dy, HostTensor(DType::F32, {V, H})},
                         {{KernelId::Embedding, none, {0, 1}, {2}}, {KernelId::EmbeddingGrad, none, {0, 3}, {4}}},
                         LaunchContext{});
    Device d;
    Launch L;
    TrainEnv env;
    env.scratch_bytes = train::embedding_grad_scratch_bytes(B * S, Vl);
    ASSERT_EQ(cudaMalloc(&env.scratch, env.scratch_bytes), cudaSuccess);
    d.ptrs.push_back(env.scratch);
    TensorView id = d.put(ids), g = d.put(HostTensor(t, dy.shape));
    {
      HostTensor dyt(t, dy.shape);
      convert(dyt.data.data(), t, dy.data.data(), DType::F32, dy.numel());
      cudaMemcpy(g.data, dyt.data.data(), dyt.bytes(), cudaMemcpyHostToDevice);
    }
    HostTensor sum(DType::F32, {B, S, H});
    for (int r = 0; r < 2; ++r) {
      HostTensor slice(DType::F32, {Vl, H});
      std::copy(table.as<float>() + r * Vl * H, table.as<float>() + (r + 1) * Vl * H, slice.as<float>());
      HostTensor st(t, slice.shape);
      convert(st.data.data(), t, slice.data.data(), DType::F32, slice.numel());
      TensorView tab = d.put(st), y = d.put(poison(t, {B, S, H})), dt = d.put(poison(t, {Vl, H}));
      run_tp_step(tp_op(KernelId::Embedding, kTpEmbedding, {id, tab}, {y}, r * Vl, V, false), L, env);
      std::vector<float> yr = Device::get(y).to_f32();
      for (int64_t i = 0; i < sum.numel(); ++i) sum.as<float>()[i] += yr[static_cast<size_t>(i)];
      run_tp_step(tp_op(KernelId::EmbeddingGrad, kTpEmbeddingGrad, {id, g}, {dt}, r * Vl, V, false), L, env);
      HostTensor want(DType::F32, {Vl, H});
      std::copy(ref[4].as<float>() + r * Vl * H, ref[4].as<float>() + (r + 1) * Vl * H, want.as<float>());
      EXPECT_LT(rel_err(Device::get(dt), want), tol_for(t)) << dtype_name(t) << " embedding_grad rank " << r;
    }
    // Each id's row comes from exactly one rank: the sum over ranks is the embedding.
    EXPECT_LT(rel_err(sum, ref[2]), 1e-7) << dtype_name(t) << " embedding";
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  }
}

}  // namespace
