// Pipeline parallelism's per-stage pools (docs/distributed.md "Pipeline parallelism"):
// the loader's checks of the per-stage pool sizes, and two Gloo ranks (threads) that
// each allocate only their own stage's weights, inputs and pools, run their stage's
// function in pools whose offsets overlap the other stage's, and refuse buffers and
// functions they do not hold.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <thread>

#include "artifact_builder.h"
#include "runtime/backends/cpu/cpu_backend.h"
#include "runtime/collectives/communicator.h"
#include "runtime/collectives/gloo_communicator.h"
#include "runtime/core/artifact.h"
#include "runtime/core/executor.h"
#include "runtime/io/safetensors.h"
#include "gloo_ranks.h"
#include "test_util.h"

using namespace bmsys::rt;
using namespace bmsys::rt::test;

namespace {

constexpr int64_t V = 8, H = 4, MB = 2, MS = 4;
constexpr uint64_t kAct = MB * MS * H * 4;  // one [B,S,H] f32 buffer at the bounds: 128 bytes

// Two stages as bmsys-plan-memory lays them out: stage 0 has three activations and
// one state, stage 1 two activations and two states, each stage's from offset 0;
// `forward` (no stage, refused on a pipelined artifact) has an activation and a
// state (its "KV cache") in no stage's pool. Stage 0: y = silu(silu(e)) + e with
// e = table0[ids]; stage 1: y = silu(silu(silu(table1[ids]))) through its two states.
ArtifactBuilder pipelined() {
  ArtifactBuilder a(MB, MS);
  a.pipeline_stages = 2;
  a.pipeline_micro_batches = 1;
  auto buffer = [&](const char* name, fba::BufferKind kind, uint64_t offset) {
    a.buffers.push_back({name, fba::DType_F32, {Bd(), Sd(), C(H)}, kind, offset, kAct, "", ""});
    return static_cast<uint32_t>(a.buffers.size() - 1);
  };
  auto state = [&](const char* name, uint64_t offset) {
    a.buffers.push_back({name, fba::DType_F32, {C(MB), C(MS), C(H)}, fba::BufferKind_State, offset, kAct, "", ""});
    return static_cast<uint32_t>(a.buffers.size() - 1);
  };
  auto ids = a.input("input_ids", fba::DType_I64, {Bd(), Sd()});
  auto ids0 = a.input("input_ids.mb0", fba::DType_I64, {Bd(), Sd()});
  auto ids1 = a.input("input_ids.mb0", fba::DType_I64, {Bd(), Sd()});
  auto table0 = a.weight("table0", {C(V), C(H)}, "w.safetensors", "t0");
  auto table1 = a.weight("table1", {C(V), C(H)}, "w.safetensors", "t1");
  auto e0 = buffer("e0", fba::BufferKind_Activation, 0);
  auto h0 = buffer("h0", fba::BufferKind_Activation, kAct);
  auto y0 = buffer("y0", fba::BufferKind_Activation, 2 * kAct);
  auto s0 = state("s0", 0);
  auto e1 = buffer("e1", fba::BufferKind_Activation, 0);
  auto y1 = buffer("y1", fba::BufferKind_Activation, kAct);
  auto s1a = state("s1a", 0);
  auto s1b = state("s1b", kAct);
  auto fe = buffer("fe", fba::BufferKind_Activation, 0);
  auto kv = state("kv", 0);
  a.activation_pool_bytes = 3 * kAct;  // the largest extent: stage 0's
  a.state_pool_bytes = 2 * kAct;       // stage 1's
  a.stage_activation_pool_bytes = {3 * kAct, 2 * kAct};
  a.stage_state_pool_bytes = {kAct, 2 * kAct};

  auto& f = a.function("forward");
  f.inputs = {ids};
  f.outputs = {kv};
  f.output_names = {"y"};
  add_inst(f, "embedding", {ids, table0}, {fe});
  add_inst(f, "silu", {fe}, {kv});
  auto& f0 = a.function("train_step.stage0");
  f0.pipeline_stage = 0;
  f0.inputs = {ids0};
  f0.outputs = {y0};
  f0.output_names = {"y"};
  add_inst(f0, "embedding", {ids0, table0}, {e0});
  add_inst(f0, "silu", {e0}, {s0});
  add_inst(f0, "silu", {s0}, {h0});
  add_inst(f0, "add", {h0, e0}, {y0});
  auto& f1 = a.function("train_step.stage1");
  f1.pipeline_stage = 1;
  f1.inputs = {ids1};
  f1.outputs = {y1};
  f1.output_names = {"y"};
  add_inst(f1, "embedding", {ids1, table1}, {e1});
  add_inst(f1, "silu", {e1}, {s1a});
  add_inst(f1, "silu", {s1a}, {s1b});
  add_inst(f1, "silu", {s1b}, {y1});
  return a;
}

std::shared_ptr<const Artifact> load(const ArtifactBuilder& a, const std::string& dir = ".") {
  auto bytes = a.finish();
  return load_artifact_from_memory(bytes.data(), bytes.size(), "pp.bmsys", dir);
}

// The bytes the CPU backend holds ("cpu: N B in K buffers (peak P B)").
uint64_t held_bytes(const Backend& b) {
  const std::string r = b.memory_report();
  return std::stoull(r.substr(r.find(':') + 1));
}

float silu(float x) { return x / (1.0f + std::exp(-x)); }

}  // namespace

TEST(PipelineMemory, LoaderRecordsStagesAndWhatEachStageHolds) {
  auto art = load(pipelined());
  EXPECT_EQ(art->activation_pool_for(0), 3 * kAct);
  EXPECT_EQ(art->activation_pool_for(1), 2 * kAct);
  EXPECT_EQ(art->state_pool_for(0), kAct);
  EXPECT_EQ(art->state_pool_for(1), 2 * kAct);
  auto index = [&](const char* name) { return static_cast<uint32_t>(art->find_buffer(name)); };
  EXPECT_EQ(art->buffer_stage[index("s0")], 0);
  EXPECT_EQ(art->buffer_stage[index("s1b")], 1);
  EXPECT_EQ(art->buffer_stage[index("table1")], 1);
  EXPECT_EQ(art->buffer_stage[index("kv")], -1);
  EXPECT_TRUE(art->held_by(index("s0"), 0));
  EXPECT_FALSE(art->held_by(index("s0"), 1));
  EXPECT_FALSE(art->held_by(index("table0"), 1));
  // forward's pool buffers are in no stage's pool; its input is held by every rank.
  EXPECT_FALSE(art->held_by(index("kv"), 0));
  EXPECT_FALSE(art->held_by(index("fe"), 1));
  EXPECT_TRUE(art->held_by(0, 0));
  EXPECT_TRUE(art->held_by(0, 1));

  // Without per-stage sizes (artifacts planned before them): the whole pools, and
  // the buffers of no stage are held.
  ArtifactBuilder old = pipelined();
  old.stage_activation_pool_bytes.clear();
  old.stage_state_pool_bytes.clear();
  auto whole = load(old);
  EXPECT_EQ(whole->activation_pool_for(1), 3 * kAct);
  EXPECT_EQ(whole->state_pool_for(0), 2 * kAct);
  EXPECT_TRUE(whole->held_by(index("kv"), 0));
  EXPECT_FALSE(whole->held_by(index("s0"), 1));
}

TEST(PipelineMemory, LoaderRefusesInconsistentStagePools) {
  struct Case {
    const char* name;
    std::function<void(ArtifactBuilder&)> edit;
    std::vector<std::string> fragments;
  };
  std::vector<Case> cases = {
      {"count", [](ArtifactBuilder& a) { a.stage_state_pool_bytes.push_back(0); },
       {"2 stage activation pool sizes and 3 stage state pool sizes for 2 pipeline stages"}},
      {"one_missing", [](ArtifactBuilder& a) { a.stage_activation_pool_bytes.clear(); },
       {"0 stage activation pool sizes and 2 stage state pool sizes"}},
      {"larger_than_whole", [](ArtifactBuilder& a) { a.stage_state_pool_bytes[0] = 3 * kAct; },
       {"pipeline stage 0's pools (384 / 384 bytes) are larger than the artifact's activation / state pools (384 / "
        "256 bytes)"}},
      {"outside_stage_pool", [](ArtifactBuilder& a) { a.stage_state_pool_bytes[0] = kAct - 4; },
       {"buffer 8 ('s0'): [offset 0, +128 bytes) is outside pipeline stage 0's state pool (124 bytes)"}},
      {"activation_outside", [](ArtifactBuilder& a) { a.stage_activation_pool_bytes[1] = kAct; },
       {"buffer 10 ('y1'): [offset 128, +128 bytes) is outside pipeline stage 1's activation pool (128 bytes)"}},
      {"two_stages", [](ArtifactBuilder& a) { a.functions[2].insts[1].outputs = {8}; },
       {"buffer 's0' is used by pipeline stages 0 and 1 (function 'train_step.stage1')"}},
      {"no_pipeline",
       [](ArtifactBuilder& a) {
         a.pipeline_stages = 0;
         for (auto& f : a.functions) f.pipeline_stage = -1;
       },
       {"per-stage pool sizes, but the artifact has no pipeline stages"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ArtifactBuilder a = pipelined();
    c.edit(a);
    std::vector<std::string> frags = c.fragments;
    frags.push_back("pp.bmsys: ");
    try {
      load(a);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      for (const auto& fr : frags)
        EXPECT_NE(std::string(e.what()).find(fr), std::string::npos) << e.what() << "\nmissing: " << fr;
    }
  }
}

// Each rank allocates exactly its stage's table, its inputs (its stage's and
// forward's) and its stage's pools, not the largest pools every rank got before
// per-stage planning, and computes its stage's function correctly in them.
TEST(PipelineMemory, EachRankHoldsOnlyItsStagesMemory) {
  TempDir dir;
  std::vector<float> t0 = random_floats(V * H, 31), t1 = random_floats(V * H, 32);
  write_safetensors(dir.file("w.safetensors"),
                    {{"t0", HostTensor::from_f32({V, H}, t0)}, {"t1", HostTensor::from_f32({V, H}, t1)}});
  auto art = load(pipelined(), dir.path());
  const std::vector<int64_t> ids = {0, 7, 3, 3, 5, 1, 2, 6};
  run_gloo_ranks(2, 30, [&](int rank, std::shared_ptr<Communicator> comm) {
    auto cpu = std::make_shared<CpuBackend>();
    ExecutorOptions o;
    o.comm = comm;
    Executor ex(art, cpu, o);
    ASSERT_EQ(ex.pp_stage(), rank);
    const uint64_t table = V * H * 4, inputs = 2 * (MB * MS * 8);  // forward's ids and the stage's
    const uint64_t pools = rank == 0 ? 3 * kAct + kAct : 2 * kAct + 2 * kAct;
    EXPECT_EQ(held_bytes(*cpu), table + inputs + pools) << cpu->memory_report();

    auto out = ex.run("train_step", {{"input_ids", HostTensor::from_i64({MB, MS}, ids)}});
    const std::vector<float> y = out.at("y").to_f32();
    ASSERT_EQ(y.size(), static_cast<size_t>(MB * MS * H));
    for (size_t t = 0; t < ids.size(); ++t)
      for (int64_t h = 0; h < H; ++h) {
        const float e = (rank == 0 ? t0 : t1)[ids[t] * H + h];
        const float ref = rank == 0 ? silu(silu(e)) + e : silu(silu(silu(e)));
        EXPECT_NEAR(y[t * H + h], ref, 1e-6f) << "token " << t << " h " << h;
      }

    // Not held here: the other stage's function, forward and its state.
    expect_error([&] { ex.function_for(rank == 0 ? "train_step.stage1" : "train_step.stage0"); },
                 {"pp.bmsys", rank == 0 ? "function 'train_step.stage1' is pipeline stage 1's" :
                                          "function 'train_step.stage0' is pipeline stage 0's"});
    expect_error([&] { ex.function_for("forward"); }, {"function 'forward' cannot run on a pipeline-parallel"});
    expect_error([&] { ex.read_buffer(ex.buffer_index("kv")); },
                 {"pp.bmsys: buffer 'kv' is not held by this rank", "no stage's function uses it"});
    ex.reset_state();  // zeroes this stage's states only
    const char* own = rank == 0 ? "s0" : "s1b";
    for (float v : ex.read_buffer(ex.buffer_index(own)).to_f32()) EXPECT_EQ(v, 0.0f);
  });
}
