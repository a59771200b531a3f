// Token files for training (docs/training.md): flat little-endian uint16 or uint32
// token ids, no header. A batch is B consecutive windows of S tokens read in order
// from a position (in tokens), wrapping around at the end of the file token by token.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace bmsys::rt {

enum class TokenDtype : uint8_t { U16, U32 };
const char* token_dtype_name(TokenDtype t);  // "u16", "u32"
std::optional<TokenDtype> token_dtype_from_name(const std::string& name);
inline size_t token_dtype_size(TokenDtype t) { return t == TokenDtype::U16 ? 2 : 4; }

class TokenFile {
 public:
  // Maps `path` read-only. Throws bmsys::rt::Error naming the file when it cannot be
  // read, its size is not a multiple of the token size, or it is empty.
  static std::unique_ptr<TokenFile> open(const std::string& path, TokenDtype dtype);
  ~TokenFile();
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;

  const std::string& path() const { return path_; }
  TokenDtype dtype() const { return dtype_; }
  int64_t size() const { return size_; }  // tokens
  int64_t token(int64_t i) const;          // 0 <= i < size()

  // Writes B*S tokens starting at `position` (taken modulo size()) into `out`
  // (row-major [B,S]); returns the position after them, modulo size().
  int64_t read_batch(int64_t position, int64_t batch, int64_t seq, int64_t* out) const;

 private:
  TokenFile() = default;
  std::string path_;
  TokenDtype dtype_ = TokenDtype::U16;
  int64_t size_ = 0;
  void* map_ = nullptr;
  size_t map_size_ = 0;
};

// Writes `tokens` as a flat little-endian token file (through `path.tmp` + rename).
// Throws when a token does not fit the dtype.
void write_token_file(const std::string& path, const std::vector<int64_t>& tokens, TokenDtype dtype);

}  // namespace bmsys::rt
