// Helpers for the GPU tests: run one launch (or a sequence) on a backend from host
// tensors, compare with the CPU reference, relative errors.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "runtime/backends/cpu/cpu_backend.h"
#include "runtime/backends/cuda/cuda_backend.h"
#include "runtime/core/error.h"
#include "runtime/core/kernels.h"
#include "runtime/core/tensor.h"
#include "runtime/io/convert.h"

#include <sys/stat.h>

namespace bmsys::rt::cudatest {

// The tree the tests read test/data and build-gpu/artifacts from: $BMSYS_SOURCE_DIR
// (scripts/gpu/run_all.sh sets it: the GPU machine runs a copy of the tree at another
// path), else the one the tests were built from.
inline std::string source_dir() {
  const char* e = std::getenv("BMSYS_SOURCE_DIR");
  return e && *e ? e : BMSYS_SOURCE_DIR;
}
// test/data/<model>: a golden model's weights and reference tensors.
inline std::string data_dir(const std::string& model) { return source_dir() + "/test/data/" + model; }
// The artifacts scripts/gpu/prepare.sh compiles: $BMSYS_GPU_ARTIFACTS, else
// build-gpu/artifacts of source_dir().
inline std::string artifact_dir() {
  const char* e = std::getenv("BMSYS_GPU_ARTIFACTS");
  return e ? e : source_dir() + "/build-gpu/artifacts";
}
inline bool exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

// This test file's backends (`static`: each file keeps its own, so a test that leaves an
// error behind affects only its file): the CUDA backend, never destroyed (no CUDA calls
// during static destruction at exit), and the CPU reference.
static inline CudaBackend& gpu() {
  static CudaBackend* be = new CudaBackend(BackendOptions{});
  return *be;
}
static inline CpuBackend& cpu() {
  static CpuBackend be;
  return be;
}

#define BMSYS_SKIP_WITHOUT_GPU()                                    \
  do {                                                              \
    if (::bmsys::rt::cuda_device_count() == 0)                      \
      GTEST_SKIP() << "no CUDA device: skipped";                    \
  } while (0)

inline HostTensor random_tensor(DType t, const Shape& s, std::mt19937& rng, float lo = -1.f,
                                float hi = 1.f) {
  HostTensor f(DType::F32, s);
  std::uniform_real_distribution<float> d(lo, hi);
  float* p = f.as<float>();
  for (int64_t i = 0; i < f.numel(); ++i) p[i] = d(rng);
  if (t == DType::F32) return f;
  HostTensor o(t, s);
  convert(o.data.data(), t, f.data.data(), DType::F32, f.numel());
  return o;
}

inline HostTensor ids_tensor(const Shape& s, int64_t V, std::mt19937& rng) {
  HostTensor t(DType::I64, s);
  std::uniform_int_distribution<int64_t> d(0, V - 1);
  for (int64_t i = 0; i < t.numel(); ++i) t.as<int64_t>()[i] = d(rng);
  return t;
}

// The same values as f32 (what the CPU reference computes on).
inline HostTensor as_f32(const HostTensor& t) {
  if (t.dtype == DType::F32 || !dtype_is_float(t.dtype)) return t;
  HostTensor o(DType::F32, t.shape);
  convert(o.data.data(), DType::F32, t.data.data(), t.dtype, t.numel());
  return o;
}

// ||a - b|| / ||b|| over float tensors; NaN or a size mismatch give +inf.
inline double rel_err(const HostTensor& a, const HostTensor& b) {
  std::vector<float> x = a.to_f32(), y = b.to_f32();
  if (x.size() != y.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i]) || std::isnan(y[i])) return INFINITY;
    double d = static_cast<double>(x[i]) - y[i];
    num += d * d;
    den += static_cast<double>(y[i]) * y[i];
  }
  if (den == 0) return std::sqrt(num);
  return std::sqrt(num / den);
}

struct OutSpec {
  DType dtype;
  Shape shape;
};

struct Call {
  KernelId kernel;
  Attrs attrs;
  std::vector<int> inputs;   // indices into the tensor list
  std::vector<int> outputs;  // indices into the tensor list
};

// Runs a sequence of launches over a shared list of tensors on `be`: every tensor is
// uploaded (outputs poisoned with 0xFF bytes: NaN for floats), the calls are launched
// in order, then everything is synchronized and copied back. Returns the tensors after.
// With repeat > 1 the sequence runs that many times, one flush each, on the same memory;
// with count_steps, at training steps ctx.step = 1..repeat.
inline std::vector<HostTensor> run_calls(Backend& be, const std::vector<HostTensor>& tensors,
                                         const std::vector<Call>& calls, LaunchContext ctx,
                                         int repeat = 1, bool count_steps = false) {
  std::vector<std::unique_ptr<DeviceMemory>> mem;
  for (const HostTensor& t : tensors) {
    mem.push_back(be.allocate(t.bytes(), "test tensor"));
    be.upload(mem.back()->data(), t.dtype, t.data.data(), t.dtype, t.numel());
  }
  std::vector<HostTensor> out = tensors;
  for (int r = 0; r < repeat; ++r) {
    if (count_steps) ctx.step = r + 1;
    for (const Call& c : calls) {
      KernelLaunch l;
      l.kernel = c.kernel;
      l.attrs = &c.attrs;
      l.ctx = ctx;
      for (int i : c.inputs) l.inputs.push_back({mem[i]->data(), tensors[i].dtype, tensors[i].shape});
      for (int i : c.outputs) l.outputs.push_back({mem[i]->data(), tensors[i].dtype, tensors[i].shape});
      check_launch(l);
      be.launch(l);
    }
    be.synchronize();
  }
  for (size_t i = 0; i < tensors.size(); ++i)
    be.copy_to_host(out[i].data.data(), mem[i]->data(), out[i].bytes());
  return out;
}

// A poisoned output tensor (all bytes 0xFF).
inline HostTensor poison(DType t, const Shape& s) {
  HostTensor o(t, s);
  std::fill(o.data.begin(), o.data.end(), 0xFF);
  return o;
}

inline Attrs attrs(std::initializer_list<std::pair<std::string, AttrValue>> kv) {
  Attrs a;
  for (auto& p : kv) a.set(p.first, p.second);
  return a;
}

// Sets an environment variable for the lifetime of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);
    had_ = old != nullptr;
    if (had_) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (had_) setenv(name_.c_str(), old_.c_str(), 1);
    else unsetenv(name_.c_str());
  }

 private:
  std::string name_, old_;
  bool had_ = false;
};

inline double tol_for(DType t) {
  switch (t) {
    case DType::F32: return 1e-5;
    case DType::F16: return 5e-3;
    default: return 2e-2;
  }
}

}  // namespace bmsys::rt::cudatest
