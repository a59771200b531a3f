#include "runtime/train/token_data.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "runtime/core/error.h"

namespace bmsys::rt {

const char* token_dtype_name(TokenDtype t) { return t == TokenDtype::U16 ? "u16" : "u32"; }

std::optional<TokenDtype> token_dtype_from_name(const std::string& name) {
  if (name == "u16") return TokenDtype::U16;
  if (name == "u32") return TokenDtype::U32;
  return std::nullopt;
}

std::unique_ptr<TokenFile> TokenFile::open(const std::string& path, TokenDtype dtype) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open token file: {}", path, std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("{}: not a regular file", path);
  }
  std::unique_ptr<TokenFile> f(new TokenFile());
  f->path_ = path;
  f->dtype_ = dtype;
  size_t bytes = static_cast<size_t>(st.st_size);
  size_t es = token_dtype_size(dtype);
  if (bytes % es != 0) {
    ::close(fd);
    fail("{}: {} bytes is not a whole number of {} tokens ({} bytes each); wrong --token-dtype?", path,
         bytes, token_dtype_name(dtype), es);
  }
  if (bytes == 0) {
    ::close(fd);
    fail("{}: the token file is empty", path);
  }
  void* m = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) fail("{}: cannot map the token file: {}", path, std::strerror(errno));
  f->map_ = m;
  f->map_size_ = bytes;
  f->size_ = static_cast<int64_t>(bytes / es);
  return f;
}

TokenFile::~TokenFile() {
  if (map_) ::munmap(map_, map_size_);
}

int64_t TokenFile::token(int64_t i) const {
  const uint8_t* p = static_cast<const uint8_t*>(map_) + static_cast<size_t>(i) * token_dtype_size(dtype_);
  if (dtype_ == TokenDtype::U16) return static_cast<int64_t>(p[0] | (uint32_t(p[1]) << 8));
  return static_cast<int64_t>(uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) |
                              (uint32_t(p[3]) << 24));
}

int64_t TokenFile::read_batch(int64_t position, int64_t batch, int64_t seq, int64_t* out) const {
  if (seq > size_)
    fail("{}: the file has {} tokens, fewer than one window of --seq {}", path_, size_, seq);
  int64_t pos = ((position % size_) + size_) % size_;
  for (int64_t i = 0; i < batch * seq; ++i) {
    out[i] = token(pos);
    if (++pos == size_) pos = 0;
  }
  return pos;
}

void write_token_file(const std::string& path, const std::vector<int64_t>& tokens, TokenDtype dtype) {
  const size_t es = token_dtype_size(dtype);
  const int64_t max = dtype == TokenDtype::U16 ? 0xffff : 0xffffffffll;
  std::vector<uint8_t> bytes(tokens.size() * es);
  for (size_t i = 0; i < tokens.size(); ++i) {
    int64_t t = tokens[i];
    if (t < 0 || t > max) fail("{}: token {} at index {} does not fit {}", path, t, i, token_dtype_name(dtype));
    for (size_t b = 0; b < es; ++b) bytes[i * es + b] = static_cast<uint8_t>((t >> (8 * b)) & 0xff);
  }
  std::string tmp = path + ".tmp";
  FILE* fp = std::fopen(tmp.c_str(), "wb");
  if (!fp) fail("{}: cannot open for writing: {}", tmp, std::strerror(errno));
  bool ok = bytes.empty() || std::fwrite(bytes.data(), 1, bytes.size(), fp) == bytes.size();
  ok &= std::fclose(fp) == 0;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail("{}: write failed: {}", path, std::strerror(errno));
  }
}

}  // namespace bmsys::rt
