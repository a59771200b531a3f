#include "runtime/io/safetensors.h"

#include <cstring>

#include "runtime/io/convert.h"
#include "test_util.h"

using namespace bmsys::rt;
using namespace bmsys::rt::test;

namespace {

// A safetensors file from a raw JSON header and data section.
std::string raw_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

}  // namespace

TEST(Safetensors, RoundTrip) {
  TempDir dir;
  std::map<std::string, HostTensor> ts;
  ts["a"] = HostTensor::from_f32({2, 3}, {1, 2, 3, 4, 5, 6});
  ts["ids"] = HostTensor::from_i64({4}, {7, -1, 0, 1ll << 40});
  ts["scalar"] = HostTensor::from_f32({}, {3.5f});
  ts["empty"] = HostTensor(DType::F32, {0, 5});
  std::string path = dir.file("t.safetensors");
  write_safetensors(path, ts, {{"format", "pt"}});
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->names(), (std::vector<std::string>{"a", "empty", "ids", "scalar"}));
  EXPECT_EQ(f->metadata().at("format"), "pt");
  for (auto& [name, t] : ts) {
    HostTensor r = f->read(name);
    EXPECT_EQ(r.dtype, t.dtype) << name;
    EXPECT_EQ(r.shape, t.shape) << name;
    EXPECT_EQ(r.data, t.data) << name;
  }
  // The header is padded so that data starts 8-byte aligned; no .tmp left behind.
  std::string bytes = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_TRUE(read_bytes(path + ".tmp").empty());
}

TEST(Safetensors, ConvertsHalfTypes) {
  TempDir dir;
  std::vector<float> vals = {0.f, 1.f, -2.5f, 65504.f, 1e-7f, 3.14159f};
  HostTensor h(DType::F16, {6}), b(DType::BF16, {6}), d(DType::F64, {6});
  for (size_t i = 0; i < vals.size(); ++i) {
    reinterpret_cast<uint16_t*>(h.data.data())[i] = f32_to_f16(vals[i]);
    reinterpret_cast<uint16_t*>(b.data.data())[i] = f32_to_bf16(vals[i]);
    reinterpret_cast<double*>(d.data.data())[i] = vals[i];
  }
  std::string path = dir.file("h.safetensors");
  write_safetensors(path, {{"h", h}, {"b", b}, {"d", d}});
  auto f = SafetensorsFile::open(path);
  auto hf = f->read("h", DType::F32).to_f32();
  auto bf = f->read("b", DType::F32).to_f32();
  auto df = f->read("d", DType::F32).to_f32();
  for (size_t i = 0; i < vals.size(); ++i) {
    EXPECT_NEAR(hf[i], vals[i], std::abs(vals[i]) * 1e-3 + 1e-7) << i;
    EXPECT_NEAR(bf[i], vals[i], std::abs(vals[i]) * 8e-3) << i;
    EXPECT_EQ(df[i], vals[i]) << i;
  }
  EXPECT_EQ(f16_to_f32(f32_to_f16(1.0f / 3.0f)), f16_to_f32(0x3555));
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  expect_error([&] { f->read("h", DType::I64); }, {"h.safetensors", "'h'", "cannot convert"});
}

struct BadCase {
  const char* name;
  std::string bytes;
  std::vector<std::string> fragments;
};

TEST(Safetensors, RejectsMalformedFiles) {
  TempDir dir;
  const std::string f32_4 = R"("t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]})";
  std::string data16(16, '\0');
  std::vector<BadCase> cases = {
      {"truncated", std::string("\x10\0\0", 3), {"truncated"}},
      {"beyond", raw_file("{" + f32_4 + "}", data16).substr(0, 20), {"beyond the file"}},
      {"huge_header", std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}", {"exceeds the limit"}},
      {"bad_json", raw_file("{\"t\": [1,", data16), {"not valid JSON"}},
      {"not_object", raw_file("[1,2]", ""), {"not a JSON object"}},
      {"unknown_dtype", raw_file(R"({"t":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", "xx"),
       {"'t'", "unknown dtype 'F8_E4M3'"}},
      {"out_of_bounds", raw_file(R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,32]}})", data16),
       {"'t'", "out of bounds"}},
      {"reversed", raw_file(R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", data16),
       {"'t'", "reversed"}},
      {"overlap", raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", data16),
       {"'a'", "'b'", "overlap"}},
      {"shape_mismatch", raw_file(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", data16),
       {"'t'", "needs 12 bytes", "span 16"}},
      {"claim_2_60", raw_file(R"({"t":{"dtype":"U8","shape":[1152921504606846976],"data_offsets":[0,1152921504606846976]}})", data16),
       {"'t'", "out of bounds"}},
      {"shape_overflow", raw_file(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})", data16),
       {"'t'", "overflows"}},
      {"negative_dim", raw_file(R"({"t":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", data16),
       {"'t'", "negative"}},
      {"missing_offsets", raw_file(R"({"t":{"dtype":"F32","shape":[4]}})", data16), {"'t'", "data_offsets"}},
      {"bad_metadata", raw_file(R"({"__metadata__":{"k":1}})", ""), {"__metadata__"}},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.name);
    std::string path = dir.file(std::string(c.name) + ".safetensors");
    write_bytes(path, c.bytes);
    std::vector<std::string> frags = c.fragments;
    frags.push_back(path);
    try {
      SafetensorsFile::open(path);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      for (const auto& fr : frags) EXPECT_NE(std::string(e.what()).find(fr), std::string::npos) << e.what() << " / " << fr;
    }
  }
  expect_error([&] { SafetensorsFile::open(dir.file("missing.safetensors")); }, {"missing.safetensors", "cannot open"});
}

TEST(Safetensors, MissingTensorNamed) {
  TempDir dir;
  std::string path = dir.file("m.safetensors");
  write_safetensors(path, {{"x", HostTensor::from_f32({1}, {1})}});
  auto f = SafetensorsFile::open(path);
  expect_error([&] { f->info("y"); }, {"m.safetensors", "'y'"});
}
