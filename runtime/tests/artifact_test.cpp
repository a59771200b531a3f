// Artifact loading and validation: small artifacts built with the FlatBuffers
// builder, run end to end; corrupted ones give clear errors, never crashes.
#include "runtime/core/artifact.h"

#include <cmath>

#include "artifact_builder.h"
#include "runtime/backends/cpu/cpu_backend.h"
#include "runtime/core/executor.h"
#include "runtime/core/version.h"
#include "runtime/io/convert.h"
#include "runtime/io/safetensors.h"
#include "test_util.h"

using namespace bmsys::rt;
using namespace bmsys::rt::test;

namespace {

constexpr int64_t V = 11, H = 6, N = 5;

// embedding -> linear (+bias) -> output "y".
ArtifactBuilder small_model() {
  ArtifactBuilder a(2, 4);
  auto ids = a.input("input_ids", fba::DType_I64, {Bd(), Sd()});
  auto table = a.weight("table", {C(V), C(H)}, "w.safetensors", "emb");
  auto w = a.weight("w", {C(N), C(H)}, "w.safetensors", "proj.weight");
  auto b = a.weight("b", {C(N)}, "w.safetensors", "proj.bias");
  auto e = a.activation("e", {Bd(), Sd(), C(H)});
  auto y = a.activation("y", {Bd(), Sd(), C(N)});
  auto& f = a.function("forward");
  f.inputs = {ids};
  f.outputs = {y};
  f.output_names = {"y"};
  add_inst(f, "embedding", {ids, table}, {e});
  add_inst(f, "linear", {e, w, b}, {y});
  return a;
}

struct SmallWeights {
  std::vector<float> table = random_floats(V * H, 21), w = random_floats(N * H, 22), b = random_floats(N, 23);
  void write(const std::string& path) const {
    write_safetensors(path, {{"emb", HostTensor::from_f32({V, H}, table)},
                             {"proj.weight", HostTensor::from_f32({N, H}, w)},
                             {"proj.bias", HostTensor::from_f32({N}, b)}});
  }
};

std::string save(const TempDir& dir, const ArtifactBuilder& a, const std::string& name = "m.bmsys") {
  auto bytes = a.finish();
  std::string path = dir.file(name);
  write_bytes(path, std::string(bytes.begin(), bytes.end()));
  return path;
}

}  // namespace

TEST(Artifact, LoadsAndRunsSmallModel) {
  TempDir dir;
  SmallWeights sw;
  sw.write(dir.file("w.safetensors"));
  auto art = load_artifact(save(dir, small_model()));
  EXPECT_EQ(art->format_version, kArtifactFormatVersion);
  EXPECT_EQ(art->directory, dir.path());
  ASSERT_EQ(art->functions.size(), 1u);
  EXPECT_EQ(art->functions[0].instructions[1].kernel, KernelId::Linear);

  Executor ex(art, std::make_shared<CpuBackend>());
  std::vector<int64_t> ids = {0, 10, 3, 3, 7, 1};
  auto out = ex.run("forward", {{"input_ids", HostTensor::from_i64({2, 3}, ids)}});
  ASSERT_EQ(out.count("y"), 1u);
  const HostTensor& y = out["y"];
  EXPECT_EQ(y.shape, (Shape{2, 3, N}));
  std::vector<double> ref;
  for (int64_t id : ids)
    for (int64_t n = 0; n < N; ++n) {
      double acc = sw.b[n];
      for (int64_t h = 0; h < H; ++h) acc += double(sw.table[id * H + h]) * sw.w[n * H + h];
      ref.push_back(acc);
    }
  expect_near_rel(y.to_f32(), ref, 1e-5);

  // Run-time errors name the function, instruction, kernel and location.
  expect_error([&] { ex.run("forward", {{"input_ids", HostTensor::from_i64({1, 2}, {1, 11})}}); },
               {"m.bmsys: function 'forward': instruction 0 (kernel 'embedding', at \"test.mlir:1\")", "token id 11"});
  expect_error([&] { ex.run("forward", {{"input_ids", HostTensor::from_i64({3, 1}, {1, 2, 3})}}); },
               {"batch 3", "max_batch=2"});
  expect_error([&] { ex.run("forward", {{"input_ids", HostTensor::from_i64({1, 5}, {1, 2, 3, 4, 5})}}); },
               {"sequence length 5", "max_seq=4"});
  expect_error([&] { ex.run("forward", {}); }, {"input 'input_ids'", "missing"});
  expect_error([&] { ex.run("backward", {}); }, {"no function 'backward'", "'forward'"});
}

TEST(Artifact, WeightOverrideFileAndDirectory) {
  TempDir dir, wdir;
  SmallWeights sw;
  sw.write(wdir.file("w.safetensors"));
  auto art = load_artifact(save(dir, small_model()));
  // Missing next to the artifact: the error names the file.
  expect_error([&] { Executor ex(art, std::make_shared<CpuBackend>()); }, {dir.file("w.safetensors"), "cannot open"});
  ExecutorOptions dopt{wdir.path()};
  Executor e1(art, std::make_shared<CpuBackend>(), dopt);
  ExecutorOptions fopt{wdir.file("w.safetensors")};
  Executor e2(art, std::make_shared<CpuBackend>(), fopt);
  auto in = std::map<std::string, HostTensor>{{"input_ids", HostTensor::from_i64({1, 1}, {4})}};
  EXPECT_EQ(e1.run("forward", in)["y"].data, e2.run("forward", in)["y"].data);
}

TEST(Artifact, WeightErrorsNameFileAndKey) {
  TempDir dir;
  auto art = load_artifact(save(dir, small_model()));
  // Wrong shape.
  write_safetensors(dir.file("w.safetensors"), {{"emb", HostTensor::from_f32({H, V}, random_floats(V * H, 1))},
                                                {"proj.weight", HostTensor(DType::F32, {N, H})},
                                                {"proj.bias", HostTensor(DType::F32, {N})}});
  expect_error([&] { Executor ex(art, std::make_shared<CpuBackend>()); },
               {"w.safetensors", "'emb'", "shape [6,11]", "expects [11,6]"});
  // Missing key.
  write_safetensors(dir.file("w.safetensors"), {{"emb", HostTensor(DType::F32, {V, H})}});
  expect_error([&] { Executor ex(art, std::make_shared<CpuBackend>()); }, {"w.safetensors", "'proj.weight'", "not found"});
  // Integer weight for a float buffer.
  write_safetensors(dir.file("w.safetensors"), {{"emb", HostTensor(DType::I64, {V, H})},
                                                {"proj.weight", HostTensor(DType::F32, {N, H})},
                                                {"proj.bias", HostTensor(DType::F32, {N})}});
  expect_error([&] { Executor ex(art, std::make_shared<CpuBackend>()); }, {"w.safetensors", "'emb'", "cannot be converted"});
}

TEST(Artifact, ConvertsHalfPrecisionWeights) {
  TempDir dir;
  SmallWeights sw;
  HostTensor t16(DType::BF16, {V, H});
  HostTensor t32 = HostTensor::from_f32({V, H}, sw.table);
  convert(t16.data.data(), DType::BF16, t32.data.data(), DType::F32, t16.numel());
  write_safetensors(dir.file("w.safetensors"), {{"emb", t16},
                                                {"proj.weight", HostTensor::from_f32({N, H}, sw.w)},
                                                {"proj.bias", HostTensor::from_f32({N}, sw.b)}});
  Executor ex(load_artifact(save(dir, small_model())), std::make_shared<CpuBackend>());
  auto y = ex.run("forward", {{"input_ids", HostTensor::from_i64({1, 1}, {2})}})["y"].to_f32();
  for (int64_t n = 0; n < N; ++n) {
    double acc = sw.b[n];
    for (int64_t h = 0; h < H; ++h) acc += double(sw.table[2 * H + h]) * sw.w[n * H + h];
    EXPECT_NEAR(y[n], acc, 0.02);
  }
}

TEST(Artifact, WrongIdentifierAndVersion) {
  TempDir dir;
  auto bytes = small_model().finish();
  auto bad = bytes;
  bad[4] = 'X';
  write_bytes(dir.file("id.bmsys"), std::string(bad.begin(), bad.end()));
  expect_error([&] { load_artifact(dir.file("id.bmsys")); }, {"id.bmsys", "not a bmsys artifact"});
  write_bytes(dir.file("empty.bmsys"), "");
  expect_error([&] { load_artifact(dir.file("empty.bmsys")); }, {"empty.bmsys", "not a bmsys artifact"});
  expect_error([&] { load_artifact(dir.file("none.bmsys")); }, {"none.bmsys", "cannot open"});

  auto a = small_model();
  a.format_version = 2;
  std::string p = save(dir, a, "v2.bmsys");
  expect_error([&] { load_artifact(p); }, {"v2.bmsys", "format version 2", "reads version 1"});
}

TEST(Artifact, TruncatedAndFlippedBytesNeverCrash) {
  auto bytes = small_model().finish();
  // Truncations are refused (the last bytes can be padding; those may load).
  for (size_t n = 0; n + 8 < bytes.size(); n += 7) {
    SCOPED_TRACE(::testing::Message() << "truncated to " << n << " of " << bytes.size());
    expect_error([&] { load_artifact_from_memory(bytes.data(), n, "t.bmsys", "."); }, {"t.bmsys"});
  }
  // Every single-byte corruption either loads (then runs or fails cleanly) or is
  // refused with an Error; nothing else may happen.
  TempDir dir;
  SmallWeights sw;
  sw.write(dir.file("w.safetensors"));
  auto cpu = std::make_shared<CpuBackend>();
  int refused = 0, ran = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (uint8_t flip : {0xffu, 0x80u, 0x01u}) {
      auto b = bytes;
      b[i] ^= flip;
      try {
        auto art = load_artifact_from_memory(b.data(), b.size(), "f.bmsys", dir.path());
        if (art->activation_pool_bytes > (1 << 20) || art->state_pool_bytes > (1 << 20)) continue;
        Executor ex(art, cpu);
        ex.run("forward", {{"input_ids", HostTensor::from_i64({1, 2}, {3, 4})}});
        ++ran;
      } catch (const Error& e) {
        ++refused;  // names the artifact, or the weight file it points to
        std::string m = e.what();
        EXPECT_TRUE(m.find("f.bmsys") != std::string::npos || m.find(dir.path()) != std::string::npos) << m;
      }
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(ran, 0);
}

TEST(Artifact, SemanticValidation) {
  struct Case {
    const char* name;
    std::function<void(ArtifactBuilder&)> edit;
    std::vector<std::string> fragments;
  };
  std::vector<Case> cases = {
      {"input_out_of_range", [](ArtifactBuilder& a) { a.functions[0].insts[1].inputs[1] = 99; },
       {"function 'forward': instruction 1 (kernel 'linear', at \"test.mlir:2\"): input 1 out of range"}},
      {"output_out_of_range", [](ArtifactBuilder& a) { a.functions[0].insts[0].outputs[0] = 1000; },
       {"instruction 0 (kernel 'embedding'", "output 0 out of range"}},
      {"unknown_kernel", [](ArtifactBuilder& a) { a.functions[0].insts[1].kernel = "matmul"; },
       {"instruction 1 (kernel 'matmul'", "unknown kernel"}},
      {"input_count", [](ArtifactBuilder& a) { a.functions[0].insts[0].inputs.push_back(0); },
       {"kernel 'embedding'", "takes 2 inputs, has 3"}},
      {"output_count", [](ArtifactBuilder& a) { a.functions[0].insts[0].outputs.clear(); },
       {"kernel 'embedding'", "takes 1 outputs, has 0"}},
      {"writes_weight", [](ArtifactBuilder& a) { a.functions[0].insts[1].outputs[0] = 1; },
       {"kernel 'linear'", "writes buffer 'table' of kind weight"}},
      {"missing_attr", [](ArtifactBuilder& a) { a.functions[0].insts[0].kernel = "rms_norm"; },
       {"kernel 'rms_norm'", "attribute 'eps' is missing"}},
      {"attr_type", [](ArtifactBuilder& a) { a.functions[0].insts[1].attrs.push_back(AStr("weight_transposed", "yes")); },
       {"kernel 'linear'", "'weight_transposed' must be an int"}},
      {"pool_overflow", [](ArtifactBuilder& a) { a.buffers[5].offset = a.activation_pool_bytes; },
       {"buffer 5 ('y')", "outside the activation pool"}},
      {"bytes_too_small", [](ArtifactBuilder& a) { a.buffers[4].bytes = 8; },
       {"buffer 4 ('e')", "bytes 8 is less than"}},
      {"negative_dim", [](ArtifactBuilder& a) { a.buffers[1].dims[0].value = -3; },
       {"buffer 1 ('table')", "negative dimension"}},
      {"huge_dim", [](ArtifactBuilder& a) { a.buffers[4].dims[2].value = int64_t{1} << 62; },
       {"buffer 4 ('e')", "too large"}},
      {"dynamic_weight", [](ArtifactBuilder& a) { a.buffers[1].dims[0] = Bd(); },
       {"buffer 1 ('table')", "static shape"}},
      {"function_input_kind", [](ArtifactBuilder& a) { a.functions[0].inputs[0] = 4; },
       {"function 'forward'", "not input"}},
      {"max_seq", [](ArtifactBuilder& a) { a.max_seq = 0; }, {"max_seq must be >= 1"}},
      {"output_names", [](ArtifactBuilder& a) { a.functions[0].output_names.push_back("z"); },
       {"2 output_names for 1 outputs"}},
      {"duplicate_buffer", [](ArtifactBuilder& a) { a.buffers[2].name = "table"; }, {"duplicate buffer name"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ArtifactBuilder a = small_model();
    c.edit(a);
    auto bytes = a.finish();
    std::vector<std::string> frags = c.fragments;
    frags.push_back("model.bmsys: ");
    try {
      load_artifact_from_memory(bytes.data(), bytes.size(), "model.bmsys", ".");
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      for (const auto& fr : frags) EXPECT_NE(std::string(e.what()).find(fr), std::string::npos) << e.what() << "\nmissing: " << fr;
    }
  }
}

TEST(Artifact, LaunchShapeChecksNameTheInstruction) {
  TempDir dir;
  SmallWeights sw;
  sw.write(dir.file("w.safetensors"));
  ArtifactBuilder a = small_model();
  a.buffers[5].dims[2].value = N - 1;  // y [B,S,4] but the linear makes [B,S,5]
  Executor ex(load_artifact(save(dir, a)), std::make_shared<CpuBackend>());
  expect_error([&] { ex.run("forward", {{"input_ids", HostTensor::from_i64({1, 1}, {1})}}); },
               {"instruction 1 (kernel 'linear', at \"test.mlir:2\")", "y (output 0) has shape [1,1,4], expected [1,1,5]"});
}
