//===- Safetensors.h - safetensors files on the compiler side -------------===//
//
// The importer needs the names, dtypes and shapes of the tensors, never the
// data: it reads and validates the header alone. Passes that transform
// weights at compile time (bmsys-quantize) read tensors as float32 and write
// new files.
//
//===----------------------------------------------------------------------===//
#ifndef BMSYS_FRONTENDS_HF_SAFETENSORS_H
#define BMSYS_FRONTENDS_HF_SAFETENSORS_H

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace bmsys::hf {
struct TensorInfo {
  std::string dtype; // as written: F32, F16, BF16, ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0; // byte range in the file
};

/// Reads and checks the header of `path`: the header length against the file
/// size, the JSON, each tensor's dtype, shape and byte range.
llvm::Expected<llvm::StringMap<TensorInfo>> readSafetensorsHeader(llvm::StringRef path);

/// Reads tensor `key` of `path` (F32, F16 or BF16) as float32.
llvm::Expected<std::vector<float>> readTensorAsF32(llvm::StringRef path, llvm::StringRef key,
                                                   std::vector<int64_t> *shape = nullptr);

/// A tensor to write: raw little-endian bytes of `dtype` ("F32", "I8", ...).
struct TensorData {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<char> bytes;
};

/// Writes `tensors` (in name order) to `path`, through a temporary file that is
/// renamed into place.
llvm::Error writeSafetensors(llvm::StringRef path,
                             const std::vector<std::pair<std::string, TensorData>> &tensors);
/// A tensor declared by its dtype and shape alone.
struct TensorDecl {
  std::string dtype;
  std::vector<int64_t> shape;
};

/// Writes the header of `tensors` over a data region that is a hole (a sparse file:
/// every tensor reads as zeros and the file takes no disk space). For benchmarks whose
/// runs fill the weights themselves (`bmsys-run --random-weights`).
llvm::Error writeSafetensorsHeaderOnly(
    llvm::StringRef path, const std::vector<std::pair<std::string, TensorDecl>> &tensors);
} // namespace bmsys::hf

#endif // BMSYS_FRONTENDS_HF_SAFETENSORS_H
