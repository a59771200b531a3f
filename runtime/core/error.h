// Errors in the runtime are exceptions carrying a message that names the file,
// tensor, kernel or instruction at fault. bmsys-run prints them as
// "bmsys-run: error: <message>".
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace bmsys::rt {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

template <typename... Args>
[[noreturn]] inline void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

// Multiplies non-negative sizes, throwing on overflow of int64.
inline bool checked_mul(int64_t a, int64_t b, int64_t* out) {
  return !__builtin_mul_overflow(a, b, out) && *out >= 0;
}

}  // namespace bmsys::rt
