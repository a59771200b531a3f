//===- SafetensorsHeader.h - reading the header of a safetensors file -----===//
//
// The importer needs the names, dtypes and shapes of the tensors, never the
// data: it reads and validates the header alone.
//
//===----------------------------------------------------------------------===//
#ifndef BMSYS_FRONTENDS_HF_SAFETENSORSHEADER_H
#define BMSYS_FRONTENDS_HF_SAFETENSORSHEADER_H

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace bmsys::hf {
struct TensorInfo {
  std::string dtype; // as written: F32, F16, BF16, ...
  std::vector<int64_t> shape;
};

/// Reads and checks the header of `path`: the header length against the file
/// size, the JSON, each tensor's dtype, shape and byte range.
llvm::Expected<llvm::StringMap<TensorInfo>> readSafetensorsHeader(llvm::StringRef path);
} // namespace bmsys::hf

#endif
