#include "runtime/backends/cpu/cpu_backend.h"

#include <cblas.h>
#include <omp.h>

#include <cstdlib>
#include <cstring>

#include "runtime/backends/cpu/cpu_kernels.h"
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
  return dtype == DType::F32 || dtype == DType::I64;
}

std::unique_ptr<DeviceMemory> CpuBackend::allocate(size_t bytes, const std::string& what) {
  size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) fail("cpu backend: cannot allocate {} bytes for {}", bytes, what);
  return std::make_unique<DeviceMemory>(p, bytes, [](void* q) { std::free(q); });
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

void CpuBackend::launch(const KernelLaunch& l) {
  auto check_f32 = [](const TensorView& t, const char* what, int i) {
    if (dtype_is_float(t.dtype) && t.dtype != DType::F32)
      fail("{} {} is {}; the cpu backend computes in f32 only", what, i, dtype_name(t.dtype));
  };
  for (size_t i = 0; i < l.inputs.size(); ++i) check_f32(l.inputs[i], "input", static_cast<int>(i));
  for (size_t i = 0; i < l.outputs.size(); ++i) check_f32(l.outputs[i], "output", static_cast<int>(i));

  const Attrs& a = *l.attrs;
  const auto& in = l.inputs;
  const TensorView& y = l.outputs[0];
  switch (l.kernel) {
    case KernelId::Positions:
      cpu::positions(y.as<int64_t>(), in[0].shape[0], in[0].shape[1], l.ctx.start_pos);
      return;
    case KernelId::Embedding:
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
    case KernelId::Rope: {
      int64_t D = a.get_int("head_dim");
      int64_t T = in[0].shape[0] * in[0].shape[1];
      int64_t N = T ? in[0].numel() / T / D : 0;
      cpu::rope(y.as<float>(), in[0].as<float>(), in[1].as<int64_t>(), T, N, D,
                a.get_float("theta"));
      return;
    }
    case KernelId::Attention: {
      cpu::AttentionParams p;
      p.B = in[0].shape[0];
      p.S = in[0].shape[1];
      p.Nq = a.get_int("num_heads");
      p.Nkv = a.get_int("num_kv_heads");
      p.D = a.get_int("head_dim");
      p.scale = a.get_float("scale");
      p.causal = a.get_int("causal") != 0;
      p.P = l.ctx.start_pos;
      if (in.size() == 5) {
        p.k_cache = in[3].as<float>();
        p.v_cache = in[4].as<float>();
        p.Bmax = in[3].shape[0];
        p.Smax = in[3].shape[1];
      }
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
      double loss = cpu::cross_entropy(in[0].as<float>(), in[1].as<int64_t>(), in[0].shape[0],
                                       in[0].shape[1], in[0].shape[2], a.get_int("shift", 0) != 0);
      *y.as<float>() = static_cast<float>(loss);
      return;
    }
    case KernelId::kCount:
      break;
  }
  fail("cpu backend: kernel not implemented");
}

}  // namespace bmsys::rt
