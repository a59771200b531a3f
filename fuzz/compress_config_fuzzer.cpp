// Fuzz target `compress_config`: the compression config reader
// (passes/compress/CompressConfig.h), which bmsys-compress runs on a user's
// JSON file. Refusals are expected (llvm::Error naming the key); a crash, a
// sanitizer report, or an accepted config that breaks the invariants the
// passes rely on (checked below) is a finding.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz/fuzz_util.h"
#include "passes/compress/CompressConfig.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  llvm::StringRef text(reinterpret_cast<const char*>(data), size);
  auto config = bmsys::parseCompressConfig(text, "fuzz.json");
  if (!config) {
    std::string message = llvm::toString(config.takeError());
    // Every error names the file.
    if (message.rfind("fuzz.json: ", 0) != 0) std::abort();
    bmsys::fuzz::refused(message);
    return 0;
  }
  for (const auto& p : config->pruning) {
    if (p.sparsity < 0 || p.sparsity >= 1 || p.count < 1) std::abort();
    if ((p.method == "heads" || p.method == "layers") && p.calibration.empty()) std::abort();
  }
  if (config->distillation &&
      (!(config->distillation->temperature > 0) || config->distillation->prefix.empty()))
    std::abort();
  if (config->moefication &&
      (config->moefication->topK < 1 || config->moefication->topK > config->moefication->experts))
    std::abort();
  return 0;
}
