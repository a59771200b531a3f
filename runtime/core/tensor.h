// Host tensors (inputs and outputs of bmsys-run) and shape helpers.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/core/dtype.h"

namespace bmsys::rt {

using Shape = std::vector<int64_t>;

// Product of the dims; throws bmsys::rt::Error on negative dims or overflow.
int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[2,16,256]"

// A contiguous row-major tensor in host memory.
struct HostTensor {
  DType dtype = DType::F32;
  Shape shape;
  std::vector<uint8_t> data;

  HostTensor() = default;
  HostTensor(DType t, Shape s);  // zero-filled

  int64_t numel() const { return shape_numel(shape); }
  size_t bytes() const { return data.size(); }
  template <typename T> T* as() { return reinterpret_cast<T*>(data.data()); }
  template <typename T> const T* as() const { return reinterpret_cast<const T*>(data.data()); }

  static HostTensor from_f32(Shape s, const std::vector<float>& v);
  static HostTensor from_i64(Shape s, const std::vector<int64_t>& v);
  std::vector<float> to_f32() const;  // converts any float dtype
};

}  // namespace bmsys::rt
