//===- Safetensors.cpp - safetensors files on the compiler side -----------===//
#include "frontends/hf/Safetensors.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstring>

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
    TensorInfo info{dtype->str(), {}, 0, 0};
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
    info.begin = 8 + headerBytes + *begin;
    info.end = 8 + headerBytes + *end;
    tensors[key] = std::move(info);
  }
  return tensors;
}
Expected<std::vector<float>> readTensorAsF32(StringRef path, StringRef key,
                                            std::vector<int64_t> *shape) {
  auto header = readSafetensorsHeader(path);
  if (!header)
    return header.takeError();
  auto it = header->find(key);
  if (it == header->end())
    return fail(path, "no tensor '" + key + "'");
  const TensorInfo &info = it->second;
  auto file = MemoryBuffer::getFileSlice(path, info.end - info.begin, info.begin);
  if (!file)
    return fail(path, "cannot read tensor '" + key + "': " + file.getError().message());
  const char *data = (*file)->getBufferStart();
  size_t count = 1;
  for (int64_t d : info.shape)
    count *= d;
  std::vector<float> out(count);
  auto half = [&](size_t i) {
    uint16_t h;
    std::memcpy(&h, data + 2 * i, 2);
    return h;
  };
  if (info.dtype == "F32") {
    std::memcpy(out.data(), data, count * 4);
  } else if (info.dtype == "BF16") {
    for (size_t i = 0; i < count; ++i) {
      uint32_t bits = uint32_t(half(i)) << 16;
      std::memcpy(&out[i], &bits, 4);
    }
  } else if (info.dtype == "F16") {
    for (size_t i = 0; i < count; ++i) {
      uint16_t h = half(i);
      uint32_t sign = uint32_t(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
      float v;
      if (exp == 0)
        v = std::ldexp(float(mant), -24);
      else if (exp == 31)
        v = mant ? NAN : INFINITY;
      else
        v = std::ldexp(float(mant | 0x400), int(exp) - 25);
      std::memcpy(&out[i], &v, 4);
      if (sign)
        out[i] = -out[i];
    }
  } else {
    return fail(path, "tensor '" + key + "' has dtype " + info.dtype +
                          "; expected F32, F16 or BF16");
  }
  if (shape)
    *shape = info.shape;
  return out;
}

namespace {
/// The 8-byte length and the JSON header (padded to 8 bytes) of tensors laid out in
/// the given order: (name, dtype, shape, bytes).
struct Entry {
  StringRef name, dtype;
  ArrayRef<int64_t> shape;
  uint64_t bytes;
};
std::string headerBytes(ArrayRef<Entry> entries) {
  json::Object header;
  uint64_t offset = 0;
  for (const Entry &e : entries) {
    json::Array shape;
    for (int64_t d : e.shape)
      shape.push_back(d);
    header[e.name] = json::Object{{"dtype", e.dtype},
                                  {"shape", std::move(shape)},
                                  {"data_offsets", json::Array{offset, offset + e.bytes}}};
    offset += e.bytes;
  }
  std::string text;
  raw_string_ostream(text) << json::Value(std::move(header));
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[i] = char((uint64_t(text.size()) >> (8 * i)) & 0xff);
  return out + text;
}
} // namespace

Error writeSafetensors(StringRef path,
                       const std::vector<std::pair<std::string, TensorData>> &tensors) {
  std::vector<Entry> entries;
  for (const auto &[name, t] : tensors)
    entries.push_back({name, t.dtype, t.shape, t.bytes.size()});
  std::string tmp = (path + ".tmp").str();
  std::error_code ec;
  {
    raw_fd_ostream os(tmp, ec, sys::fs::OF_None);
    if (ec)
      return fail(tmp, "cannot write: " + ec.message());
    os << headerBytes(entries);
    for (const auto &[name, t] : tensors)
      os.write(t.bytes.data(), t.bytes.size());
    os.close();
    if (os.has_error())
      return fail(tmp, "write failed: " + os.error().message());
  }
  if ((ec = sys::fs::rename(tmp, path)))
    return fail(path, "cannot rename into place: " + ec.message());
  return Error::success();
}

Error writeSafetensorsHeaderOnly(StringRef path,
                                 const std::vector<std::pair<std::string, TensorDecl>> &tensors) {
  std::vector<Entry> entries;
  uint64_t data = 0;
  for (const auto &[name, t] : tensors) {
    uint64_t bytes = dtypeBytes(t.dtype);
    if (!bytes)
      return fail(path, "tensor '" + name + "': unknown dtype '" + t.dtype + "'");
    for (int64_t d : t.shape)
      bytes *= static_cast<uint64_t>(d);
    entries.push_back({name, t.dtype, t.shape, bytes});
    data += bytes;
  }
  std::string header = headerBytes(entries);
  std::string tmp = (path + ".tmp").str();
  int fd = -1;
  std::error_code ec = sys::fs::openFileForWrite(tmp, fd, sys::fs::CD_CreateAlways);
  if (ec)
    return fail(tmp, "cannot write: " + ec.message());
  {
    raw_fd_ostream os(fd, /*shouldClose=*/false);
    os << header;
    os.flush();
    if (os.has_error()) {
      ec = os.error();
      os.clear_error();
    }
  }
  // Growing the file past its end leaves the data region a hole: no disk space, zeros.
  if (!ec)
    ec = sys::fs::resize_file_sparse(fd, header.size() + data);
  sys::Process::SafelyCloseFileDescriptor(fd);
  if (ec)
    return fail(tmp, "cannot write " + Twine(header.size() + data) + " bytes: " + ec.message());
  if ((ec = sys::fs::rename(tmp, path)))
    return fail(path, "cannot rename into place: " + ec.message());
  return Error::success();
}
} // namespace bmsys::hf
