// Fuzz target `hf_safetensors`: the compiler's safetensors reader
// (frontends/hf/Safetensors.h) and the importer's tensor checks that follow it.
//
// Each input is a candidate model.safetensors. readSafetensorsHeader reads it
// exactly as given and, when it accepts it, readTensorAsF32 (what
// bmsys-quantize reads weights with) reads every tensor of it. Then, since the importer reads headers only and an input
// small enough to fuzz has no room for real weights, the file is extended with
// 1 MiB of zeros (a data section large enough for the tiny models' tensors) and
// imported next to the fixed config.json of the tiny Llama and of the tiny GPT-2
// (test/data). Refusals are expected; a crash, a sanitizer report or invalid
// imported IR is a finding.
#include <cstdint>
#include <string>
#include <vector>

#include "frontends/hf/Safetensors.h"
#include "fuzz/fuzz_util.h"
#include "fuzz/hf_common.h"

namespace {
std::string checkpointDir(const char* name, const char* model) {
  std::string d = bmsys::fuzz::scratch_subdir(name);
  bmsys::fuzz::symlink_file(std::string(bmsys::fuzz::source_dir()) + "/test/data/" + model + "/config.json",
                            d + "/config.json");
  bmsys::fuzz::symlink_file(bmsys::fuzz::scratch_dir() + "/model.safetensors", d + "/model.safetensors");
  return d;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string file = bmsys::fuzz::scratch_dir() + "/model.safetensors";
  static const std::string llama = checkpointDir("llama", "llama-tiny");
  static const std::string gpt2 = checkpointDir("gpt2", "gpt2-tiny");
  bmsys::fuzz::write_file(file, data, size);
  auto header = bmsys::hf::readSafetensorsHeader(file);
  if (!header) {
    llvm::consumeError(header.takeError());
  } else {
    for (const auto& entry : *header) {
      std::vector<int64_t> shape;
      auto values = bmsys::hf::readTensorAsF32(file, entry.getKey(), &shape);
      if (!values) llvm::consumeError(values.takeError());
    }
  }
  bmsys::fuzz::resize_file(file, size + (1u << 20));
  bmsys::fuzz::importDir(llama, /*hiddenStates=*/false);
  bmsys::fuzz::importDir(gpt2, /*hiddenStates=*/true);
  return 0;
}
