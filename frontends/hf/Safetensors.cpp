//===- SafetensorsHeader.cpp ----------------------------------------------===//
#include "frontends/hf/SafetensorsHeader.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

using namespace llvm;

namespace bmsys::hf {
namespace {
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

int64_t dtypeBytes(StringRef dtype) {
  for (auto [name, bytes] : {std::pair<StringRef, int64_t>{"F64", 8}, {"I64", 8}, {"U64", 8},
                             {"F32", 4}, {"I32", 4}, {"U32", 4}, {"F16", 2}, {"BF16", 2},
                             {"I16", 2}, {"U16", 2}, {"I8", 1}, {"U8", 1}, {"BOOL", 1},
                             {"F8_E4M3", 1}, {"F8_E5M2", 1}})
    if (dtype == name)
      return bytes;
  return 0;
}

Error fail(StringRef path, const Twine &what) {
  return createStringError(inconvertibleErrorCode(), path + ": " + what);
}
} // namespace

Expected<StringMap<TensorInfo>> readSafetensorsHeader(StringRef path) {
  auto file = MemoryBuffer::getFile(path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!file)
    return fail(path, "cannot read: " + file.getError().message());
  StringRef data = (*file)->getBuffer();
  if (data.size() < 8)
    return fail(path, "too short for a safetensors header");
  uint64_t headerBytes = 0;
  for (int i = 7; i >= 0; --i)
    headerBytes = (headerBytes << 8) | static_cast<uint8_t>(data[i]);
  if (headerBytes > kMaxHeaderBytes || headerBytes > data.size() - 8)
    return fail(path, "header length " + Twine(headerBytes) + " exceeds the file (" +
                          Twine(data.size()) + " bytes)");
  uint64_t payload = data.size() - 8 - headerBytes;
  auto json = json::parse(data.substr(8, headerBytes));
  if (!json)
    return fail(path, "bad header JSON: " + toString(json.takeError()));
  auto *object = json->getAsObject();
  if (!object)
    return fail(path, "header is not a JSON object");

  StringMap<TensorInfo> tensors;
  for (auto &[key, value] : *object) {
    if (key == "__metadata__")
      continue;
    auto *entry = value.getAsObject();
    std::optional<StringRef> dtype = entry ? entry->getString("dtype") : std::nullopt;
    auto *shape = entry ? entry->getArray("shape") : nullptr;
    auto *offsets = entry ? entry->getArray("data_offsets") : nullptr;
    if (!dtype || !shape || !offsets || offsets->size() != 2)
      return fail(path, "tensor '" + key + "': needs dtype, shape and data_offsets");
    int64_t elementBytes = dtypeBytes(*dtype);
    if (!elementBytes)
      return fail(path, "tensor '" + key + "': unknown dtype '" + *dtype + "'");
    TensorInfo info{dtype->str(), {}};
    uint64_t count = 1;
    for (auto &dim : *shape) {
      auto d = dim.getAsInteger();
      if (!d || *d < 0 || (*d > 0 && count > (uint64_t(1) << 50) / uint64_t(*d)))
        return fail(path, "tensor '" + key + "': bad or too large shape");
      count *= *d;
      info.shape.push_back(*d);
    }
    auto begin = (*offsets)[0].getAsInteger(), end = (*offsets)[1].getAsInteger();
    if (!begin || !end || *begin < 0 || *end < *begin || uint64_t(*end) > payload)
      return fail(path, "tensor '" + key + "': data_offsets outside the file");
    if (uint64_t(*end - *begin) != count * elementBytes)
      return fail(path, "tensor '" + key + "': data_offsets span " + Twine(*end - *begin) +
                            " bytes, its shape and dtype need " + Twine(count * elementBytes));
    tensors[key] = std::move(info);
  }
  return tensors;
}
} // namespace bmsys::hf
