// The plans of the CUDA backend's tensor-parallel kernels (tensor_parallel.h); the
// steps' kernels are in tensor_parallel.cu.
#include "runtime/backends/cuda/tensor_parallel.h"

#include <fmt/format.h>

#include "runtime/core/error.h"

namespace bmsys::rt::cuda {

namespace {

size_t align256(size_t v) { return (v + 255) / 256 * 256; }

bool compute_dtype(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

std::vector<int64_t> tp_flags(const Attrs& a) {
  if (!a.has("tp_sharded") || a.all().at("tp_sharded").type != AttrType::Ints) return {};
  return a.all().at("tp_sharded").ints;
}

TensorView scalar_view(void* p, DType t, int64_t n) { return TensorView{p, t, Shape{n}}; }

std::shared_ptr<TrainOp> step(KernelId k, int s, std::vector<TensorView> in, std::vector<TensorView> out) {
  auto op = std::make_shared<TrainOp>();
  op->kernel = k;
  op->tp_step = s;
  op->in = std::move(in);
  op->out = std::move(out);
  return op;
}

TpItem run(std::shared_ptr<const TrainOp> s) {
  TpItem it;
  it.step = std::move(s);
  return it;
}

TpItem all_reduce(void* data, DType t, int64_t count, ReduceOp op, bool tp) {
  TpItem it;
  it.data = data;
  it.dtype = t;
  it.count = count;
  it.reduce = op;
  it.tp = tp;
  return it;
}

// The float operands of a vocab-parallel launch share one compute dtype.
void expect_one_float(const KernelLaunch& l, const char* name) {
  DType ft = DType::F32;
  bool have = false;
  auto check = [&](const TensorView& t, const char* what, size_t i) {
    if (!dtype_is_float(t.dtype)) return;
    if (l.kernel == KernelId::CrossEntropy && what[0] == 'o') return;  // the loss: any float dtype
    if (!compute_dtype(t.dtype))
      fail("cuda backend: {}: {} {} is {}; the cuda backend computes in f32, f16 or bf16", name, what, i,
           dtype_name(t.dtype));
    if (have && t.dtype != ft)
      fail("cuda backend: {}: {} {} is {} but the launch computes in {} (one float dtype per launch)", name, what, i,
           dtype_name(t.dtype), dtype_name(ft));
    ft = t.dtype;
    have = true;
  };
  for (size_t i = 0; i < l.inputs.size(); ++i) check(l.inputs[i], "input", i);
  for (size_t i = 0; i < l.outputs.size(); ++i) check(l.outputs[i], "output", i);
}

}  // namespace

bool is_tensor_parallel_launch(const KernelLaunch& l) {
  const Attrs& a = *l.attrs;
  switch (l.kernel) {
    case KernelId::Embedding:
    case KernelId::EmbeddingGrad:
    case KernelId::CrossEntropy:
    case KernelId::CrossEntropyGrad:
      return a.get_int("vocab_shards", 0) > 1;
    case KernelId::GlobalNorm:
      for (int64_t f : tp_flags(a))
        if (f != 0) return true;
      return false;
    default:
      return false;
  }
}

std::vector<TpItem> plan_tensor_parallel(const KernelLaunch& l, const std::function<void*(size_t)>& buffer) {
  const Attrs& a = *l.attrs;
  const char* name = kernel_name(l.kernel);
  std::vector<TpItem> plan;
  if (l.kernel == KernelId::GlobalNorm) {
    const TensorView& y = l.outputs.at(0);
    if (y.dtype != DType::F32 || y.numel() != 1)
      fail("cuda backend: global_norm over tensor-parallel shards: the norm must be one f32, not {} {}", y.numel(),
           dtype_name(y.dtype));
    if (a.get_int("pp_stages", 0) > 1)
      fail("cuda backend: global_norm over tensor-parallel shards and pipeline stages is not supported");
    const std::vector<int64_t> flags = tp_flags(a);
    std::vector<TensorView> sharded, replicated;
    for (size_t i = 0; i < l.inputs.size(); ++i) {
      if (!compute_dtype(l.inputs[i].dtype))
        fail("cuda backend: global_norm: input {} is {}; the cuda backend computes in f32, f16 or bf16", i,
             dtype_name(l.inputs[i].dtype));
      (i < flags.size() && flags[i] ? sharded : replicated).push_back(l.inputs[i]);
    }
    // Norm of the sharded gradients (the plain kernel), squared, summed over the group.
    plan.push_back(run(step(KernelId::GlobalNorm, kTpNone, sharded, {y})));
    plan.push_back(run(step(KernelId::GlobalNorm, kTpNormSquare, {}, {y})));
    plan.push_back(all_reduce(y.data, DType::F32, 1, ReduceOp::Sum, /*tp=*/true));
    if (!replicated.empty()) {  // plus the replicated ones' squared norm, counted once
      TensorView t = scalar_view(buffer(256), DType::F32, 1);
      plan.push_back(run(step(KernelId::GlobalNorm, kTpNone, replicated, {t})));
      plan.push_back(run(step(KernelId::GlobalNorm, kTpNormAddSquare, {t}, {y})));
    }
    // ZeRO shards: the sum of squares over the data-parallel group.
    if (a.get_int("ranks", 0) > 1) plan.push_back(all_reduce(y.data, DType::F32, 1, ReduceOp::Sum, /*tp=*/false));
    plan.push_back(run(step(KernelId::GlobalNorm, kTpNormSqrt, {}, {y})));
    return plan;
  }

  expect_one_float(l, name);
  const int64_t T = l.ctx.tp_size, r = l.ctx.tp_rank;
  switch (l.kernel) {
    case KernelId::Embedding: {
      auto s = step(l.kernel, kTpEmbedding, l.inputs, l.outputs);
      s->tp_start = r * l.inputs[1].shape[0];
      s->tp_vocab = T * l.inputs[1].shape[0];
      plan.push_back(run(s));
      return plan;
    }
    case KernelId::EmbeddingGrad: {
      auto s = step(l.kernel, kTpEmbeddingGrad, l.inputs, l.outputs);
      s->tp_start = r * l.outputs[0].shape[0];
      s->tp_vocab = T * l.outputs[0].shape[0];
      plan.push_back(run(s));
      return plan;
    }
    case KernelId::CrossEntropy:
    case KernelId::CrossEntropyGrad: {
      const TensorView& logits = l.inputs[0];
      const int64_t B = logits.shape[0], S = logits.shape[1], V = logits.shape[2];
      const bool shift = a.get_int("shift", 0) != 0;
      const bool forward = l.kernel == KernelId::CrossEntropy;
      const int64_t n = B * (S - (shift ? 1 : 0));
      if (n <= 0) fail("cuda backend: {}: no position is scored (batch {}, sequence {}, shift {})", name, B, S, shift);
      char* base = static_cast<char*>(buffer(align256(static_cast<size_t>(n) * 4) +
                                             static_cast<size_t>(forward ? 2 * n : n) * 8));
      TensorView mx = scalar_view(base, DType::F32, n);
      TensorView sums = scalar_view(base + align256(static_cast<size_t>(n) * 4), DType::F64, forward ? 2 * n : n);
      auto common = [&](const std::shared_ptr<TrainOp>& s) {
        s->shift = shift;
        s->tp_start = r * V;
        s->tp_vocab = T * V;
        return s;
      };
      plan.push_back(run(common(step(l.kernel, kTpXentMax, {logits, l.inputs[1]}, {mx}))));
      plan.push_back(all_reduce(mx.data, DType::F32, n, ReduceOp::Max, true));
      plan.push_back(run(common(step(l.kernel, kTpXentSums, {logits, l.inputs[1], mx}, {sums}))));
      plan.push_back(all_reduce(sums.data, DType::F64, sums.numel(), ReduceOp::Sum, true));
      if (forward) {
        plan.push_back(run(common(step(l.kernel, kTpXentLoss, {mx, sums}, l.outputs))));
      } else {
        auto s = common(step(l.kernel, kTpXentGrad, {logits, l.inputs[1], mx, sums}, l.outputs));
        s->loss_scaling = a.get_int("loss_scaling", 0) != 0;
        s->uses_loss_scale = s->loss_scaling;
        plan.push_back(run(s));
      }
      return plan;
    }
    default:
      break;
  }
  fail("cuda backend: kernel '{}' has no tensor-parallel form", name);
}

}  // namespace bmsys::rt::cuda
