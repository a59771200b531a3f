// Element type conversions (host side). Float types convert among themselves
// (f64/f32/f16/bf16, round to nearest even), integer types among themselves with a
// range check; float <-> integer is refused. Source data may be unaligned.
#pragma once

#include <cstdint>

#include "runtime/core/dtype.h"

namespace bmsys::rt {

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);

// Converts `count` elements. Throws bmsys::rt::Error for unsupported pairs or an
// integer that does not fit the destination type.
void convert(void* dst, DType dst_type, const void* src, DType src_type, int64_t count);

bool convertible(DType dst_type, DType src_type);

}  // namespace bmsys::rt
