// The CPU backend: the reference implementation of every kernel (float32 compute,
// int64 ids), OpenMP threads, OpenBLAS GEMMs. Memory is plain 64-byte aligned host
// memory.
#pragma once

#include <atomic>
#include <memory>

#include "runtime/backends/backend.h"

namespace bmsys::rt {

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(const BackendOptions& opts = {});
  std::string name() const override { return "cpu"; }
  bool supports_batch_offset() const override { return true; }
  std::string description() const override;
  bool supports(KernelId kernel) const override;
  bool supports_dtype(DType dtype) const override;
  std::unique_ptr<DeviceMemory> allocate(size_t bytes, const std::string& what) override;
  void fill_zero(void* dst, size_t bytes) override;
  void upload(void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t count) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override;
  void launch(const KernelLaunch& launch) override;
  void synchronize() override {}
  // Bytes held now and at most, as requested by the executor (before the 64-byte
  // rounding): equal to the artifact's memory plan once it is loaded.
  std::string memory_report() const override;

 private:
  struct Account {
    std::atomic<uint64_t> held{0}, peak{0}, buffers{0};
  };
  // Shared with the deleters: memory may outlive the backend object.
  std::shared_ptr<Account> account_ = std::make_shared<Account>();
};

}  // namespace bmsys::rt
