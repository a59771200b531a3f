// Builds .bmsys artifacts in tests with the FlatBuffers builder.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/core/dtype.h"
#include "runtime/core/kernels.h"
#include "runtime/schemas/artifact_generated.h"

namespace bmsys::rt::test {

namespace fba = bmsys::artifact;

struct TDim {
  fba::DimKind kind;
  int64_t value;
};
inline TDim Bd() { return {fba::DimKind_Batch, 0}; }
inline TDim Sd() { return {fba::DimKind_Seq, 0}; }
inline TDim C(int64_t v) { return {fba::DimKind_Static, v}; }

struct TAttr {
  std::string name;
  fba::AttrKind kind;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::string str;
};
inline TAttr AInt(const std::string& n, int64_t v) { return {n, fba::AttrKind_Int, {v}, {}, ""}; }
inline TAttr AFloat(const std::string& n, double v) { return {n, fba::AttrKind_Float, {}, {v}, ""}; }
inline TAttr AStr(const std::string& n, const std::string& v) { return {n, fba::AttrKind_String, {}, {}, v}; }

class ArtifactBuilder {
 public:
  struct Buf {
    std::string name;
    fba::DType dtype;
    std::vector<TDim> dims;
    fba::BufferKind kind;
    uint64_t offset = 0, bytes = 0;
    std::string file, key;
  };
  struct Inst {
    std::string kernel;
    std::vector<uint32_t> inputs, outputs;
    std::vector<TAttr> attrs;
    std::string location;
  };
  struct Fn {
    std::string name;
    std::vector<uint32_t> inputs, outputs;
    std::vector<std::string> output_names;
    std::vector<Inst> insts;
    int32_t pipeline_stage = -1;  // bmsys-pipeline-schedule's stage function
  };

  uint32_t format_version = 1;
  int64_t max_batch = 2, max_seq = 8;
  uint64_t activation_pool_bytes = 0, state_pool_bytes = 0;
  std::string model_config = "{}";
  std::vector<Buf> buffers;
  std::vector<Fn> functions;
  // Pipeline parallelism: stages, micro-batches and each stage's pools (empty: none).
  uint32_t pipeline_stages = 0, pipeline_micro_batches = 0;
  std::vector<uint64_t> stage_activation_pool_bytes, stage_state_pool_bytes;

  ArtifactBuilder(int64_t mb, int64_t ms) : max_batch(mb), max_seq(ms) {}

  uint32_t input(const std::string& name, fba::DType dt, std::vector<TDim> dims) {
    buffers.push_back({name, dt, std::move(dims), fba::BufferKind_Input, 0, 0, "", ""});
    return static_cast<uint32_t>(buffers.size() - 1);
  }
  uint32_t weight(const std::string& name, std::vector<TDim> dims, const std::string& file,
                  const std::string& key, fba::DType dt = fba::DType_F32) {
    buffers.push_back({name, dt, std::move(dims), fba::BufferKind_Weight, 0, 0, file, key});
    return static_cast<uint32_t>(buffers.size() - 1);
  }
  // Activation / State buffers get the next free offset in their pool.
  uint32_t activation(const std::string& name, std::vector<TDim> dims, fba::DType dt = fba::DType_F32) {
    return pooled(name, std::move(dims), dt, fba::BufferKind_Activation, activation_pool_bytes);
  }
  uint32_t state(const std::string& name, std::vector<TDim> dims, fba::DType dt = fba::DType_F32) {
    return pooled(name, std::move(dims), dt, fba::BufferKind_State, state_pool_bytes);
  }
  uint32_t optimizer_state(const std::string& name, std::vector<TDim> dims, fba::DType dt = fba::DType_F32) {
    return pooled(name, std::move(dims), dt, fba::BufferKind_OptimizerState, state_pool_bytes);
  }
  Fn& function(const std::string& name) {
    functions.push_back({name, {}, {}, {}, {}, -1});
    return functions.back();
  }

  std::vector<uint8_t> finish() const {
    flatbuffers::FlatBufferBuilder b;
    std::vector<flatbuffers::Offset<fba::Buffer>> bufs;
    for (const Buf& x : buffers) {
      std::vector<fba::Dim> dims;
      for (const TDim& d : x.dims) dims.emplace_back(d.kind, d.value);
      bufs.push_back(fba::CreateBufferDirect(b, x.name.c_str(), x.dtype, &dims, x.kind, x.offset, x.bytes,
                                             x.file.empty() ? nullptr : x.file.c_str(),
                                             x.key.empty() ? nullptr : x.key.c_str()));
    }
    std::vector<flatbuffers::Offset<fba::Function>> fns;
    for (const Fn& f : functions) {
      std::vector<flatbuffers::Offset<fba::Instruction>> insts;
      for (const Inst& in : f.insts) {
        std::vector<flatbuffers::Offset<fba::Attr>> attrs;
        for (const TAttr& a : in.attrs)
          attrs.push_back(fba::CreateAttrDirect(b, a.name.c_str(), a.kind, &a.ints, &a.floats,
                                                a.str.c_str()));
        insts.push_back(fba::CreateInstructionDirect(b, in.kernel.c_str(), &in.inputs, &in.outputs,
                                                     &attrs, in.location.c_str()));
      }
      std::vector<flatbuffers::Offset<flatbuffers::String>> names;
      for (const std::string& n : f.output_names) names.push_back(b.CreateString(n));
      fns.push_back(
          fba::CreateFunctionDirect(b, f.name.c_str(), &f.inputs, &f.outputs, &names, &insts, f.pipeline_stage));
    }
    auto root = fba::CreateArtifactDirect(b, format_version, "artifact_builder (test)", model_config.c_str(), max_batch,
                                          max_seq, activation_pool_bytes, state_pool_bytes, &bufs, &fns, 0, 0, 0,
                                          pipeline_stages, pipeline_micro_batches,
                                          stage_activation_pool_bytes.empty() ? nullptr : &stage_activation_pool_bytes,
                                          stage_state_pool_bytes.empty() ? nullptr : &stage_state_pool_bytes);
    fba::FinishArtifactBuffer(b, root);
    return std::vector<uint8_t>(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
  }

 private:
  uint32_t pooled(const std::string& name, std::vector<TDim> dims, fba::DType dt, fba::BufferKind kind,
                  uint64_t& pool) {
    uint64_t n = dt == fba::DType_I64 ? 8 : 4;
    for (const TDim& d : dims)
      n *= static_cast<uint64_t>(d.kind == fba::DimKind_Batch ? max_batch
                                 : d.kind == fba::DimKind_Seq ? max_seq
                                                              : d.value);
    Buf x{name, dt, std::move(dims), kind, pool, n, "", ""};
    pool += (n + 63) / 64 * 64;
    buffers.push_back(std::move(x));
    return static_cast<uint32_t>(buffers.size() - 1);
  }
};

inline void add_inst(ArtifactBuilder::Fn& f, const std::string& kernel, std::vector<uint32_t> in,
                     std::vector<uint32_t> out, std::vector<TAttr> attrs = {},
                     const std::string& loc = "") {
  f.insts.push_back({kernel, std::move(in), std::move(out), std::move(attrs),
                     loc.empty() ? "test.mlir:" + std::to_string(f.insts.size() + 1) : loc});
}

}  // namespace bmsys::rt::test
