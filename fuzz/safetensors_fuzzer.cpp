// Fuzz target `safetensors`: the runtime's safetensors reader (runtime/io/safetensors.h).
//
// Each input is a candidate .safetensors file, opened with SafetensorsFile::open.
// An accepted file has every tensor read in its own dtype and converted to every
// dtype it converts to (as the executor does when loading weights), and is
// written back with write_safetensors and reopened: names, dtypes, shapes, bytes
// and metadata must round-trip. Anything else must be refused with a
// bmsys::rt::Error.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "fuzz/fuzz_util.h"
#include "runtime/core/error.h"
#include "runtime/io/convert.h"
#include "runtime/io/safetensors.h"

using namespace bmsys::rt;

namespace {

[[noreturn]] void mismatch(const std::string& what) {
  std::fprintf(stderr, "safetensors fuzzer: round trip differs: %s\n", what.c_str());
  std::abort();
}

constexpr DType kAllDTypes[] = {DType::F32, DType::F16, DType::BF16, DType::F64,
                                DType::I64, DType::I32, DType::I8,  DType::U8};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = bmsys::fuzz::scratch_dir() + "/input.safetensors";
  static const std::string copy = bmsys::fuzz::scratch_dir() + "/copy.safetensors";
  bmsys::fuzz::write_file(path, data, size);
  std::shared_ptr<SafetensorsFile> f;
  try {
    f = SafetensorsFile::open(path);
  } catch (const Error& e) {
    bmsys::fuzz::refused(e.what());
    return 0;
  }
  std::map<std::string, HostTensor> tensors;
  for (const std::string& name : f->names()) {
    const SafetensorsInfo& info = f->info(name);
    if (info.end - info.begin != static_cast<uint64_t>(info.numel()) * dtype_size(info.dtype))
      mismatch("tensor '" + name + "' byte range and shape disagree after validation");
    (void)f->data(name);
    for (DType to : kAllDTypes) {
      if (!convertible(to, info.dtype)) continue;
      try {
        HostTensor t = f->read(name, to);
        if (t.numel() != info.numel()) mismatch("tensor '" + name + "' element count");
      } catch (const Error&) {
        // Integer range errors (e.g. i64 -> u8) are refusals, not bugs.
      }
    }
    tensors.emplace(name, f->read(name));
  }
  try {
    write_safetensors(copy, tensors, f->metadata());
  } catch (const Error& e) {
    // '__metadata__' cannot be a tensor name; open() treats it as metadata, so
    // any other refusal here is a round-trip bug.
    mismatch(std::string("write_safetensors refused what open() accepted: ") + e.what());
  }
  std::shared_ptr<SafetensorsFile> g;
  try {
    g = SafetensorsFile::open(copy);
  } catch (const Error& e) {
    mismatch(std::string("reopening the written copy failed: ") + e.what());
  }
  if (g->names() != f->names()) mismatch("tensor names");
  if (g->metadata() != f->metadata()) mismatch("metadata");
  for (const std::string& name : f->names()) {
    const SafetensorsInfo &a = f->info(name), &b = g->info(name);
    if (a.dtype != b.dtype || a.shape != b.shape) mismatch("dtype or shape of '" + name + "'");
    size_t n = a.end - a.begin;
    if (n != b.end - b.begin || (n && std::memcmp(f->data(name), g->data(name), n) != 0))
      mismatch("bytes of '" + name + "'");
  }
  return 0;
}
