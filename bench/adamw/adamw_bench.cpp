// bmsys-bench-adamw: times the CPU AdamW (runtime/backends/cpu/adamw.h) on
// N float32 parameters (param, grad, exp_avg, exp_avg_sq: 16 N bytes) with T
// OpenMP threads, for each instruction set asked for, and prints one JSON line
// per instruction set:
//   {"impl": "bmsys-avx512", "threads": 16, "params": 67108864, "steps": 20,
//    "seconds_per_step": ..., "params_per_s": ..., "gb_per_s": ...}
// gb_per_s counts the 28 bytes per parameter one fused pass moves (four
// arrays read, three written). bench/adamw/adamw_torch.py runs this beside
// torch.optim.AdamW on the same cores (docs/kernels.md, "CPU AdamW").
#include <omp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "runtime/backends/cpu/adamw.h"

using namespace bmsys::rt;

namespace {

struct Aligned {
  float* p = nullptr;
  explicit Aligned(int64_t n) : p(static_cast<float*>(std::aligned_alloc(64, ((n * 4 + 63) / 64) * 64))) {}
  ~Aligned() { std::free(p); }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bmsys-bench-adamw: parameters/s of the CPU AdamW per instruction set"};
  int64_t n = 64ll << 20;
  int steps = 20, warmup = 3, threads = 0;
  std::string isa_arg = "all";
  app.add_option("--params", n, "number of float32 parameters")->check(CLI::PositiveNumber);
  app.add_option("--steps", steps, "timed steps")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "untimed steps first");
  app.add_option("--threads", threads, "OpenMP threads (0: OMP_NUM_THREADS or all cores)");
  app.add_option("--isa", isa_arg, "scalar, avx2, avx512, auto (the runtime's choice) or all (every supported)");
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) omp_set_num_threads(threads);
  threads = omp_get_max_threads();

  std::vector<cpu::AdamWIsa> isas;
  const cpu::AdamWIsa all[] = {cpu::AdamWIsa::Scalar, cpu::AdamWIsa::Avx2, cpu::AdamWIsa::Avx512};
  if (isa_arg == "auto") {
    isas.push_back(cpu::adamw_default_isa());
  } else {
    for (cpu::AdamWIsa isa : all)
      if ((isa_arg == "all" && cpu::adamw_isa_supported(isa)) || isa_arg == cpu::adamw_isa_name(isa)) {
        if (!cpu::adamw_isa_supported(isa)) {
          std::fprintf(stderr, "bmsys-bench-adamw: --isa %s: not supported by this CPU\n", isa_arg.c_str());
          return 2;
        }
        isas.push_back(isa);
      }
    if (isas.empty()) {
      std::fprintf(stderr, "bmsys-bench-adamw: --isa %s: not one of scalar, avx2, avx512, auto, all\n",
                   isa_arg.c_str());
      return 2;
    }
  }

  Aligned param(n), grad(n), m(n), v(n);
  if (!param.p || !grad.p || !m.p || !v.p) {
    std::fprintf(stderr, "bmsys-bench-adamw: cannot allocate 4 x %lld floats\n", static_cast<long long>(n));
    return 1;
  }
  // First touch by the threads that will update each range (the kernel's static
  // split), so that pages sit on the right NUMA node.
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    param.p[i] = 0.01f * static_cast<float>((i * 7919) % 1000 - 500) / 500.0f;
    grad.p[i] = 0.001f * static_cast<float>((i * 104729) % 2000 - 1000) / 1000.0f;
    m.p[i] = 0.0f;
    v.p[i] = 0.0f;
  }
  cpu::AdamWParams prm;
  prm.lr = 1e-4;
  prm.beta1 = 0.9;
  prm.beta2 = 0.95;
  prm.eps = 1e-8;
  prm.weight_decay = 0.1;
  for (cpu::AdamWIsa isa : isas) {
    int64_t step = 1;
    for (int i = 0; i < warmup; ++i) {
      prm.step = step++;
      cpu::adamw(isa, param.p, grad.p, m.p, v.p, n, prm);
    }
    std::vector<double> times;
    for (int i = 0; i < steps; ++i) {
      prm.step = step++;
      auto t0 = std::chrono::steady_clock::now();
      cpu::adamw(isa, param.p, grad.p, m.p, v.p, n, prm);
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(times.begin(), times.end());
    const double median = times[times.size() / 2];
    std::printf(
        "{\"impl\": \"bmsys-%s\", \"threads\": %d, \"params\": %lld, \"steps\": %d, \"seconds_per_step\": %.6g, "
        "\"params_per_s\": %.6g, \"gb_per_s\": %.4g}\n",
        cpu::adamw_isa_name(isa), threads, static_cast<long long>(n), steps, median, n / median,
        28.0 * n / median / 1e9);
    std::fflush(stdout);
  }
  return 0;
}
