#include "runtime/backends/cpu/cpu_backend.h"

#include <cblas.h>
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <algorithm>

#include "runtime/backends/cpu/cpu_distill.h"
#include "runtime/backends/cpu/cpu_fused.h"
#include "runtime/backends/cpu/cpu_kernels.h"
#include "runtime/backends/cpu/host_adamw.h"
#include "runtime/backends/cpu/cpu_moe.h"
#include "runtime/backends/cpu/cpu_pipeline.h"
#include "runtime/backends/cpu/cpu_tensor_parallel.h"
#include "runtime/collectives/communicator.h"
#include "runtime/core/error.h"
#include "runtime/io/convert.h"

namespace bmsys::rt {

CpuBackend::CpuBackend(const BackendOptions& opts) {
  if (opts.threads < 0) fail("cpu backend: thread count must be >= 0, not {}", opts.threads);
  if (opts.threads > 0) {
    omp_set_num_threads(opts.threads);
    openblas_set_num_threads(opts.threads);
  }
}

std::string CpuBackend::description() const {
  return fmt::format("cpu: float32 reference kernels, OpenBLAS sgemm, {} OpenMP threads",
                     omp_get_max_threads());
}

bool CpuBackend::supports(KernelId kernel) const { return kernel != KernelId::kCount; }

bool CpuBackend::supports_dtype(DType dtype) const {
  return dtype == DType::F32 || dtype == DType::I64 || dtype == DType::I8;
}

std::unique_ptr<DeviceMemory> CpuBackend::allocate(size_t bytes, const std::string& what) {
  // Rounded up to 64 bytes (aligned_alloc wants a multiple of the alignment),
  // without wrapping: a size within 63 bytes of SIZE_MAX cannot be allocated anyway.
  if (bytes > SIZE_MAX - 63) fail("cpu backend: cannot allocate {} bytes for {}: too large", bytes, what);
  size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) fail("cpu backend: cannot allocate {} bytes for {}", bytes, what);
  uint64_t held = account_->held += bytes;
  ++account_->buffers;
  for (uint64_t peak = account_->peak; held > peak && !account_->peak.compare_exchange_weak(peak, held);) {
  }
  return std::make_unique<DeviceMemory>(p, bytes, [account = account_, bytes](void* q) {
    account->held -= bytes;
    --account->buffers;
    std::free(q);
  });
}

std::string CpuBackend::memory_report() const {
  return fmt::format("cpu: {} B in {} buffers (peak {} B)", account_->held.load(), account_->buffers.load(),
                     account_->peak.load());
}

void CpuBackend::fill_zero(void* dst, size_t bytes) {
  if (bytes) std::memset(dst, 0, bytes);
}

void CpuBackend::upload(void* dst, DType dst_dtype, const void* src, DType src_dtype,
                        int64_t count) {
  convert(dst, dst_dtype, src, src_dtype, count);
}

void CpuBackend::copy_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}

namespace {
// The elements of the param an optimizer kernel updates: all of them, except with
// zero_ranks = R > 1 on a full (not param_sharded) param: [r*S, min((r+1)*S, n)),
// against the first elements of the grad/state shards.
struct ZeroSlice {
  int64_t offset = 0;
  int64_t count = 0;
};
ZeroSlice zero_slice(const KernelLaunch& l) {
  const Attrs& a = *l.attrs;
  const int64_t n = l.inputs[0].numel(), R = a.get_int("zero_ranks", 0);
  if (R <= 1 || a.get_int("param_sharded", 0) != 0) return {0, n};
  const int64_t S = shard_size(n, R), off = std::min(n, l.ctx.rank * S);
  return {off, std::min(S, n - off)};
}

// attention, rope_attention and attention_grad: the sizes and attributes (set_cache adds
// the cache of the first two).
cpu::AttentionParams attention_params(const KernelLaunch& l) {
  const Attrs& a = *l.attrs;
  cpu::AttentionParams p;
  p.B = l.inputs[0].shape[0];
  p.S = l.inputs[0].shape[1];
  p.Nq = a.get_int("num_heads");
  p.Nkv = a.get_int("num_kv_heads");
  p.D = a.get_int("head_dim");
  p.scale = a.get_float("scale");
  p.causal = a.get_int("causal") != 0;
  return p;
}

// attention and rope_attention with a cache (inputs cache_at, cache_at + 1): start_pos
// and the cache rows batch_offset.. of this call.
void set_cache(cpu::AttentionParams& p, const KernelLaunch& l, size_t cache_at) {
  p.P = l.ctx.start_pos;
  if (l.inputs.size() != cache_at + 2) return;
  const TensorView &kc = l.inputs[cache_at], &vc = l.inputs[cache_at + 1];
  const int64_t row = kc.shape[1] * kc.shape[2] * kc.shape[3];
  p.k_cache = kc.as<float>() + l.ctx.batch_offset * row;
  p.v_cache = vc.as<float>() + l.ctx.batch_offset * row;
  p.Bmax = kc.shape[0] - l.ctx.batch_offset;
  p.Smax = kc.shape[1];
}

// rope and rope_grad: x (or dy) [B,S,N*D] as T = B*S tokens of N heads.
void rope_like(const KernelLaunch& l,
               void (*fn)(float*, const float*, const int64_t*, int64_t, int64_t, int64_t, double)) {
  const TensorView& x = l.inputs[0];
  const int64_t D = l.attrs->get_int("head_dim");
  const int64_t T = x.shape[0] * x.shape[1];
  const int64_t N = T ? x.numel() / T / D : 0;
  fn(l.outputs[0].as<float>(), x.as<float>(), l.inputs[1].as<int64_t>(), T, N, D, l.attrs->get_float("theta"));
}

}  // namespace

void CpuBackend::launch(const KernelLaunch& l) {
  auto check_f32 = [](const TensorView& t, const char* what, int i) {
    if (dtype_is_float(t.dtype) && t.dtype != DType::F32)
      fail("{} {} is {}; the cpu backend computes in f32 only", what, i, dtype_name(t.dtype));
  };
  for (size_t i = 0; i < l.inputs.size(); ++i) check_f32(l.inputs[i], "input", static_cast<int>(i));
  for (size_t i = 0; i < l.outputs.size(); ++i) check_f32(l.outputs[i], "output", static_cast<int>(i));

  const Attrs& a = *l.attrs;
  const auto& in = l.inputs;
  if (l.outputs.empty()) return cpu::pipeline_kernel(l);  // pp_send, the one kernel without outputs
  const TensorView& y = l.outputs[0];
  switch (l.kernel) {
    case KernelId::Positions:
      cpu::positions(y.as<int64_t>(), in[0].shape[0], in[0].shape[1], l.ctx.start_pos);
      return;
    case KernelId::Embedding:
      if (a.get_int("vocab_shards", 0) > 1) {
        cpu::embedding_vocab_parallel(y.as<float>(), in[0].as<int64_t>(), in[0].numel(), in[1].as<float>(),
                                      in[1].shape[0], in[1].shape[1], l.ctx.tp_rank, l.ctx.tp_size);
        return;
      }
      cpu::embedding(y.as<float>(), in[0].as<int64_t>(), in[0].numel(), in[1].as<float>(),
                     in[1].shape[0], in[1].shape[1]);
      return;
    case KernelId::Linear: {
      bool wt = a.get_int("weight_transposed", 0) != 0;
      int64_t K = in[0].shape.back();
      int64_t N = y.shape.back();
      int64_t M = K ? in[0].numel() / K : y.numel() / (N ? N : 1);
      cpu::linear(y.as<float>(), in[0].as<float>(), in[1].as<float>(),
                  in.size() == 3 ? in[2].as<float>() : nullptr, M, K, N, wt);
      return;
    }
    case KernelId::FakeQuant:
      cpu::fake_quant(y.as<float>(), in[0].as<float>(), in[0].shape[0], in[0].shape[1],
                      a.get_int("axis"));
      return;
    case KernelId::LinearInt8: {
      int64_t K = in[1].shape[1], N = in[1].shape[0];
      int64_t M = K ? in[0].numel() / K : 0;
      cpu::linear_int8(y.as<float>(), in[0].as<float>(), in[1].as<int8_t>(), in[2].as<float>(),
                       in.size() == 4 ? in[3].as<float>() : nullptr, M, K, N,
                       a.get_string("activations") == "int8");
      return;
    }
    case KernelId::Slice: {
      int64_t K = in[0].shape.back(), N = y.shape.back();
      int64_t rows = K ? in[0].numel() / K : 0;
      cpu::slice(y.data, in[0].data, dtype_size(in[0].dtype), rows, K, a.get_int("offset"), N);
      return;
    }
    case KernelId::LayerNorm: {
      int64_t H = in[0].shape.back();
      cpu::layer_norm(y.as<float>(), in[0].as<float>(), in[1].as<float>(), in[2].as<float>(),
                      H ? in[0].numel() / H : 0, H, a.get_float("eps"));
      return;
    }
    case KernelId::RmsNorm: {
      int64_t H = in[0].shape.back();
      cpu::rms_norm(y.as<float>(), in[0].as<float>(), in[1].as<float>(),
                    H ? in[0].numel() / H : 0, H, a.get_float("eps"));
      return;
    }
    case KernelId::Rope:
      rope_like(l, cpu::rope);
      return;
    case KernelId::Attention: {
      cpu::AttentionParams p = attention_params(l);
      set_cache(p, l, 3);
      cpu::attention(y.as<float>(), in[0].as<float>(), in[1].as<float>(), in[2].as<float>(), p);
      return;
    }
    case KernelId::Gelu:
      cpu::gelu(y.as<float>(), in[0].as<float>(), in[0].numel(), a.get_string("approximate") == "tanh");
      return;
    case KernelId::Silu:
      cpu::silu(y.as<float>(), in[0].as<float>(), in[0].numel());
      return;
    case KernelId::Add:
      cpu::add(y.as<float>(), in[0].as<float>(), in[1].as<float>(), in[0].numel());
      return;
    case KernelId::Mul:
      cpu::mul(y.as<float>(), in[0].as<float>(), in[1].as<float>(), in[0].numel());
      return;
    case KernelId::CrossEntropy: {
      if (a.get_int("vocab_shards", 0) > 1) {
        *y.as<float>() = static_cast<float>(cpu::cross_entropy_vocab_parallel(
            in[0].as<float>(), in[1].as<int64_t>(), in[0].shape[0], in[0].shape[1], in[0].shape[2],
            a.get_int("shift", 0) != 0, l.ctx.tp_rank, *l.ctx.tp_comm));
        return;
      }
      double loss = cpu::cross_entropy(in[0].as<float>(), in[1].as<int64_t>(), in[0].shape[0],
                                       in[0].shape[1], in[0].shape[2], a.get_int("shift", 0) != 0);
      *y.as<float>() = static_cast<float>(loss);
      return;
    }
    // --- Training kernels ---
    case KernelId::EmbeddingGrad: {
      int64_t H = in[1].shape.back();
      if (a.get_int("vocab_shards", 0) > 1) {
        cpu::embedding_grad_vocab_parallel(y.as<float>(), in[0].as<int64_t>(), in[0].numel(), in[1].as<float>(),
                                           y.shape[0], H, l.ctx.tp_rank, l.ctx.tp_size);
        return;
      }
      cpu::embedding_grad(y.as<float>(), in[0].as<int64_t>(), in[0].numel(), in[1].as<float>(),
                          y.shape[0], H);
      return;
    }
    case KernelId::LinearGradInput: {
      bool wt = a.get_int("weight_transposed", 0) != 0;
      int64_t N = in[0].shape.back(), K = y.shape.back();
      int64_t M = N ? in[0].numel() / N : (K ? y.numel() / K : 0);
      cpu::linear_grad_input(y.as<float>(), in[0].as<float>(), in[1].as<float>(), M, K, N, wt);
      return;
    }
    case KernelId::LinearGradWeight: {
      bool wt = a.get_int("weight_transposed", 0) != 0;
      int64_t N = in[0].shape.back(), K = in[1].shape.back();
      int64_t M = shape_numel(Shape(in[0].shape.begin(), in[0].shape.end() - 1));
      cpu::linear_grad_weight(y.as<float>(), in[0].as<float>(), in[1].as<float>(), M, K, N, wt);
      return;
    }
    case KernelId::SumRows: {
      int64_t N = in[0].shape.back();
      cpu::sum_rows(y.as<float>(), in[0].as<float>(),
                    shape_numel(Shape(in[0].shape.begin(), in[0].shape.end() - 1)), N);
      return;
    }
    case KernelId::SliceGrad: {
      int64_t N = in[0].shape.back(), K = y.shape.back();
      cpu::slice_grad(y.data, in[0].data, dtype_size(in[0].dtype),
                      shape_numel(Shape(in[0].shape.begin(), in[0].shape.end() - 1)), N,
                      a.get_int("offset"), K);
      return;
    }
    case KernelId::LayerNormGrad: {
      int64_t H = in[0].shape.back();
      cpu::layer_norm_grad(y.as<float>(), l.outputs[1].as<float>(), l.outputs[2].as<float>(),
                           in[0].as<float>(), in[1].as<float>(), in[2].as<float>(),
                           H ? in[0].numel() / H : 0, H, a.get_float("eps"));
      return;
    }
    case KernelId::RmsNormGrad: {
      int64_t H = in[0].shape.back();
      cpu::rms_norm_grad(y.as<float>(), l.outputs[1].as<float>(), in[0].as<float>(),
                         in[1].as<float>(), in[2].as<float>(), H ? in[0].numel() / H : 0, H,
                         a.get_float("eps"));
      return;
    }
    case KernelId::RopeGrad:
      rope_like(l, cpu::rope_grad);
      return;
    case KernelId::AttentionGrad:
      cpu::attention_grad(y.as<float>(), l.outputs[1].as<float>(), l.outputs[2].as<float>(),
                          in[0].as<float>(), in[1].as<float>(), in[2].as<float>(),
                          in[3].as<float>(), attention_params(l));
      return;
    case KernelId::GeluGrad:
      cpu::gelu_grad(y.as<float>(), in[0].as<float>(), in[1].as<float>(), in[0].numel(),
                     a.get_string("approximate") == "tanh");
      return;
    case KernelId::SiluGrad:
      cpu::silu_grad(y.as<float>(), in[0].as<float>(), in[1].as<float>(), in[0].numel());
      return;
    case KernelId::CrossEntropyGrad:
      if (a.get_int("vocab_shards", 0) > 1) {
        cpu::cross_entropy_grad_vocab_parallel(y.as<float>(), in[0].as<float>(), in[1].as<int64_t>(),
                                               in[0].shape[0], in[0].shape[1], in[0].shape[2],
                                               a.get_int("shift", 0) != 0,
                                               a.get_int("loss_scaling", 0) != 0 ? l.ctx.loss_scale : 1.0,
                                               l.ctx.tp_rank, *l.ctx.tp_comm);
        return;
      }
      cpu::cross_entropy_grad(y.as<float>(), in[0].as<float>(), in[1].as<int64_t>(),
                              in[0].shape[0], in[0].shape[1], in[0].shape[2],
                              a.get_int("shift", 0) != 0,
                              a.get_int("loss_scaling", 0) != 0 ? l.ctx.loss_scale : 1.0);
      return;
    case KernelId::GlobalNorm: {
      double ss = 0;
      if (a.has("tp_sharded") && a.all().at("tp_sharded").type == AttrType::Ints) {
        // Tensor parallelism: the squares of sharded gradients summed over the
        // tensor-parallel group, replicated ones counted once.
        const auto& flags = a.all().at("tp_sharded").ints;
        double sharded = 0;
        for (size_t i = 0; i < in.size(); ++i)
          (flags[i] ? sharded : ss) += cpu::sum_squares(in[i].as<float>(), in[i].numel());
        l.ctx.tp_comm->all_reduce(&sharded, DType::F64, 1, ReduceOp::Sum);
        ss += sharded;
      } else {
        for (const TensorView& t : in) ss += cpu::sum_squares(t.as<float>(), t.numel());
      }
      // Inputs are shards (ZeRO): the local sums of squares are summed over the ranks.
      if (a.get_int("ranks", 0) > 1) l.ctx.comm->all_reduce_host_f64(&ss, 1);
      // Pipeline parallelism: each stage has its own gradients; sum over the stages.
      if (a.get_int("pp_stages", 0) > 1) l.ctx.pp_comm->all_reduce_host_f64(&ss, 1);
      *y.as<float>() = static_cast<float>(std::sqrt(ss));
      return;
    }
    case KernelId::PpSend:
    case KernelId::PpRecv:
    case KernelId::PpBroadcast:
    case KernelId::PpMean:
      cpu::pipeline_kernel(l);
      return;
    case KernelId::TpAllReduce:
      std::memcpy(y.data, in[0].data, in[0].bytes());
      l.ctx.tp_comm->all_reduce(y.data, y.dtype, y.numel(), ReduceOp::Sum);
      return;
    case KernelId::AllReduce:
      std::memcpy(y.data, in[0].data, in[0].bytes());
      l.ctx.comm->all_reduce(y.data, y.dtype, y.numel(), reduce_op_from_name(a.get_string("reduction")));
      return;
    case KernelId::ReduceScatter:
      l.ctx.comm->reduce_scatter(in[0].data, in[0].dtype, in[0].numel(), y.data,
                                 reduce_op_from_name(a.get_string("reduction")));
      return;
    case KernelId::AllGather:
      l.ctx.comm->all_gather(in[0].data, in[0].dtype, y.data, y.numel());
      return;
    case KernelId::SyncParam: {
      // This rank updated elements [r*S, min((r+1)*S, n)) of the replicated param.
      const int64_t n = y.numel(), R = a.get_int("ranks"), S = shard_size(n, R);
      const int64_t off = std::min(n, l.ctx.rank * S), len = std::min(S, n - off);
      std::vector<float> shard(static_cast<size_t>(S), 0.0f);
      std::memcpy(shard.data(), y.as<float>() + off, static_cast<size_t>(len) * sizeof(float));
      l.ctx.comm->all_gather(shard.data(), DType::F32, y.data, n);
      return;
    }
    case KernelId::ToHost:  // bmsys-offload: the host buffer is separate memory here too
      std::memcpy(y.data, in[0].data, in[0].bytes());
      return;
    case KernelId::UploadMaster: {
      // The master (this rank's shard with zero_ranks) into the device parameter.
      const int64_t R = a.get_int("zero_ranks", 0);
      int64_t off = 0, len = y.numel();
      if (R > 1 && a.get_int("param_sharded", 0) == 0) {
        const int64_t S = shard_size(y.numel(), R);
        off = std::min(y.numel(), l.ctx.rank * S);
        len = std::min(S, y.numel() - off);
      }
      convert(y.as<float>() + off, y.dtype, in[0].data, in[0].dtype, len);
      return;
    }
    case KernelId::AdamW: {
      if (a.get_int("offload", 0)) {  // bmsys-offload: the step on host buffers
        cpu::host_adamw(l);
        return;
      }
      cpu::AdamWParams p;
      p.lr = LrSchedule::from_attrs(a).at(l.ctx.step);
      p.beta1 = a.get_float("beta1");
      p.beta2 = a.get_float("beta2");
      p.eps = a.get_float("eps");
      p.weight_decay = a.get_float("weight_decay");
      if (!cpu::optimizer_clip(l, *in[4].as<float>(), &p.clip)) return;  // overflow: skip the step
      p.step = l.ctx.step;
      ZeroSlice z = zero_slice(l);
      cpu::adamw(in[0].as<float>() + z.offset, in[1].as<float>(), in[2].as<float>(), in[3].as<float>(),
                 z.count, p);
      return;
    }
    case KernelId::Sgd: {
      cpu::SgdParams p;
      p.lr = LrSchedule::from_attrs(a).at(l.ctx.step);
      p.momentum = a.get_float("momentum");
      p.weight_decay = a.get_float("weight_decay");
      if (!cpu::optimizer_clip(l, *in[3].as<float>(), &p.clip)) return;  // overflow: skip the step
      p.step = l.ctx.step;
      ZeroSlice z = zero_slice(l);
      cpu::sgd(in[0].as<float>() + z.offset, in[1].as<float>(), in[2].as<float>(), z.count, p);
      return;
    }
    case KernelId::Cast:  // f32 -> f32 here: the cpu backend computes in f32 only
      convert(y.data, y.dtype, in[0].data, in[0].dtype, in[0].numel());
      return;
    case KernelId::DistillSoftCe:
    case KernelId::DistillHiddenMse: {
      const int64_t W = in[0].shape[2], N = in[0].shape[0] * in[0].shape[1];
      *y.as<float>() = static_cast<float>(
          l.kernel == KernelId::DistillSoftCe
              ? cpu::distill_soft_ce(in[0].as<float>(), in[1].as<float>(), N, W, a.get_float("temperature"),
                                     a.get_float("scale"))
              : cpu::distill_hidden_mse(in[0].as<float>(), in[1].as<float>(), N, W, a.get_float("eps"),
                                        a.get_float("scale")));
      return;
    }
    case KernelId::DistillSoftCeGrad:
      cpu::distill_soft_ce_grad(y.as<float>(), in[0].as<float>(), in[1].as<float>(),
                                in[0].shape[0] * in[0].shape[1], in[0].shape[2], a.get_float("temperature"),
                                a.get_float("scale"));
      return;
    case KernelId::DistillHiddenMseGrad:
      cpu::distill_hidden_mse_grad(y.as<float>(), in[0].as<float>(), in[1].as<float>(),
                                   in[0].shape[0] * in[0].shape[1], in[0].shape[2], a.get_float("eps"),
                                   a.get_float("scale"));
      return;
    case KernelId::MoeFfn: {
      cpu::MoeParams p;
      p.T = in[0].shape[0] * in[0].shape[1];
      p.H = in[0].shape[2];
      p.n = in[2].shape[0];
      p.experts = a.get_int("experts");
      p.top_k = a.get_int("top_k");
      p.activation = a.get_string("activation");
      const bool gated = a.get_int("gated", 0) != 0, bias = a.get_int("bias", 0) != 0;
      const int out = gated ? 4 : 3;
      cpu::moe_ffn(y.as<float>(), in[0].as<float>(), in[1].as<float>(), in[2].as<float>(),
                   gated ? in[3].as<float>() : nullptr, in[out].as<float>(),
                   bias ? in[out + 1].as<float>() : nullptr, bias ? in[out + 2].as<float>() : nullptr, p);
      return;
    }
    // Fused elementwise kernels (bmsys-fuse-elementwise).
    case KernelId::SwiGlu:
      cpu::swiglu(y.as<float>(), in[0].as<float>(), in[1].as<float>(), in[0].numel());
      return;
    case KernelId::SwiGluGrad:
      cpu::swiglu_grad(y.as<float>(), l.outputs[1].as<float>(), in[0].as<float>(), in[1].as<float>(),
                       in[2].as<float>(), in[0].numel());
      return;
    case KernelId::AddRmsNorm: {
      const int64_t H = in[0].shape.back();
      cpu::add_rms_norm(y.as<float>(), l.outputs[1].as<float>(), in[0].as<float>(), in[1].as<float>(),
                        in[2].as<float>(), H ? in[0].numel() / H : 0, H, a.get_float("eps"));
      return;
    }
    case KernelId::RmsNormGradAdd: {
      const int64_t H = in[0].shape.back();
      cpu::rms_norm_grad_add(y.as<float>(), l.outputs[1].as<float>(), in[0].as<float>(), in[1].as<float>(),
                             in[2].as<float>(), in[3].as<float>(), H ? in[0].numel() / H : 0, H,
                             a.get_float("eps"));
      return;
    }
    case KernelId::RopeAttention: {
      cpu::AttentionParams p = attention_params(l);
      set_cache(p, l, 4);
      cpu::rope_attention(y.as<float>(), in[0].as<float>(), in[1].as<float>(), in[2].as<float>(),
                          in[3].as<int64_t>(), a.get_float("theta"), p);
      return;
    }
    case KernelId::kCount:
      break;
  }
  fail("cpu backend: kernel not implemented");
}

}  // namespace bmsys::rt
