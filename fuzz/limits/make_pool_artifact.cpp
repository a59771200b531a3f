// Writes a minimal artifact with the given state and activation pool sizes: one
// Input buffer "input_ids" [B,S] i64 and a function "forward" that returns it
// (no kernels, no weights). The loader accepts any pool size; see README.md.
//
//   c++ -std=c++17 -I build make_pool_artifact.cpp -o make_pool_artifact   # build/ has the flatc header
//   ./make_pool_artifact OUT.bmsys STATE_POOL_BYTES ACTIVATION_POOL_BYTES
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "runtime/schemas/artifact_generated.h"

namespace fba = bmsys::artifact;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s OUT.bmsys STATE_POOL_BYTES ACTIVATION_POOL_BYTES\n", argv[0]);
    return 2;
  }
  uint64_t state = std::strtoull(argv[2], nullptr, 0), act = std::strtoull(argv[3], nullptr, 0);
  flatbuffers::FlatBufferBuilder b;
  std::vector<fba::Dim> dims = {{fba::DimKind_Batch, 0}, {fba::DimKind_Seq, 0}};
  std::vector<flatbuffers::Offset<fba::Buffer>> bufs = {
      fba::CreateBufferDirect(b, "input_ids", fba::DType_I64, &dims, fba::BufferKind_Input)};
  std::vector<uint32_t> ins = {0}, outs = {0};
  std::vector<flatbuffers::Offset<flatbuffers::String>> names = {b.CreateString("ids")};
  std::vector<flatbuffers::Offset<fba::Instruction>> insts;
  std::vector<flatbuffers::Offset<fba::Function>> fns = {
      fba::CreateFunctionDirect(b, "forward", &ins, &outs, &names, &insts)};
  auto root = fba::CreateArtifactDirect(b, 1, "pool limit reproducer", "{}", 1, 1, act, state, &bufs, &fns);
  fba::FinishArtifactBuffer(b, root);
  FILE* f = std::fopen(argv[1], "wb");
  if (!f) return 1;
  std::fwrite(b.GetBufferPointer(), 1, b.GetSize(), f);
  return std::fclose(f) == 0 ? 0 : 1;
}
