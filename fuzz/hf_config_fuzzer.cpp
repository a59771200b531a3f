// Fuzz target `hf_config`: the importer's config.json reader (frontends/hf).
//
// Each input is a candidate config.json. It is written into two checkpoint
// directories next to a fixed, real model.safetensors: the tiny Llama of
// test/data (imported without hidden states) and the tiny GPT-2 (imported with
// --hidden-states), and importHuggingFace runs on both. Refusals are expected
// (llvm::Error); a crash, a sanitizer report or invalid imported IR is a finding.
#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.h"
#include "fuzz/hf_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string llama = [] {
    std::string d = bmsys::fuzz::scratch_subdir("llama");
    bmsys::fuzz::symlink_file(std::string(bmsys::fuzz::source_dir()) + "/test/data/llama-tiny/model.safetensors",
                              d + "/model.safetensors");
    return d;
  }();
  static const std::string gpt2 = [] {
    std::string d = bmsys::fuzz::scratch_subdir("gpt2");
    bmsys::fuzz::symlink_file(std::string(bmsys::fuzz::source_dir()) + "/test/data/gpt2-tiny/model.safetensors",
                              d + "/model.safetensors");
    return d;
  }();
  bmsys::fuzz::write_file(llama + "/config.json", data, size);
  bmsys::fuzz::write_file(gpt2 + "/config.json", data, size);
  bmsys::fuzz::importDir(llama, /*hiddenStates=*/false);
  bmsys::fuzz::importDir(gpt2, /*hiddenStates=*/true);
  return 0;
}
