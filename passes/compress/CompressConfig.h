//===- CompressConfig.h - the compression config file ---------------------===//
//
// One JSON file with sections `pruning`, `distillation`, `quantization` and
// `moefication` (docs/compression.md) drives bmsys-compress. Parsing is
// separate from the passes so that a fuzz target can call it on any text.
//
//===----------------------------------------------------------------------===//
#ifndef BMSYS_PASSES_COMPRESS_COMPRESSCONFIG_H
#define BMSYS_PASSES_COMPRESS_COMPRESSCONFIG_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bmsys {
struct CompressConfig {
  struct Pruning { // one stage of bmsys-prune
    std::string method = "2:4";
    double sparsity = 0.5;
    std::string params;
    int64_t count = 1;
    std::vector<std::string> calibration;
    std::string output;
  };
  struct Distillation { // bmsys-distill
    std::string teacher;
    double temperature = 2.0;
    double softCeScale = 1.0;
    double hiddenScale = 1.0;
    std::vector<std::pair<int64_t, int64_t>> layerMap;
    bool projection = false;
    std::string prefix = "teacher.";
    std::string teacherOutput;
  };
  struct Quantization { // bmsys-quantize
    std::string mode = "qat";
    std::string activations = "float";
    std::string output;
    std::vector<std::string> skip;
  };
  struct Moefication { // bmsys-moefy
    int64_t experts = 8;
    int64_t topK = 2;
    int64_t iterations = 20;
    std::string output;
  };
  std::vector<Pruning> pruning; // applied in order
  std::optional<Distillation> distillation;
  std::optional<Quantization> quantization;
  std::optional<Moefication> moefication;
};

/// Parses a config. Errors name the file and the key (`FILE: pruning[1].method:
/// ...`); unknown keys, wrong types and out-of-range values are errors.
/// Relative paths inside the file are kept as written.
llvm::Expected<CompressConfig> parseCompressConfig(llvm::StringRef text, llvm::StringRef fileName);
} // namespace bmsys

#endif // BMSYS_PASSES_COMPRESS_COMPRESSCONFIG_H
