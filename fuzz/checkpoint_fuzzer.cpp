// Fuzz target `checkpoint`: the training checkpoint loader (runtime/train/checkpoint.h,
// load_checkpoint) on a fixed executor.
//
// Input format: the files of a checkpoint directory, separated by the line
// "--8<--":
//     trainer_state.json --8<-- model.safetensors --8<-- optimizer.safetensors --8<-- config.json
// Parts that are absent make the file absent. In trainer_state.json the
// placeholders @model.bytes@ @model.fnv@ @optimizer.bytes@ @optimizer.fnv@
// @config.bytes@ @config.fnv@ are replaced by the real size and FNV-1a 64 of
// that part, so that mutations get past the checksums into the safetensors
// checks (seeds use them; seeds without them test the checksum path).
//
// The executor is built once, on the CPU backend, for a small training-shaped
// artifact made here with the FlatBuffers builder: weights 'emb' [4,2] and
// 'head' (tied to the same key), 'g' [2], and AdamW states for each
// (OptimizerState buffers); the weights come from a safetensors file written
// at start-up. load_checkpoint must refuse anything inconsistent with a
// bmsys::rt::Error and never crash.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz/fuzz_util.h"
#include "runtime/backends/backend.h"
#include "runtime/core/artifact.h"
#include "runtime/core/error.h"
#include "runtime/core/executor.h"
#include "runtime/core/version.h"
#include "runtime/io/safetensors.h"
#include "runtime/schemas/artifact_generated.h"
#include "runtime/train/checkpoint.h"

using namespace bmsys::rt;
namespace fba = bmsys::artifact;

namespace {

const char kSeparator[] = "\n--8<--\n";

std::vector<uint8_t> build_artifact() {
  flatbuffers::FlatBufferBuilder b;
  std::vector<flatbuffers::Offset<fba::Buffer>> bufs;
  auto weight = [&](const char* name, std::vector<fba::Dim> dims, const char* key) {
    bufs.push_back(fba::CreateBufferDirect(b, name, fba::DType_F32, &dims, fba::BufferKind_Weight, 0, 0,
                                           "weights.safetensors", key));
  };
  uint64_t pool = 0;
  auto state = [&](const char* name, std::vector<fba::Dim> dims, uint64_t bytes) {
    bufs.push_back(fba::CreateBufferDirect(b, name, fba::DType_F32, &dims, fba::BufferKind_OptimizerState,
                                           pool, bytes));
    pool += (bytes + 63) / 64 * 64;
  };
  const std::vector<fba::Dim> d42 = {{fba::DimKind_Static, 4}, {fba::DimKind_Static, 2}};
  const std::vector<fba::Dim> d2 = {{fba::DimKind_Static, 2}};
  weight("emb", d42, "model.emb.weight");
  weight("head", d42, "model.emb.weight");  // tied: one tensor in the checkpoint
  weight("g", d2, "model.norm.weight");
  state("emb.exp_avg", d42, 32);
  state("emb.exp_avg_sq", d42, 32);
  state("g.exp_avg", d2, 8);
  state("g.exp_avg_sq", d2, 8);
  std::vector<flatbuffers::Offset<fba::Function>> fns;
  auto root = fba::CreateArtifactDirect(b, kArtifactFormatVersion, "fuzz/checkpoint_fuzzer.cpp",
                                        "{\"model_type\": \"llama\"}", 1, 4, 0, pool, &bufs, &fns);
  fba::FinishArtifactBuffer(b, root);
  return std::vector<uint8_t>(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
}

Executor& executor() {
  static Executor* ex = [] {
    const std::string dir = bmsys::fuzz::scratch_subdir("artifact");
    try {
      std::map<std::string, HostTensor> w;
      w.emplace("model.emb.weight", HostTensor::from_f32({4, 2}, {1, 2, 3, 4, 5, 6, 7, 8}));
      w.emplace("model.norm.weight", HostTensor::from_f32({2}, {1, 1}));
      write_safetensors(dir + "/weights.safetensors", w);
      std::vector<uint8_t> bytes = build_artifact();
      auto artifact = load_artifact_from_memory(bytes.data(), bytes.size(), "fuzz-checkpoint.bmsys", dir);
      return new Executor(artifact, std::shared_ptr<Backend>(create_backend("cpu")));
    } catch (const Error& e) {
      std::fprintf(stderr, "checkpoint fuzzer: cannot set up the executor: %s\n", e.what());
      std::abort();
    }
  }();
  return *ex;
}

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Executor& ex = executor();
  static const std::string dir = bmsys::fuzz::scratch_subdir("checkpoint");
  std::string input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    size_t p = input.find(kSeparator, start);
    parts.push_back(input.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) break;
    start = p + sizeof(kSeparator) - 1;
  }
  const char* files[] = {kCheckpointStateFile, kCheckpointModelFile, kCheckpointOptimizerFile,
                         kCheckpointConfigFile};
  const char* tags[] = {nullptr, "model", "optimizer", "config"};
  if (!parts.empty()) {
    for (size_t i = 1; i < 4 && i < parts.size(); ++i) {
      replace_all(parts[0], std::string("@") + tags[i] + ".bytes@", std::to_string(parts[i].size()));
      char hex[17];
      std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a64(parts[i])));
      replace_all(parts[0], std::string("@") + tags[i] + ".fnv@", hex);
    }
  }
  for (size_t i = 0; i < 4; ++i) {
    std::string path = dir + "/" + files[i];
    if (i < parts.size())
      bmsys::fuzz::write_file(path, reinterpret_cast<const uint8_t*>(parts[i].data()), parts[i].size());
    else
      unlink(path.c_str());
  }
  try {
    TrainerState st = load_checkpoint(dir, ex);
    (void)st;
  } catch (const Error& e) {
    bmsys::fuzz::refused(e.what());
  }
  return 0;
}
