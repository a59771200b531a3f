#include "runtime/io/convert.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "runtime/core/error.h"

namespace bmsys::rt {

float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      mant &= 0x3ff;
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t exp = (x >> 23) & 0xff;
  uint32_t mant = x & 0x7fffff;
  if (exp == 0xff) return static_cast<uint16_t>(sign | 0x7c00 | (mant ? 0x200 : 0));  // inf/nan
  int32_t e = static_cast<int32_t>(exp) - 127 + 15;
  if (e >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00);  // overflow -> inf
  if (e <= 0) {                                               // subnormal or zero
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000;
    uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) ++half;  // may carry into exp: ok
  return static_cast<uint16_t>(half);
}

float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((x >> 16) | 0x40);  // nan
  uint32_t lsb = (x >> 16) & 1;
  x += 0x7fff + lsb;
  return static_cast<uint16_t>(x >> 16);
}

namespace {

template <typename T>
T load(const uint8_t* p, int64_t i) {
  T v;
  std::memcpy(&v, p + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
  return v;
}
template <typename T>
void store(uint8_t* p, int64_t i, T v) {
  std::memcpy(p + i * static_cast<int64_t>(sizeof(T)), &v, sizeof(T));
}

double load_float(const uint8_t* p, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return load<float>(p, i);
    case DType::F64: return load<double>(p, i);
    case DType::F16: return f16_to_f32(load<uint16_t>(p, i));
    case DType::BF16: return bf16_to_f32(load<uint16_t>(p, i));
    default: return 0;
  }
}

int64_t load_int(const uint8_t* p, DType t, int64_t i) {
  switch (t) {
    case DType::I64: return load<int64_t>(p, i);
    case DType::I32: return load<int32_t>(p, i);
    case DType::I8: return load<int8_t>(p, i);
    case DType::U8: return load<uint8_t>(p, i);
    default: return 0;
  }
}

template <typename T>
void store_int_checked(uint8_t* p, int64_t i, int64_t v, DType t) {
  if (v < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
      v > static_cast<int64_t>(std::numeric_limits<T>::max()))
    fail("value {} at element {} does not fit {}", v, i, dtype_name(t));
  store<T>(p, i, static_cast<T>(v));
}

}  // namespace

bool convertible(DType dst, DType src) {
  return dst == src || (dtype_is_float(dst) && dtype_is_float(src)) ||
         (!dtype_is_float(dst) && !dtype_is_float(src));
}

void convert(void* dst_v, DType dst, const void* src_v, DType src, int64_t count) {
  auto* d = static_cast<uint8_t*>(dst_v);
  auto* s = static_cast<const uint8_t*>(src_v);
  if (count < 0) fail("convert: negative element count");
  if (count == 0) return;
  if (dst == src) {
    std::memcpy(d, s, static_cast<size_t>(count) * dtype_size(dst));
    return;
  }
  if (!convertible(dst, src))
    fail("cannot convert {} to {}", dtype_name(src), dtype_name(dst));
  if (dtype_is_float(dst)) {
    for (int64_t i = 0; i < count; ++i) {
      double v = load_float(s, src, i);
      switch (dst) {
        case DType::F32: store<float>(d, i, static_cast<float>(v)); break;
        case DType::F64: store<double>(d, i, v); break;
        case DType::F16: store<uint16_t>(d, i, f32_to_f16(static_cast<float>(v))); break;
        case DType::BF16: store<uint16_t>(d, i, f32_to_bf16(static_cast<float>(v))); break;
        default: break;
      }
    }
  } else {
    for (int64_t i = 0; i < count; ++i) {
      int64_t v = load_int(s, src, i);
      switch (dst) {
        case DType::I64: store<int64_t>(d, i, v); break;
        case DType::I32: store_int_checked<int32_t>(d, i, v, dst); break;
        case DType::I8: store_int_checked<int8_t>(d, i, v, dst); break;
        case DType::U8: store_int_checked<uint8_t>(d, i, v, dst); break;
        default: break;
      }
    }
  }
}

}  // namespace bmsys::rt
