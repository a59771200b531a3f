// Backend factory: the one place that knows which backends are compiled in.
#include "runtime/backends/backend.h"
#include "runtime/backends/cpu/cpu_backend.h"
#include "runtime/core/error.h"
#ifdef BMSYS_HAVE_CUDA
#include "runtime/backends/cuda/cuda_backend.h"
#endif

namespace bmsys::rt {

std::vector<std::string> available_backends() {
#ifdef BMSYS_HAVE_CUDA
  return {"cpu", "cuda"};
#else
  return {"cpu"};
#endif
}

std::string default_backend() {
#ifdef BMSYS_HAVE_CUDA
  if (cuda_device_count() > 0) return "cuda";
#endif
  return "cpu";
}

std::unique_ptr<Backend> create_backend(const std::string& name, const BackendOptions& opts) {
  if (name == "cpu") return std::make_unique<CpuBackend>(opts);
#ifdef BMSYS_HAVE_CUDA
  if (name == "cuda") return create_cuda_backend(opts);
#endif
  std::string avail;
  for (const auto& b : available_backends()) avail += (avail.empty() ? "" : ", ") + b;
  fail("unknown backend '{}' (this build has: {})", name, avail);
}

}  // namespace bmsys::rt
