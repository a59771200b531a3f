#include "runtime/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "runtime/core/error.h"
#include "runtime/io/convert.h"

namespace bmsys::rt {

using json = nlohmann::json;

int64_t SafetensorsInfo::numel() const { return shape_numel(shape); }

namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

uint64_t parse_u64(const json& j, const std::string& file, const std::string& tensor,
                   const char* what) {
  if (!j.is_number_integer())
    fail("{}: tensor '{}': {} must be a non-negative integer", file, tensor, what);
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  int64_t v = j.get<int64_t>();
  if (v < 0) fail("{}: tensor '{}': {} is negative ({})", file, tensor, what, v);
  return static_cast<uint64_t>(v);
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  Fd fd;
  fd.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd.fd < 0) fail("{}: cannot open safetensors file: {}", path, std::strerror(errno));
  struct stat st;
  if (::fstat(fd.fd, &st) != 0) fail("{}: cannot stat: {}", path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail("{}: not a regular file", path);
  uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8)
    fail("{}: truncated safetensors file ({} bytes, the 8-byte header length is missing)", path,
         file_size);
  void* m = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd.fd, 0);
  if (m == MAP_FAILED) fail("{}: cannot mmap: {}", path, std::strerror(errno));
  f->map_ = m;
  f->map_size_ = file_size;
  const auto* bytes = static_cast<const uint8_t*>(m);

  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= static_cast<uint64_t>(bytes[i]) << (8 * i);
  if (header_len > kMaxSafetensorsHeaderBytes)
    fail("{}: header length {} exceeds the limit of {} bytes", path, header_len,
         kMaxSafetensorsHeaderBytes);
  if (header_len > file_size - 8)
    fail("{}: truncated safetensors file: header length {} goes beyond the file ({} bytes)", path,
         header_len, file_size);
  uint64_t data_size = file_size - 8 - header_len;
  f->data_section_ = bytes + 8 + header_len;

  json h;
  try {
    h = json::parse(bytes + 8, bytes + 8 + header_len);
  } catch (const json::exception& e) {
    fail("{}: safetensors header is not valid JSON: {}", path, e.what());
  }
  if (!h.is_object()) fail("{}: safetensors header is not a JSON object", path);

  std::vector<const SafetensorsInfo*> order;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const json& t = it.value();
    if (name == "__metadata__") {
      if (!t.is_object()) fail("{}: __metadata__ is not a JSON object", path);
      for (auto m2 = t.begin(); m2 != t.end(); ++m2) {
        if (!m2.value().is_string())
          fail("{}: __metadata__ value of '{}' is not a string", path, m2.key());
        f->metadata_[m2.key()] = m2.value().get<std::string>();
      }
      continue;
    }
    if (!t.is_object()) fail("{}: tensor '{}': entry is not a JSON object", path, name);
    if (!t.contains("dtype") || !t["dtype"].is_string())
      fail("{}: tensor '{}': missing or non-string 'dtype'", path, name);
    std::string ds = t["dtype"].get<std::string>();
    auto dt = dtype_from_safetensors_name(ds);
    if (!dt) fail("{}: tensor '{}': unknown dtype '{}'", path, name, ds);
    if (!t.contains("shape") || !t["shape"].is_array())
      fail("{}: tensor '{}': missing or non-array 'shape'", path, name);
    if (!t.contains("data_offsets") || !t["data_offsets"].is_array() ||
        t["data_offsets"].size() != 2)
      fail("{}: tensor '{}': 'data_offsets' must be an array of two integers", path, name);
    SafetensorsInfo info;
    info.name = name;
    info.dtype = *dt;
    int64_t numel = 1;
    for (const json& d : t["shape"]) {
      uint64_t v = parse_u64(d, path, name, "a shape dimension");
      if (v > static_cast<uint64_t>(INT64_MAX) ||
          !checked_mul(numel, static_cast<int64_t>(v), &numel))
        fail("{}: tensor '{}': element count of the shape overflows", path, name);
      info.shape.push_back(static_cast<int64_t>(v));
    }
    int64_t nbytes = 0;
    if (!checked_mul(numel, static_cast<int64_t>(dtype_size(info.dtype)), &nbytes))
      fail("{}: tensor '{}': byte size of the shape overflows", path, name);
    info.begin = parse_u64(t["data_offsets"][0], path, name, "data_offsets[0]");
    info.end = parse_u64(t["data_offsets"][1], path, name, "data_offsets[1]");
    if (info.begin > info.end)
      fail("{}: tensor '{}': data_offsets [{}, {}] are reversed", path, name, info.begin,
           info.end);
    if (info.end > data_size)
      fail("{}: tensor '{}': data_offsets [{}, {}] out of bounds (the data section has {} bytes)",
           path, name, info.begin, info.end, data_size);
    if (static_cast<uint64_t>(nbytes) != info.end - info.begin)
      fail("{}: tensor '{}': shape {} of {} needs {} bytes but data_offsets span {}", path, name,
           shape_str(info.shape), ds, nbytes, info.end - info.begin);
    f->tensors_[name] = std::move(info);
  }
  for (auto& kv : f->tensors_) order.push_back(&kv.second);
  std::sort(order.begin(), order.end(), [](const SafetensorsInfo* a, const SafetensorsInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  for (size_t i = 1; i < order.size(); ++i) {
    const SafetensorsInfo* a = order[i - 1];
    const SafetensorsInfo* b = order[i];
    if (b->begin < a->end)
      fail("{}: tensors '{}' [{}, {}] and '{}' [{}, {}] overlap", path, a->name, a->begin,
           a->end, b->name, b->begin, b->end);
  }
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

const SafetensorsInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("{}: no tensor named '{}'", path_, name);
  return it->second;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (auto& kv : tensors_) out.push_back(kv.first);
  return out;
}

const uint8_t* SafetensorsFile::data(const std::string& name) const {
  return data_section_ + info(name).begin;
}

HostTensor SafetensorsFile::read(const std::string& name, DType dtype) const {
  const SafetensorsInfo& i = info(name);
  if (!convertible(dtype, i.dtype))
    fail("{}: tensor '{}': cannot convert {} to {}", path_, name, dtype_name(i.dtype),
         dtype_name(dtype));
  HostTensor t(dtype, i.shape);
  try {
    convert(t.data.data(), dtype, data_section_ + i.begin, i.dtype, t.numel());
  } catch (const Error& e) {
    fail("{}: tensor '{}': {}", path_, name, e.what());
  }
  return t;
}

HostTensor SafetensorsFile::read(const std::string& name) const {
  return read(name, info(name).dtype);
}

void write_safetensors(const std::string& path, const std::map<std::string, HostTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t off = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail("{}: '__metadata__' is not a valid tensor name", path);
    if (static_cast<int64_t>(t.data.size()) != t.numel() * static_cast<int64_t>(dtype_size(t.dtype)))
      fail("{}: tensor '{}': {} bytes of data for shape {}", path, name, t.data.size(),
           shape_str(t.shape));
    h[name] = {{"dtype", dtype_safetensors_name(t.dtype)},
               {"shape", t.shape},
               {"data_offsets", {off, off + t.data.size()}}};
    off += t.data.size();
  }
  std::string header = h.dump();
  while ((header.size() + 8) % 8 != 0) header.push_back(' ');
  std::string tmp = path + ".tmp";
  FILE* fp = std::fopen(tmp.c_str(), "wb");
  if (!fp) fail("{}: cannot open for writing: {}", tmp, std::strerror(errno));
  int err = 0;  // the first failure's errno (EFBIG, ENOSPC, EIO, ...)
  auto check = [&](bool good) {
    if (!good && !err) err = errno ? errno : EIO;
  };
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>((header.size() >> (8 * i)) & 0xff);
  check(std::fwrite(len, 1, 8, fp) == 8);
  check(std::fwrite(header.data(), 1, header.size(), fp) == header.size());
  for (const auto& [name, t] : tensors)
    if (!t.data.empty() && !err) check(std::fwrite(t.data.data(), 1, t.data.size(), fp) == t.data.size());
  check(std::fflush(fp) == 0);
  check(std::fclose(fp) == 0);
  if (err) {
    std::remove(tmp.c_str());
    fail("{}: write failed: {}", tmp, std::strerror(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail("{}: cannot rename {} into place: {}", path, tmp, std::strerror(errno));
  }
}

}  // namespace bmsys::rt
