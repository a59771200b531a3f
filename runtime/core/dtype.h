// Element types known to the runtime. The numbering of the first seven matches
// bmsys.artifact.DType in runtime/schemas/artifact.fbs; F64 is host-only (readable
// from safetensors, converted on load).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace bmsys::rt {

enum class DType : uint8_t { F32 = 0, F16 = 1, BF16 = 2, I64 = 3, I32 = 4, I8 = 5, U8 = 6, F64 = 7 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::I64: return 8;
    case DType::I32: return 4;
    case DType::I8: return 1;
    case DType::U8: return 1;
    case DType::F64: return 8;
  }
  return 0;
}

inline bool dtype_is_float(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64;
}

// Lower-case names used in messages ("f32", "bf16", ...).
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::I64: return "i64";
    case DType::I32: return "i32";
    case DType::I8: return "i8";
    case DType::U8: return "u8";
    case DType::F64: return "f64";
  }
  return "?";
}

// Safetensors spelling ("F32", "BF16", ...).
inline const char* dtype_safetensors_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::F64: return "F64";
  }
  return "?";
}

inline std::optional<DType> dtype_from_safetensors_name(const std::string& s) {
  if (s == "F32") return DType::F32;
  if (s == "F16") return DType::F16;
  if (s == "BF16") return DType::BF16;
  if (s == "I64") return DType::I64;
  if (s == "I32") return DType::I32;
  if (s == "I8") return DType::I8;
  if (s == "U8") return DType::U8;
  if (s == "F64") return DType::F64;
  return std::nullopt;
}

}  // namespace bmsys::rt
