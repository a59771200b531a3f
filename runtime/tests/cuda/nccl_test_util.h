// Helpers for the two-GPU tests (nccl_test, nccl_tp_test, nccl_pipeline_test): two ranks
// as threads of this process, one GPU each, their communicators made as bmsys-run makes
// them; device buffers of f32 test values.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "runtime/backends/cuda/cuda_backend.h"
#include "runtime/collectives/communicator.h"
#include "runtime/core/error.h"
#include "runtime/io/convert.h"

namespace bmsys::rt::nccltest {

#define BMSYS_SKIP_WITHOUT_TWO_GPUS()                                                       \
  do {                                                                                      \
    if (::bmsys::rt::cuda_device_count() < 2) GTEST_SKIP() << "fewer than 2 GPUs: skipped"; \
  } while (0)

// Runs body(r, backend, world) on two threads: rank r with a CudaBackend on GPU r and the
// world communicator create_communicator makes for it (NCCL), meeting through a file
// store in a fresh directory named after `tag`. Returns each rank's error ("" if none).
inline std::vector<std::string> run_two_gpus(
    const std::string& tag, double timeout_s,
    const std::function<void(int, std::shared_ptr<CudaBackend>, std::shared_ptr<Communicator>)>& body) {
  ::setenv("BMSYS_NCCL_EXIT_AFTER_ABORT_S", "0", 1);  // the test process goes on after an abort
  ::setenv("NCCL_NVLS_ENABLE", "0", 0);
  const auto dir = std::filesystem::temp_directory_path() / ("bmsys-" + tag + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::vector<std::string> errors(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      try {
        BackendOptions bo;
        bo.device = r;
        auto backend = std::make_shared<CudaBackend>(bo);
        DistributedEnv env;
        env.rank = r;
        env.local_rank = r;
        env.world_size = 2;
        env.local_world_size = 2;
        env.timeout_s = timeout_s;
        env.store_dir = dir.string();
        auto world = create_communicator(env, *backend);
        body(r, backend, world);
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  std::filesystem::remove_all(dir);
  return errors;
}

// v (f32) on the device as dtype t.
inline std::unique_ptr<DeviceMemory> upload(CudaBackend& b, const std::vector<float>& v, DType t = DType::F32) {
  auto m = b.allocate(std::max<size_t>(1, v.size()) * dtype_size(t), "test");
  b.upload(m->data(), t, v.data(), DType::F32, static_cast<int64_t>(v.size()));
  return m;
}

// n elements of dtype t at p, as f32.
inline std::vector<float> download(CudaBackend& b, const void* p, int64_t n, DType t = DType::F32) {
  std::vector<char> raw(static_cast<size_t>(n) * dtype_size(t));
  b.copy_to_host(raw.data(), p, raw.size());
  std::vector<float> out(static_cast<size_t>(n));
  convert(out.data(), DType::F32, raw.data(), t, n);
  return out;
}

// Rank r's test values: x_r[i] = (r + 1) * (i % 16 + 1) / 8 (exact in bf16).
inline std::vector<float> values(int r, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<float>((r + 1) * (i % 16 + 1)) / 8.0f;
  return v;
}

}  // namespace bmsys::rt::nccltest
