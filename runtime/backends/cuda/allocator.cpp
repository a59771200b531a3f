#include "runtime/backends/cuda/allocator.h"

namespace bmsys::rt::cuda {

size_t CachingAllocator::round(size_t bytes) {
  if (bytes == 0) bytes = 1;
  constexpr size_t kSmall = 512, kLarge = 2u << 20, kLimit = 1u << 20;
  if (bytes < kLimit) return (bytes + kSmall - 1) / kSmall * kSmall;
  return (bytes + kLarge - 1) / kLarge * kLarge;
}

CachingAllocator::~CachingAllocator() {
  cudaDeviceSynchronize();
  for (auto& kv : free_) {
    if (kv.second.event) cudaEventDestroy(kv.second.event);
    cudaFree(kv.second.ptr);
  }
  for (auto& kv : live_) cudaFree(kv.second.ptr);
  cudaGetLastError();
}

void* CachingAllocator::allocate(size_t bytes, cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t size = round(bytes);
  // Best fit among cached blocks no more than twice the request (or 2 MiB over it).
  for (auto it = free_.lower_bound(size); it != free_.end(); ++it) {
    if (it->first > 2 * size && it->first > size + (2u << 20)) break;
    Block& b = it->second;
    if (b.stream != stream && b.event) {
      if (cudaEventQuery(b.event) != cudaSuccess) {
        cudaGetLastError();  // cudaErrorNotReady is not sticky, but clear it anyway
        continue;
      }
    } else if (b.stream != stream && !b.event) {
      continue;
    }
    Block got = b;
    if (got.event) {
      cudaEventDestroy(got.event);
      got.event = nullptr;
    }
    free_.erase(it);
    got.stream = stream;
    stats_.cached -= got.size;
    stats_.in_use += got.size;
    stats_.reuses++;
    if (stats_.in_use > stats_.peak) stats_.peak = stats_.in_use;
    live_[got.ptr] = got;
    return got.ptr;
  }
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, size);
  if (err != cudaSuccess) {
    cudaGetLastError();
    // Give the cache back to the driver and try once more.
    mu_.unlock();
    release_cached();
    mu_.lock();
    err = cudaMalloc(&p, size);
    if (err != cudaSuccess) {
      cudaGetLastError();
      return nullptr;
    }
  }
  stats_.mallocs++;
  stats_.in_use += size;
  if (stats_.in_use > stats_.peak) stats_.peak = stats_.in_use;
  live_[p] = Block{p, size, stream, nullptr};
  return p;
}

void CachingAllocator::free(void* p, cudaStream_t stream) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(p);
  if (it == live_.end()) return;
  Block b = it->second;
  live_.erase(it);
  b.stream = stream;
  if (cudaEventCreateWithFlags(&b.event, cudaEventDisableTiming) == cudaSuccess) {
    if (cudaEventRecord(b.event, stream) != cudaSuccess) {
      cudaEventDestroy(b.event);
      b.event = nullptr;
      cudaGetLastError();
    }
  } else {
    b.event = nullptr;
    cudaGetLastError();
  }
  stats_.in_use -= b.size;
  stats_.cached += b.size;
  free_.emplace(b.size, b);
}

void CachingAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mu_);
  if (free_.empty()) return;
  cudaDeviceSynchronize();
  for (auto& kv : free_) {
    if (kv.second.event) cudaEventDestroy(kv.second.event);
    cudaFree(kv.second.ptr);
    stats_.cached -= kv.second.size;
  }
  free_.clear();
  cudaGetLastError();
}

CachingAllocator::Stats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace bmsys::rt::cuda
