// `bmsys-run --dtype`: runs an artifact in another float dtype than it was compiled
// for. Every float buffer (weights, activations, KV cache, float inputs) takes the new
// dtype: weights are converted when they are loaded, activations and the cache are
// computed in it, reductions still accumulate in f32. The memory plan's offsets stay
// valid because the new dtype is never wider than the planned one (f32 plans run in
// bf16/f16; the reverse is refused). Host-only, no CUDA: any backend that computes in
// the dtype can use it (the CPU backend computes in f32 only).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/core/artifact.h"
#include "runtime/core/error.h"

namespace bmsys::rt {

inline std::shared_ptr<const Artifact> with_compute_dtype(const std::shared_ptr<const Artifact>& a,
                                                          DType dtype) {
  if (!dtype_is_float(dtype) || dtype == DType::F64)
    fail("--dtype {}: not a compute dtype (f32, f16, bf16)", dtype_name(dtype));
  auto out = std::make_shared<Artifact>(*a);
  // linear_int8's scales (input 2) stay f32: the kernel reads them as f32 whatever it
  // computes in (docs/kernels.md).
  std::vector<char> keep(out->buffers.size(), 0);
  for (const FunctionDesc& f : out->functions)
    for (const InstructionDesc& inst : f.instructions)
      if (inst.kernel == KernelId::LinearInt8 && inst.inputs.size() > 2) keep[inst.inputs[2]] = 1;
  for (size_t i = 0; i < out->buffers.size(); ++i) {
    BufferDesc& b = out->buffers[i];
    if (!dtype_is_float(b.dtype) || b.dtype == dtype || keep[i]) continue;
    const bool pooled = b.kind == BufferKind::Activation || b.kind == BufferKind::State ||
                        static_cast<int>(b.kind) == 4 /* OptimizerState */;
    if (pooled && dtype_size(dtype) > dtype_size(b.dtype))
      fail("{}: buffer '{}' was planned as {}; --dtype {} needs an artifact compiled for it", a->path,
           b.name, dtype_name(b.dtype), dtype_name(dtype));
    b.dtype = dtype;
  }
  return out;
}

// "bf16", "fp16"/"f16", "fp32"/"f32" -> DType.
inline DType parse_compute_dtype(const std::string& s) {
  if (s == "bf16") return DType::BF16;
  if (s == "fp16" || s == "f16") return DType::F16;
  if (s == "fp32" || s == "f32") return DType::F32;
  fail("--dtype '{}': expected bf16, fp16 or fp32", s);
}

}  // namespace bmsys::rt
