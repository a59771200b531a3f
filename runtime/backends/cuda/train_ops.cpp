// Parsing, signatures, scratch sizes and dispatch of the CUDA backend's training
// kernels (train_ops.h). The kernels are in train_kernels.cu and attention_grad.cu, the
// backward GEMMs in train_gemm.cpp.
#include "runtime/backends/cuda/train_ops.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "runtime/backends/cuda/fused_kernels.h"
#include "runtime/backends/cuda/kernels.h"
#include "runtime/backends/cuda/tensor_parallel.h"
#include "runtime/backends/cuda/train_kernels.h"
#include "runtime/collectives/communicator.h"
#include "runtime/core/error.h"

namespace bmsys::rt::cuda {

void run_train_gemm(const TrainOp& op, const Launch& L, const TrainEnv& env);  // train_gemm.cpp

bool is_train_kernel(KernelId k) {
  switch (k) {
    case KernelId::EmbeddingGrad:
    case KernelId::LinearGradInput:
    case KernelId::LinearGradWeight:
    case KernelId::SumRows:
    case KernelId::SliceGrad:
    case KernelId::LayerNormGrad:
    case KernelId::RmsNormGrad:
    case KernelId::RopeGrad:
    case KernelId::AttentionGrad:
    case KernelId::GeluGrad:
    case KernelId::SiluGrad:
    case KernelId::CrossEntropyGrad:
    case KernelId::GlobalNorm:
    case KernelId::AdamW:
    case KernelId::Sgd:
    case KernelId::FakeQuant:
    case KernelId::Cast:
    // Fused elementwise kernels (bmsys-fuse-elementwise; fused_kernels.h).
    case KernelId::SwiGlu:
    case KernelId::SwiGluGrad:
    case KernelId::AddRmsNorm:
    case KernelId::RmsNormGradAdd:
      return true;
    default:
      return false;
  }
}

namespace {

bool compute_dtype(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// Every float operand of the launch (but the listed ones) has one compute dtype.
void expect_one_float_dtype(const TrainOp& op, const char* name) {
  DType ft = DType::F32;
  bool have = false;
  auto check = [&](const TensorView& t, const char* what, size_t i) {
    if (!dtype_is_float(t.dtype)) return;
    if (!compute_dtype(t.dtype))
      fail("cuda backend: {}: {} {} is {}; the cuda backend computes in f32, f16 or bf16", name, what, i,
           dtype_name(t.dtype));
    if (!have) {
      ft = t.dtype;
      have = true;
    } else if (t.dtype != ft) {
      fail("cuda backend: {}: {} {} is {} but the launch computes in {} (one float dtype per launch)", name,
           what, i, dtype_name(t.dtype), dtype_name(ft));
    }
  };
  for (size_t i = 0; i < op.in.size(); ++i) check(op.in[i], "input", i);
  for (size_t i = 0; i < op.out.size(); ++i) check(op.out[i], "output", i);
}

void expect_f32(const TensorView& t, const char* name, const char* what) {
  if (t.dtype != DType::F32)
    fail("cuda backend: {}: {} is {}; the cuda backend implements it in f32 only (optimizers: f32 master "
         "weights and states)",
         name, what, dtype_name(t.dtype));
}

void expect_compute(const TensorView& t, const char* name, const char* what) {
  if (!compute_dtype(t.dtype))
    fail("cuda backend: {}: {} is {}; the cuda backend computes in f32, f16 or bf16", name, what,
         dtype_name(t.dtype));
}

int64_t leading(const TensorView& t) {
  return t.shape.empty() ? 1 : shape_numel(Shape(t.shape.begin(), t.shape.end() - 1));
}

}  // namespace

std::shared_ptr<const TrainOp> make_train_op(const KernelLaunch& l) {
  auto op = std::make_shared<TrainOp>();
  op->kernel = l.kernel;
  op->in = l.inputs;
  op->out = l.outputs;
  const Attrs& a = *l.attrs;
  const char* name = kernel_name(l.kernel);
  switch (l.kernel) {
    case KernelId::Cast:
      expect_compute(l.inputs[0], name, "x (input 0)");
      expect_compute(l.outputs[0], name, "y (output 0)");
      return op;
    case KernelId::FakeQuant:
      op->axis = a.get_int("axis");
      expect_f32(l.outputs[0], name, "y (output 0)");
      return op;  // w is f32 (check_launch)
    case KernelId::AdamW:
    case KernelId::Sgd: {
      const bool adam = l.kernel == KernelId::AdamW;
      const int norm_index = adam ? 4 : 3;
      expect_f32(l.inputs[0], name, "param (input 0)");
      expect_compute(l.inputs[1], name, "grad (input 1)");
      for (int i = 2; i < norm_index; ++i) expect_f32(l.inputs[i], name, adam ? "optimizer state" : "momentum buffer");
      expect_compute(l.inputs[norm_index], name, "norm");
      const LrSchedule s = LrSchedule::from_attrs(a);
      op->lr = s.lr;
      op->sched_kind = static_cast<int>(s.kind);
      op->warmup_steps = s.warmup_steps;
      op->total_steps = s.total_steps;
      op->min_lr = s.min_lr;
      op->weight_decay = a.get_float("weight_decay");
      op->max_norm = a.has("max_norm") ? a.get_float("max_norm") : 0.0;
      if (adam) {
        op->beta1 = a.get_float("beta1");
        op->beta2 = a.get_float("beta2");
        op->adam_eps = a.get_float("eps");
      } else {
        op->momentum = a.get_float("momentum");
      }
      op->loss_scaling = a.get_int("loss_scaling", 0) != 0;
      op->uses_step = true;
      op->uses_loss_scale = op->loss_scaling;
      // ZeRO-1/2 (zero_ranks R > 1, full param): this rank updates elements
      // [r·S, min((r+1)·S, n)) from the first elements of its grad/state shards.
      const int64_t n = l.inputs[0].numel(), R = a.get_int("zero_ranks", 0);
      op->zero_offset = 0;
      op->zero_count = n;
      if (R > 1 && a.get_int("param_sharded", 0) == 0) {
        const int64_t S = shard_size(n, R);
        op->zero_offset = std::min(n, l.ctx.rank * S);
        op->zero_count = std::min(S, n - op->zero_offset);
      }
      return op;
    }
    case KernelId::GlobalNorm:
      if (a.has("tp_sharded"))
        for (int64_t f : a.all().at("tp_sharded").ints)
          if (f != 0) fail("cuda backend: global_norm over tensor-parallel shards is not implemented on the cuda backend");
      if (a.get_int("ranks", 0) > 1)
        fail("cuda backend: global_norm over {} data-parallel ranks (sharded gradients) is not implemented "
             "on the cuda backend",
             a.get_int("ranks", 0));
      for (size_t i = 0; i < l.inputs.size(); ++i) expect_compute(l.inputs[i], name, "input");
      expect_compute(l.outputs[0], name, "norm (output 0)");
      return op;
    default:
      break;
  }
  expect_one_float_dtype(*op, name);
  if (a.has("vocab_shards") && a.get_int("vocab_shards") > 1)
    fail("cuda backend: {} over {} vocabulary shards (tensor parallelism) is not implemented on the cuda backend",
         name, a.get_int("vocab_shards"));
  switch (l.kernel) {
    case KernelId::LinearGradInput:
    case KernelId::LinearGradWeight:
      op->wt = a.get_int("weight_transposed", 0) != 0;
      break;
    case KernelId::SliceGrad:
      op->offset = a.get_int("offset");
      op->width = a.get_int("width");
      break;
    case KernelId::LayerNormGrad:
    case KernelId::RmsNormGrad:
    case KernelId::AddRmsNorm:
    case KernelId::RmsNormGradAdd:
      op->eps = a.get_float("eps");
      break;
    case KernelId::RopeGrad:
      op->head_dim = a.get_int("head_dim");
      op->theta = a.get_float("theta");
      break;
    case KernelId::AttentionGrad:
      op->nq = a.get_int("num_heads");
      op->nkv = a.get_int("num_kv_heads");
      op->head_dim = a.get_int("head_dim");
      op->scale = a.get_float("scale");
      op->causal = a.get_int("causal") != 0;
      if (op->head_dim > train::kAttentionGradMaxHeadDim)
        fail("cuda backend: attention_grad with head_dim {} (at most {})", op->head_dim,
             train::kAttentionGradMaxHeadDim);
      break;
    case KernelId::GeluGrad:
      op->gelu_tanh = a.get_string("approximate") == "tanh";
      break;
    case KernelId::CrossEntropyGrad:
      op->shift = a.get_int("shift", 0) != 0;
      op->loss_scaling = a.get_int("loss_scaling", 0) != 0;
      op->uses_loss_scale = op->loss_scaling;
      break;
    default:
      break;
  }
  return op;
}

void train_signature(const TrainOp& op, std::vector<uint64_t>& w) {
  w.push_back(static_cast<uint64_t>(op.kernel) | (static_cast<uint64_t>(op.in.size()) << 16) |
              (static_cast<uint64_t>(op.out.size()) << 48));
  auto ref = [&](const TensorView& t) {
    w.push_back(reinterpret_cast<uint64_t>(t.data));
    w.push_back(static_cast<uint64_t>(t.dtype) | (static_cast<uint64_t>(t.shape.size()) << 8));
    for (int64_t d : t.shape) w.push_back(static_cast<uint64_t>(d));
  };
  for (const TensorView& t : op.in) ref(t);
  for (const TensorView& t : op.out) ref(t);
  auto real = [&](double v) {
    uint64_t b;
    std::memcpy(&b, &v, sizeof(b));
    w.push_back(b);
  };
  for (double v : {op.eps, op.theta, op.scale, op.lr, op.beta1, op.beta2, op.adam_eps, op.weight_decay,
                   op.momentum, op.max_norm, op.min_lr})
    real(v);
  for (int64_t v : {op.offset, op.width, op.head_dim, op.nq, op.nkv, op.axis, op.warmup_steps,
                    op.total_steps, op.zero_offset, op.zero_count})
    w.push_back(static_cast<uint64_t>(v));
  w.push_back(static_cast<uint64_t>(op.wt) | (static_cast<uint64_t>(op.shift) << 1) |
              (static_cast<uint64_t>(op.loss_scaling) << 2) | (static_cast<uint64_t>(op.gelu_tanh) << 3) |
              (static_cast<uint64_t>(op.causal) << 4) | (static_cast<uint64_t>(op.sched_kind) << 8));
  for (int64_t v : {static_cast<int64_t>(op.tp_step), op.tp_start, op.tp_vocab}) w.push_back(static_cast<uint64_t>(v));
}

namespace {

train::AttentionGradArgs attention_args(const TrainOp& op) {
  train::AttentionGradArgs g;
  g.dtype = op.in[0].dtype;
  g.q = op.in[0].data;
  g.k = op.in[1].data;
  g.v = op.in[2].data;
  g.dy = op.in[3].data;
  g.dq = op.out[0].data;
  g.dk = op.out[1].data;
  g.dv = op.out[2].data;
  g.B = op.in[0].shape[0];
  g.S = op.in[0].shape[1];
  g.Nq = op.nq;
  g.Nkv = op.nkv;
  g.D = op.head_dim;
  g.scale = static_cast<float>(op.scale);
  g.causal = op.causal;
  return g;
}

std::vector<train::NormInput> norm_inputs(const TrainOp& op) {
  std::vector<train::NormInput> v;
  for (const TensorView& t : op.in) v.push_back({t.data, t.dtype, t.numel()});
  return v;
}

train::OptimArgs optim_args(const TrainOp& op) {
  train::OptimArgs a;
  a.lr = op.lr;
  a.beta1 = op.beta1;
  a.beta2 = op.beta2;
  a.eps = op.adam_eps;
  a.weight_decay = op.weight_decay;
  a.momentum = op.momentum;
  a.max_norm = op.max_norm;
  a.sched_kind = op.sched_kind;
  a.warmup_steps = op.warmup_steps;
  a.total_steps = op.total_steps;
  a.min_lr = op.min_lr;
  a.loss_scaling = op.loss_scaling ? 1 : 0;
  return a;
}

}  // namespace

size_t train_scratch_bytes(const TrainOp& op) {
  switch (op.kernel) {
    case KernelId::EmbeddingGrad:
      return train::embedding_grad_scratch_bytes(op.in[0].numel(), op.out[0].shape[0]);
    case KernelId::SumRows:
      return train::column_sum_scratch_bytes(leading(op.in[0]), op.in[0].shape.back());
    case KernelId::LayerNormGrad:
    case KernelId::RmsNormGrad:
    case KernelId::RmsNormGradAdd:
      return train::norm_grad_scratch_bytes(leading(op.in[0]), op.in[0].shape.back());
    case KernelId::AttentionGrad:
      return train::attention_grad_scratch_bytes(attention_args(op));
    case KernelId::GlobalNorm: {
      auto ins = norm_inputs(op);
      return train::global_norm_scratch_bytes(ins.data(), static_cast<int>(ins.size()));
    }
    default:
      return 0;
  }
}

void run_train_op(const TrainOp& op, const Launch& L, const TrainEnv& env) {
  if (op.tp_step != kTpNone) return run_tp_step(op, L, env);  // tensor_parallel.h
  const auto& in = op.in;
  const TensorView& y = op.out[0];
  const DType t = y.dtype;
  switch (op.kernel) {
    case KernelId::Cast:
      if (in[0].dtype == y.dtype)
        BMSYS_CUDA(cudaMemcpyAsync(y.data, in[0].data, y.bytes(), cudaMemcpyDeviceToDevice, L.stream), "cast");
      else
        convert(L, y.data, y.dtype, in[0].data, in[0].dtype, y.numel());
      return;
    case KernelId::FakeQuant:
      train::fake_quant(L, y.as<float>(), in[0].as<float>(), in[0].shape[0], in[0].shape[1], op.axis);
      return;
    case KernelId::EmbeddingGrad:
      train::embedding_grad(L, t, y.data, in[0].as<int64_t>(), in[0].numel(), in[1].data, y.shape[0],
                            in[1].shape.back(), env.scratch, env.scratch_bytes);
      return;
    case KernelId::LinearGradInput:
    case KernelId::LinearGradWeight:
      run_train_gemm(op, L, env);
      return;
    case KernelId::SumRows:
      train::sum_rows(L, t, y.data, in[0].data, leading(in[0]), in[0].shape.back(), env.scratch);
      return;
    case KernelId::SliceGrad:
      train::slice_grad(L, y.data, in[0].data, dtype_size(in[0].dtype), leading(in[0]), in[0].shape.back(),
                        op.offset, y.shape.back());
      return;
    case KernelId::LayerNormGrad:
      train::layer_norm_grad(L, t, y.data, op.out[1].data, op.out[2].data, in[0].data, in[1].data,
                             in[2].data, leading(in[0]), in[0].shape.back(), op.eps, env.scratch);
      return;
    case KernelId::RmsNormGrad:
      train::rms_norm_grad(L, t, y.data, op.out[1].data, in[0].data, in[1].data, in[2].data,
                           leading(in[0]), in[0].shape.back(), op.eps, env.scratch);
      return;
    case KernelId::RmsNormGradAdd:
      train::rms_norm_grad_add(L, t, y.data, op.out[1].data, in[0].data, in[1].data, in[2].data, in[3].data,
                               leading(in[0]), in[0].shape.back(), op.eps, env.scratch);
      return;
    case KernelId::SwiGlu:
      fused::swiglu(L, t, y.data, in[0].data, in[1].data, in[0].numel());
      return;
    case KernelId::SwiGluGrad:
      fused::swiglu_grad(L, t, y.data, op.out[1].data, in[0].data, in[1].data, in[2].data, in[0].numel());
      return;
    case KernelId::AddRmsNorm:
      fused::add_rms_norm(L, t, y.data, op.out[1].data, in[0].data, in[1].data, in[2].data, leading(in[0]),
                          in[0].shape.back(), op.eps);
      return;
    case KernelId::RopeGrad: {
      const int64_t T = in[0].shape[0] * in[0].shape[1], D = op.head_dim;
      train::rope_grad(L, t, y.data, in[0].data, in[1].as<int64_t>(), T, T ? in[0].numel() / T / D : 0, D,
                       op.theta);
      return;
    }
    case KernelId::AttentionGrad: {
      train::AttentionGradArgs a = attention_args(op);
      a.tensor_cores = env.use_flash;
      train::attention_grad(L, a, env.scratch);
      return;
    }
    case KernelId::GeluGrad:
      train::act_grad(L, t, op.gelu_tanh ? train::ActGrad::GeluTanh : train::ActGrad::GeluErf, y.data,
                      in[0].data, in[1].data, in[0].numel());
      return;
    case KernelId::SiluGrad:
      train::act_grad(L, t, train::ActGrad::Silu, y.data, in[0].data, in[1].data, in[0].numel());
      return;
    case KernelId::CrossEntropyGrad:
      train::cross_entropy_grad(L, t, y.data, in[0].data, in[1].as<int64_t>(), in[0].shape[0], in[0].shape[1],
                                in[0].shape[2], op.shift, op.loss_scaling);
      return;
    case KernelId::GlobalNorm: {
      auto ins = norm_inputs(op);
      train::global_norm(L, ins.data(), static_cast<int>(ins.size()), y.data, y.dtype, env.scratch);
      return;
    }
    case KernelId::AdamW:
      train::adamw(L, in[0].as<float>() + op.zero_offset, in[1].dtype, in[1].data, in[2].as<float>(),
                   in[3].as<float>(), in[4].data, in[4].dtype, op.zero_count, optim_args(op));
      return;
    case KernelId::Sgd:
      train::sgd(L, in[0].as<float>() + op.zero_offset, in[1].dtype, in[1].data, in[2].as<float>(), in[3].data,
                 in[3].dtype, op.zero_count, optim_args(op));
      return;
    default:
      break;
  }
  fail("cuda backend: kernel '{}' is not a training kernel", kernel_name(op.kernel));
}

}  // namespace bmsys::rt::cuda
