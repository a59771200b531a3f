#include "runtime/core/tensor.h"

#include "runtime/core/error.h"
#include "runtime/io/convert.h"

namespace bmsys::rt {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) fail("negative dimension in shape {}", shape_str(shape));
    if (!checked_mul(n, d, &n)) fail("element count of shape {} overflows", shape_str(shape));
  }
  return n;
}

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

HostTensor::HostTensor(DType t, Shape s) : dtype(t), shape(std::move(s)) {
  data.assign(static_cast<size_t>(shape_numel(shape)) * dtype_size(t), 0);
}

HostTensor HostTensor::from_f32(Shape s, const std::vector<float>& v) {
  HostTensor t(DType::F32, std::move(s));
  if (static_cast<int64_t>(v.size()) != t.numel())
    fail("from_f32: {} values for shape {}", v.size(), shape_str(t.shape));
  std::memcpy(t.data.data(), v.data(), t.data.size());
  return t;
}

HostTensor HostTensor::from_i64(Shape s, const std::vector<int64_t>& v) {
  HostTensor t(DType::I64, std::move(s));
  if (static_cast<int64_t>(v.size()) != t.numel())
    fail("from_i64: {} values for shape {}", v.size(), shape_str(t.shape));
  std::memcpy(t.data.data(), v.data(), t.data.size());
  return t;
}

std::vector<float> HostTensor::to_f32() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  convert(out.data(), DType::F32, data.data(), dtype, numel());
  return out;
}

}  // namespace bmsys::rt
