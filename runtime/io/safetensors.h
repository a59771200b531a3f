// Safetensors reading and writing.
//
// The reader validates the whole header before any tensor is used: the 8-byte
// header length against the file size and kMaxHeaderBytes, the JSON, every dtype,
// shape (element count bounded, no overflow), data_offsets (ordered, inside the
// data section, exactly numel * dtype size bytes) and that no two tensors overlap.
// The file is memory-mapped read-only. Every error names the file (and tensor).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/core/dtype.h"
#include "runtime/core/tensor.h"

namespace bmsys::rt {

inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull << 20;  // 100 MB

struct SafetensorsInfo {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin = 0;  // byte offsets into the data section
  uint64_t end = 0;
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Opens, maps and validates `path`; throws bmsys::rt::Error on any problem.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  const SafetensorsInfo& info(const std::string& name) const;  // throws if missing
  std::vector<std::string> names() const;                      // sorted
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Raw bytes of a tensor (inside the mapping; may be unaligned).
  const uint8_t* data(const std::string& name) const;
  // A copy converted to `dtype` (float <-> float, int <-> int).
  HostTensor read(const std::string& name, DType dtype) const;
  // A copy in the file's own dtype.
  HostTensor read(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* data_section_ = nullptr;
  std::map<std::string, SafetensorsInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (sorted by name) to `path` through `path.tmp` + rename.
void write_safetensors(const std::string& path, const std::map<std::string, HostTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace bmsys::rt
