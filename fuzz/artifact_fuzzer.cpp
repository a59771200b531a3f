// Fuzz target `artifact`: the runtime's artifact loader (runtime/core/artifact.h).
//
// Each input is a candidate .bmsys file. It is loaded from memory
// (load_artifact_from_memory) and from a file (load_artifact), which must agree;
// an accepted artifact is then walked the way bmsys-run inspect and the executor
// do (every buffer resolved at the bounds, every instruction described).
// The contract under test: anything not a valid artifact is refused with a
// bmsys::rt::Error, never a crash, a sanitizer report, or another exception.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "runtime/backends/backend.h"
#include "runtime/core/artifact.h"
#include "runtime/core/error.h"
#include "runtime/core/executor.h"

using namespace bmsys::rt;

namespace {

size_t walk(const Artifact& a) {
  size_t n = a.producer.size() + a.model_config.size();
  for (const BufferDesc& b : a.buffers) {
    n += b.dims_str().size() + b.name.size() + b.weight_file.size() + b.weight_key.size();
    n += b.resolve(a.max_batch, a.max_seq).size() + b.resolve(1, 1).size();
    n += std::string(buffer_kind_name(b.kind)).size() + std::string(dtype_name(b.dtype)).size();
    if (a.find_buffer(b.name) < 0) {
      std::fprintf(stderr, "artifact fuzzer: buffer '%s' not found by name\n", b.name.c_str());
      std::abort();
    }
  }
  for (const FunctionDesc& f : a.functions) {
    if (a.find_function(f.name) != &f && a.find_function(f.name) == nullptr) std::abort();
    if (f.output_names.size() != f.outputs.size()) {
      std::fprintf(stderr, "artifact fuzzer: function '%s': %zu output names for %zu outputs\n",
                   f.name.c_str(), f.output_names.size(), f.outputs.size());
      std::abort();
    }
    for (uint32_t i : f.inputs) n += a.buffers.at(i).name.size();
    for (uint32_t o : f.outputs) n += a.buffers.at(o).name.size();
    for (size_t i = 0; i < f.instructions.size(); ++i) {
      const InstructionDesc& inst = f.instructions[i];
      n += Artifact::describe(i, inst).size();
      for (uint32_t b : inst.inputs) n += a.buffers.at(b).dims.size();
      for (uint32_t b : inst.outputs) n += a.buffers.at(b).dims.size();
    }
  }
  return n;
}

// An accepted artifact small enough to hold is also instantiated on the CPU
// backend, as bmsys-run does before running it: the executor allocates both
// pools, zeroes the state pool and allocates the inputs at their largest shape,
// all sized by the file (docs/hardening.md, finding 4). Weights are looked up in
// the artifact's directory, where a fuzzed artifact's files are missing: that is
// a refusal (bmsys::rt::Error) like any other.
constexpr uint64_t kMaxInstantiatedBytes = 64ull << 20;

void instantiate(const std::shared_ptr<const Artifact>& a) {
  uint64_t total = a->activation_pool_bytes + a->state_pool_bytes;  // each <= kMaxPoolBytes
  for (const BufferDesc& b : a->buffers) {
    if (b.kind != BufferKind::Input && b.kind != BufferKind::Weight) continue;
    // Weight files are opened relative to the scratch directory; a fuzzed name
    // that is absolute or climbs out of it could reach a device file (a FIFO
    // would hang), so such artifacts are not instantiated.
    if (b.kind == BufferKind::Weight &&
        (b.weight_file.empty() || b.weight_file[0] == '/' || b.weight_file.find("..") != std::string::npos))
      return;
    int64_t numel = 1;
    for (int64_t v : b.resolve(a->max_batch, a->max_seq))
      if (!checked_mul(numel, v, &numel)) return;  // the loader checked these; be safe
    total += static_cast<uint64_t>(numel) * dtype_size(b.dtype);
    if (total > kMaxInstantiatedBytes) return;
  }
  if (total > kMaxInstantiatedBytes) return;
  Executor ex(a, std::shared_ptr<Backend>(create_backend("cpu")));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = bmsys::fuzz::scratch_dir() + "/input.bmsys";
  std::string from_memory, from_file;
  try {
    auto a = load_artifact_from_memory(data, size, "fuzz.bmsys", bmsys::fuzz::scratch_dir());
    walk(*a);
    try {
      instantiate(a);
    } catch (const Error& e) {
      bmsys::fuzz::refused(std::string("executor: ") + e.what());
    }
  } catch (const Error& e) {
    from_memory = e.what();
    bmsys::fuzz::refused(from_memory);
  }
  // Also from an address that is not 8-byte aligned (a slice of a larger buffer):
  // the loader must not read FlatBuffers' 8-byte fields misaligned from it.
  {
    std::vector<uint8_t> shifted(size + 1);
    if (size) std::memcpy(shifted.data() + 1, data, size);
    std::string from_shifted;
    try {
      walk(*load_artifact_from_memory(shifted.data() + 1, size, "fuzz.bmsys", "."));
    } catch (const Error& e) {
      from_shifted = e.what();
    }
    if (from_shifted != from_memory) {
      std::fprintf(stderr, "artifact fuzzer: aligned and misaligned loads disagree:\n  aligned: %s\n  misaligned: %s\n",
                   from_memory.empty() ? "accepted" : from_memory.c_str(),
                   from_shifted.empty() ? "accepted" : from_shifted.c_str());
      std::abort();
    }
  }
  bmsys::fuzz::write_file(path, data, size);
  try {
    auto a = load_artifact(path);
    walk(*a);
  } catch (const Error& e) {
    from_file = e.what();
  }
  if (from_memory.empty() != from_file.empty()) {
    std::fprintf(stderr, "artifact fuzzer: memory and file loads disagree:\n  memory: %s\n  file: %s\n",
                 from_memory.empty() ? "accepted" : from_memory.c_str(),
                 from_file.empty() ? "accepted" : from_file.c_str());
    std::abort();
  }
  return 0;
}
