// A stream-ordered caching allocator for device memory.
//
// Blocks come from cudaMalloc (sizes rounded to 512 B below 1 MiB, to 2 MiB above) and
// go back to a cache when freed. A block freed on stream s is reusable at once by work
// on s (stream order makes that safe); for another stream it is reusable once an event
// recorded on s at the free has completed. When cudaMalloc fails, the cache is
// released to the driver and the allocation retried once; allocate() then returns null
// and the caller reports the out-of-memory error with its own context.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <map>
#include <mutex>
#include <string>

namespace bmsys::rt::cuda {

class CachingAllocator {
 public:
  CachingAllocator() = default;
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // Null when the device is out of memory (even after releasing the cache).
  void* allocate(size_t bytes, cudaStream_t stream);
  void free(void* p, cudaStream_t stream);
  // Returns every cached (unused) block to the driver.
  void release_cached();

  struct Stats {
    size_t in_use = 0;    // bytes handed out
    size_t cached = 0;    // bytes held in the cache
    size_t peak = 0;      // largest in_use seen
    size_t mallocs = 0;   // cudaMalloc calls
    size_t reuses = 0;    // allocations served from the cache
  };
  Stats stats() const;
  static size_t round(size_t bytes);

 private:
  struct Block {
    void* ptr = nullptr;
    size_t size = 0;
    cudaStream_t stream = nullptr;
    cudaEvent_t event = nullptr;  // recorded at free when other streams may take it
  };
  mutable std::mutex mu_;
  std::map<void*, Block> live_;
  std::multimap<size_t, Block> free_;
  Stats stats_;
};

}  // namespace bmsys::rt::cuda
