// bmsys-run: runs a compiled .bmsys artifact (infer, generate, train, inspect) and
// makes token files (tokenize).
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "runtime/backends/backend.h"
#include "runtime/backends/cuda/compute_dtype.h"
#include "runtime/collectives/communicator.h"
#include "runtime/core/mesh.h"
#include "runtime/core/artifact.h"
#include "runtime/core/error.h"
#include "runtime/core/executor.h"
#include "runtime/core/version.h"
#include "runtime/infer/generate.h"
#include "runtime/io/safetensors.h"
#include "runtime/train/token_data.h"
#include "runtime/train/trainer.h"
#include "tools/bmsys-run/calibrate.h"

using namespace bmsys::rt;

namespace {

struct Common {
  std::string artifact;
  std::string weights;
  std::string backend = "auto";
  int threads = 0;
  std::string dtype;         // empty: the artifact's own
  std::string trace;         // cuda: Chrome trace-event file
  int64_t random_seed = -1;  // >= 0: weights filled on the device from this seed
  bool memory_plan = false;  // print the memory plan and what the backend holds
};

void add_common(CLI::App* cmd, Common& c, bool with_weights) {
  cmd->add_option("artifact", c.artifact, "the compiled model (.bmsys)")->required()->check(CLI::ExistingFile);
  if (!with_weights) return;
  cmd->add_option("--weights", c.weights,
                  "a safetensors file used for every weight, or a directory holding the weight "
                  "files (default: the artifact's directory)")
      ->check(CLI::ExistingPath);
  cmd->add_option("--device,--backend", c.backend,
                  "cuda, cpu, or auto: cuda where a GPU is visible and the backend has every "
                  "kernel of the artifact, else cpu (said on stderr)")
      ->default_val("auto");
  cmd->add_option("--dtype", c.dtype,
                  "compute in bf16, fp16 or fp32 (weights cast at load, activations and KV cache "
                  "in it, f32 accumulation; default: the artifact's dtype)");
  cmd->add_option("--trace", c.trace, "write a Chrome trace-event file of the GPU work (cuda; ranks of a distributed run write FILE.rank<R>.json)");
  cmd->add_option("--random-weights", c.random_seed,
                  "fill the weights from SEED on the device instead of reading their data "
                  "(benchmarks; cuda)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--threads", c.threads, "CPU threads (0: OpenMP default)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--memory-plan", c.memory_plan,
                "print the artifact's memory plan and what the backend holds once it is loaded (stderr)");
}

// `env`: the data-parallel ranks of a distributed run (train), or null for one process.
std::unique_ptr<Executor> make_executor(const Common& c, const DistributedEnv* env = nullptr) {
  auto artifact = load_artifact(c.artifact);
  if (!c.dtype.empty()) artifact = with_compute_dtype(artifact, parse_compute_dtype(c.dtype));
  BackendOptions bo;
  bo.threads = c.threads;
  bo.trace_path = c.trace;
  bo.random_weights = c.random_seed >= 0;
  bo.random_seed = c.random_seed >= 0 ? static_cast<uint64_t>(c.random_seed) : 0;
  // One GPU per local rank (LOCAL_RANK, as --nproc and torchrun set it), and one trace
  // file per rank (FILE.json -> FILE.rank<R>.json).
  if (env && env->world_size > 1) {
    bo.device = env->local_rank;
    if (!c.trace.empty()) {
      const size_t dot = c.trace.rfind('.'), slash = c.trace.rfind('/');
      const bool ext = dot != std::string::npos && (slash == std::string::npos || dot > slash);
      bo.trace_path = ext ? fmt::format("{}.rank{}{}", c.trace.substr(0, dot), env->rank, c.trace.substr(dot))
                          : fmt::format("{}.rank{}", c.trace, env->rank);
    }
  }
  std::string device = c.backend == "auto" ? default_backend() : c.backend;
  std::shared_ptr<Backend> backend = create_backend(device, bo);
  if (c.backend == "auto" && device != "cpu") {
    for (const FunctionDesc& f : artifact->functions)
      for (const InstructionDesc& in : f.instructions)
        if (!backend->supports(in.kernel) && device != "cpu") {
          std::fprintf(stderr, "bmsys-run: the %s backend has no kernel '%s'; using cpu\n",
                       device.c_str(), kernel_name(in.kernel));
          device = "cpu";
        }
    if (device == "cpu") backend = create_backend(device, bo);
  }
  if (device == "cpu" && (!c.trace.empty() || bo.random_weights))
    fail("--trace and --random-weights need --device cuda");
  std::fprintf(stderr, "bmsys-run: device: %s\n", backend->description().c_str());
  // The whole memory plan against what the device has, before anything is allocated.
  // A rank of a pipelined artifact holds only its stage's weights, inputs and pools.
  const int stage = env && artifact->pipeline_stages > 1 ? Mesh::of(*artifact).pp_rank(env->rank) : 0;
  const uint64_t activation_pool = artifact->activation_pool_for(stage), state_pool = artifact->state_pool_for(stage);
  const std::string stage_note =
      artifact->pipeline_stages > 1 ? fmt::format("pipeline stage {} of {}: ", stage, artifact->pipeline_stages) : "";
  uint64_t weights = 0, inputs = 0;
  for (uint32_t i = 0; i < artifact->buffers.size(); ++i) {
    const BufferDesc& b = artifact->buffers[i];
    if (!artifact->held_by(i, stage)) continue;
    if (b.kind == BufferKind::Weight && b.swap_group < 0)  // swapped layers live in host memory
      weights += static_cast<uint64_t>(shape_numel(b.resolve(0, 0))) * dtype_size(b.dtype);
    else if (b.kind == BufferKind::Input)
      inputs += static_cast<uint64_t>(shape_numel(b.resolve(artifact->max_batch, artifact->max_seq))) *
                dtype_size(b.dtype);
  }
  // bmsys-memory-schedule: its swap slots instead (2, or 1 for a single swapped layer).
  if (artifact->schedule.present())
    weights += (artifact->schedule.groups.size() > 1 ? 2 : 1) * artifact->schedule.slot_bytes;
  backend->check_memory_plan(weights + activation_pool + state_pool + inputs,
                             fmt::format("{}weights {} B, activation pool {} B, state pool {} B, inputs {} B",
                                         stage_note, weights, activation_pool, state_pool, inputs));
  ExecutorOptions eo;
  eo.weights = c.weights;
  if (env) {
    // Refuse a world size the artifact was not compiled for before connecting.
    check_world_size(*artifact, env->world_size);
    eo.comm = create_communicator(*env, *backend);
  }
  auto executor = std::make_unique<Executor>(artifact, backend, eo);
  if (c.memory_plan)  // compared with bmsys-memory-report's total (docs/autofit.md)
    std::fprintf(stderr, "bmsys-run: memory plan: %llu B (%sweights %llu B, activation pool %llu B, state pool %llu B, inputs %llu B)\nbmsys-run: memory held: %s\n",
                 static_cast<unsigned long long>(weights + activation_pool + state_pool + inputs),
                 stage_note.c_str(), static_cast<unsigned long long>(weights),
                 static_cast<unsigned long long>(activation_pool), static_cast<unsigned long long>(state_pool),
                 static_cast<unsigned long long>(inputs), backend->memory_report().c_str());
  return executor;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return fmt::format("was killed by signal {} ({})", WTERMSIG(status), ::strsignal(WTERMSIG(status)));
  return "stopped";
}

// `bmsys-run train ... --nproc N`: runs N copies of this command line as ranks
// 0..N-1 (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1 and
// BMSYS_STORE_DIR, a fresh file-store directory for the rendezvous), waits for all,
// and when one fails stops the others and exits 1 naming it.
int launch_ranks(int nproc, int threads, char** argv) {
  char tmpl[] = "/tmp/bmsys-rdzv-XXXXXX";
  if (!::mkdtemp(tmpl)) fail("--nproc: cannot create a rendezvous directory in /tmp: {}", std::strerror(errno));
  const std::string store = tmpl;
  const long cores = std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN));
  const std::string per_rank = std::to_string(std::max(1L, cores / nproc));
  std::vector<pid_t> pids(static_cast<size_t>(nproc), -1);
  std::fflush(stdout);
  std::fflush(stderr);
  for (int r = 0; r < nproc; ++r) {
    pid_t pid = ::fork();
    if (pid < 0) fail("--nproc: fork failed: {}", std::strerror(errno));
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the launcher
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::unsetenv("MASTER_PORT");
      ::setenv("BMSYS_STORE_DIR", store.c_str(), 1);
      ::setenv("BMSYS_LAUNCHED", "1", 1);
      if (threads == 0) {  // share the cores instead of oversubscribing them
        ::setenv("OMP_NUM_THREADS", per_rank.c_str(), 0);
        ::setenv("OPENBLAS_NUM_THREADS", per_rank.c_str(), 0);
      }
      ::execv("/proc/self/exe", argv);
      std::fprintf(stderr, "bmsys-run: error: rank %d: exec failed: %s\n", r, std::strerror(errno));
      ::_exit(127);
    }
    pids[static_cast<size_t>(r)] = pid;
  }
  auto rank_of = [&](pid_t p) {
    for (int r = 0; r < nproc; ++r)
      if (pids[static_cast<size_t>(r)] == p) return r;
    return -1;
  };
  int alive = nproc, first_failed = -1;
  std::vector<std::string> failures;
  bool stopping = false;
  auto deadline = std::chrono::steady_clock::time_point::max();
  while (alive > 0) {
    int status = 0;
    pid_t p = ::waitpid(-1, &status, stopping ? WNOHANG : 0);
    if (p < 0 && errno == EINTR) continue;
    if (p < 0) break;
    if (p == 0) {  // stopping: give the others a moment, then kill them
      if (std::chrono::steady_clock::now() > deadline)
        for (int r = 0; r < nproc; ++r)
          if (pids[static_cast<size_t>(r)] > 0) ::kill(pids[static_cast<size_t>(r)], SIGKILL);
      ::usleep(10000);
      continue;
    }
    int r = rank_of(p);
    if (r < 0) continue;
    pids[static_cast<size_t>(r)] = -1;
    --alive;
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (ok) continue;
    if (stopping && WIFSIGNALED(status) && (WTERMSIG(status) == SIGTERM || WTERMSIG(status) == SIGKILL))
      continue;  // one we stopped
    failures.push_back(fmt::format("rank {} (pid {}) {}", r, p, describe_status(status)));
    if (first_failed < 0) first_failed = r;
    if (!stopping) {
      stopping = true;
      deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      for (int q = 0; q < nproc; ++q)
        if (pids[static_cast<size_t>(q)] > 0) ::kill(pids[static_cast<size_t>(q)], SIGTERM);
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(store, ec);
  if (first_failed < 0) return 0;
  for (const std::string& f : failures) std::fprintf(stderr, "bmsys-run: error: %s\n", f.c_str());
  std::fprintf(stderr, "bmsys-run: error: rank %d failed first; the other ranks were stopped\n", first_failed);
  return 1;
}

std::vector<int64_t> parse_ids(const std::string& s, const char* what = "--prompt-ids") {
  std::vector<int64_t> ids;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    size_t b = tok.find_first_not_of(" \t"), e = tok.find_last_not_of(" \t");
    if (b == std::string::npos) fail("{}: empty element in '{}'", what, s);
    tok = tok.substr(b, e - b + 1);
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(tok, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != tok.size() || v < 0) fail("{}: '{}' is not a non-negative integer", what, tok);
    ids.push_back(v);
  }
  if (ids.empty()) fail("{}: no token ids given", what);
  return ids;
}

// --prompts-file: one comma-separated prompt per line; blank lines are skipped.
std::vector<std::vector<int64_t>> read_prompts_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("{}: cannot open", path);
  std::vector<std::vector<int64_t>> prompts;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string what = fmt::format("{}:{}", path, n);
    prompts.push_back(parse_ids(line, what.c_str()));
  }
  if (prompts.empty()) fail("{}: no prompts", path);
  return prompts;
}

void inspect(const Artifact& a) {
  std::printf("artifact: %s\n", a.path.c_str());
  std::printf("format_version: %u\nproducer: %s\n", a.format_version, a.producer.c_str());
  std::printf("max_batch: %lld\nmax_seq: %lld\n", static_cast<long long>(a.max_batch),
              static_cast<long long>(a.max_seq));
  std::printf("activation_pool_bytes: %llu\nstate_pool_bytes: %llu\n",
              static_cast<unsigned long long>(a.activation_pool_bytes),
              static_cast<unsigned long long>(a.state_pool_bytes));
  for (size_t s = 0; s < a.stage_state_pool_bytes.size(); ++s)
    std::printf("pipeline stage %zu: activation_pool_bytes %llu, state_pool_bytes %llu\n", s,
                static_cast<unsigned long long>(a.stage_activation_pool_bytes[s]),
                static_cast<unsigned long long>(a.stage_state_pool_bytes[s]));
  if (a.schedule.present()) {
    const MemoryScheduleDesc& s = a.schedule;
    auto list = [](const std::vector<int64_t>& v) {
      std::string t;
      for (int64_t x : v) t += (t.empty() ? "" : ", ") + std::to_string(x);
      return "[" + t + "]";
    };
    std::printf("memory_schedule: swapped layers %s, resident %s, slot_bytes %llu, bytes_per_token %llu, "
                "budget %llu\n",
                list(s.groups).c_str(), list(s.resident).c_str(),
                static_cast<unsigned long long>(s.slot_bytes), static_cast<unsigned long long>(s.bytes_per_token),
                static_cast<unsigned long long>(s.budget));
  }
  std::printf("buffers: %zu\n", a.buffers.size());
  for (size_t i = 0; i < a.buffers.size(); ++i) {
    const BufferDesc& b = a.buffers[i];
    std::string extra;
    if (b.kind == BufferKind::Weight) extra = fmt::format(" {}:{}", b.weight_file, b.weight_key);
    if (b.swap_group >= 0) extra += fmt::format(" swap_group={}", b.swap_group);
    if (b.kind == BufferKind::Activation || b.kind == BufferKind::State ||
        b.kind == BufferKind::OptimizerState)
      extra = fmt::format(" offset={} bytes={}", b.offset, b.bytes);
    std::printf("  %%%zu %s %s %s %s%s\n", i, b.name.c_str(), buffer_kind_name(b.kind),
                dtype_name(b.dtype), b.dims_str().c_str(), extra.c_str());
  }
  std::printf("functions: %zu\n", a.functions.size());
  for (const FunctionDesc& f : a.functions) {
    std::string ins, outs;
    for (uint32_t i : f.inputs) ins += (ins.empty() ? "" : ", ") + a.buffers[i].name;
    for (size_t i = 0; i < f.outputs.size(); ++i)
      outs += (outs.empty() ? "" : ", ") + f.output_names[i] + "=%" + std::to_string(f.outputs[i]);
    std::printf("  %s(%s) -> (%s): %zu instructions\n", f.name.c_str(), ins.c_str(), outs.c_str(),
                f.instructions.size());
    for (size_t i = 0; i < f.instructions.size(); ++i) {
      const InstructionDesc& in = f.instructions[i];
      std::string ops;
      for (uint32_t x : in.inputs) ops += (ops.empty() ? "%" : ", %") + std::to_string(x);
      std::string res;
      for (uint32_t x : in.outputs) res += (res.empty() ? "%" : ", %") + std::to_string(x);
      std::printf("    %zu: %s = %s(%s)\n", i, res.c_str(), kernel_name(in.kernel), ops.c_str());
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  // A write past RLIMIT_FSIZE (`ulimit -f`) fails with EFBIG, reported with the file's
  // name, instead of killing the process with SIGXFSZ.
  ::signal(SIGXFSZ, SIG_IGN);
  // Idle OpenMP threads should sleep instead of spinning: the kernels of small
  // models are short, and spinning threads starve OpenBLAS's threads and other
  // processes (5x slower training of the tiny models on a busy 2-core
  // machine). libgomp reads the setting when it is loaded, before main, so the
  // process re-executes itself once with it set; the user's own setting wins.
  if (!getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: carry on spinning
  }
  CLI::App app{"bmsys-run: runs compiled bmsys artifacts (.bmsys) on the runtime's backends"};
  app.set_version_flag("--version", std::string("bmsys-run ") + kRuntimeVersion +
                                        " (artifact format " + std::to_string(kArtifactFormatVersion) + ")");
  app.require_subcommand(1);

  Common ic;
  std::string input, output, function = "forward";
  auto* infer = app.add_subcommand("infer", "run a function once (P=0) on the tensors of an input file");
  add_common(infer, ic, true);
  infer->add_option("--input", input, "safetensors file with the function's inputs (e.g. int64 input_ids [B,S])")
      ->required()->check(CLI::ExistingFile);
  infer->add_option("--output", output, "safetensors file to write every function output to")->required();
  infer->add_option("--function", function, "function to run")->default_val("forward");
  int64_t infer_step = 1;
  infer->add_option("--step", infer_step,
                    "training step T passed to optimizer kernels (e.g. --function train_step: its "
                    "grad outputs are those of the initial weights)")
      ->default_val(1)->check(CLI::PositiveNumber);

  Common gc;
  std::vector<std::string> prompt_args;
  std::string prompts_file, stop_ids;
  GenerateOptions go;
  bool gen_text = false;
  uint64_t gen_seed = 0;
  auto* gen = app.add_subcommand(
      "generate", "decoding with the KV cache (greedy or sampled, batched); prints prompt + new ids per sequence");
  add_common(gen, gc, true);
  auto* prompt_opt = gen->add_option("--prompt-ids", prompt_args,
                                     "comma-separated token ids, e.g. 1,2,3; repeat for a batch of prompts");
  gen->add_option("--prompts-file", prompts_file, "a file of prompts: comma-separated ids, one prompt per line")
      ->check(CLI::ExistingFile)->excludes(prompt_opt);
  gen->add_option("--max-new-tokens", go.max_new_tokens, "number of tokens to generate per sequence")
      ->required()->check(CLI::NonNegativeNumber);
  gen->add_option("--temperature", go.sampling.temperature, "sampling temperature; 0: greedy")->default_val(0.0);
  gen->add_option("--top-k", go.sampling.top_k, "sample among the K most likely tokens (0: all)")->default_val(0);
  gen->add_option("--top-p", go.sampling.top_p, "nucleus sampling: the smallest set of probability >= P")
      ->default_val(1.0);
  gen->add_option("--repetition-penalty", go.sampling.repetition_penalty,
                  "divide positive (multiply negative) logits of tokens seen in prompt or output by R")
      ->default_val(1.0);
  gen->add_option("--frequency-penalty", go.sampling.frequency_penalty,
                  "subtract F times the count of each token in the output so far")->default_val(0.0);
  gen->add_option("--presence-penalty", go.sampling.presence_penalty,
                  "subtract P from every token present in the output so far")->default_val(0.0);
  gen->add_option("--stop-ids", stop_ids, "comma-separated ids that end a sequence (printed)");
  auto* seed_opt = gen->add_option("--seed", gen_seed, "sampling seed (default: random)");
  gen->add_flag("--text", gen_text, "print each sequence as bytes (byte-level vocabularies: ids < 256)");

  Common tc;
  TrainOptions to;
  std::string token_dtype = "u16";
  auto* trn = app.add_subcommand("train", "train with the artifact's train_step function on a token file");
  add_common(trn, tc, true);
  trn->add_option("--data", to.data, "token file: flat little-endian uint16 (or uint32) ids, no header")
      ->required()->check(CLI::ExistingFile);
  trn->add_option("--batch", to.batch, "windows per step (B)")->required()->check(CLI::PositiveNumber);
  trn->add_option("--seq", to.seq, "tokens per window (S)")->required()->check(CLI::PositiveNumber);
  trn->add_option("--steps", to.steps, "train until this step (a total, also when resuming)")
      ->required()->check(CLI::NonNegativeNumber);
  trn->add_option("--metrics", to.metrics, "JSONL file: one line of metrics per step");
  trn->add_option("--save", to.save_dir, "checkpoint directory, written at the end (and every --save-every steps)");
  trn->add_option("--save-every", to.save_every, "also save a checkpoint every K steps")->check(CLI::NonNegativeNumber);
  trn->add_option("--resume", to.resume_dir, "continue from this checkpoint directory")->check(CLI::ExistingDirectory);
  trn->add_option("--function", to.function, "the training function")->default_val("train_step");
  trn->add_option("--seed", to.seed, "recorded in checkpoints (nothing is random yet)")->default_val(0);
  trn->add_option("--token-dtype", token_dtype, "token file element type")
      ->default_val("u16")->check(CLI::IsMember({"u16", "u32"}));
  trn->add_option("--loss-scale-init", to.loss_scale_init,
                  "dynamic loss scaling (artifacts compiled with loss-scaling=dynamic): the initial scale")
      ->default_val(65536.0)->check(CLI::PositiveNumber);
  trn->add_option("--loss-scale-window", to.loss_scale_window,
                  "dynamic loss scaling: double the scale after this many clean steps")
      ->default_val(1000)->check(CLI::PositiveNumber);
  int nproc = 0;
  double comm_timeout = 60;
  trn->add_option("--nproc", nproc,
                  "run N data-parallel ranks as local processes (without it: RANK, WORLD_SIZE, "
                  "LOCAL_RANK, MASTER_ADDR, MASTER_PORT from the environment, as torchrun sets them)")
      ->check(CLI::PositiveNumber);
  trn->add_option("--comm-timeout", comm_timeout,
                  "seconds any collective (and the rendezvous) may take before the run fails")
      ->default_val(60)->check(CLI::PositiveNumber);

  bool memory_report = false;
  trn->add_flag("--memory-report", memory_report,
                "at the end, print what each rank's device holds and its allocator's peak (stderr)");

  std::vector<std::string> tok_inputs;
  std::string tok_output, tok_dtype = "u16";
  auto* tok = app.add_subcommand("tokenize", "byte-level tokens (one per byte, ids 0..255) of files, concatenated");
  tok->add_option("files", tok_inputs, "input files")->required()->check(CLI::ExistingFile);
  tok->add_option("-o,--output", tok_output, "token file to write")->required();
  tok->add_option("--dtype", tok_dtype, "token element type")->default_val("u16")->check(CLI::IsMember({"u16", "u32"}));

  Common pc;
  auto* insp = app.add_subcommand("inspect", "print an artifact's functions, buffers and pool sizes");
  add_common(insp, pc, false);

  CalibrateOptions co;
  int cal_nproc = 0;
  auto* cal = app.add_subcommand(
      "calibrate", "measure GEMM, attention, memory, host-copy and collective rates for bmsys-fit (JSON)");
  cal->add_option("-o,--output", co.output, "calibration file to write")->required();
  cal->add_option("--device,--backend", co.device, "cuda, cpu or auto")->default_val("auto");
  cal->add_option("--dtype", co.dtype, "GEMM and attention dtype: bf16, f16 or f32 (default: bf16 where supported)");
  cal->add_option("--threads", co.threads, "CPU threads (0: OpenMP default)")->check(CLI::NonNegativeNumber);
  cal->add_option("--seconds", co.seconds, "time per measurement")->default_val(0.2)->check(CLI::PositiveNumber);
  cal->add_flag("--quick", co.quick, "small sizes only (tests)");
  cal->add_option("--nproc", cal_nproc, "also time collectives among N local ranks (one GPU each)")
      ->check(CLI::PositiveNumber);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "bmsys-run: error: %s\nRun with --help for more information.\n", e.what());
    return 2;  // usage error
  }

  std::string rank_prefix;
  try {
    if (*trn) {
      if (to.save_every > 0 && to.save_dir.empty()) fail("--save-every needs --save DIR");
      to.token_dtype = *token_dtype_from_name(token_dtype);
      to.progress = ::isatty(STDERR_FILENO) ? ProgressMode::Terminal : ProgressMode::Lines;
      const char* launched = std::getenv("BMSYS_LAUNCHED");
      if (nproc > 1 && !(launched && *launched)) {
        auto art = load_artifact(tc.artifact);
        const Mesh mesh = Mesh::of(*art);
        if (mesh.world() != nproc)
          fail("{}: the artifact is compiled for {}{} ({}), not --nproc {}", art->path, mesh.describe(),
               mesh.tp > 1 || mesh.pp > 1 ? fmt::format(" = {} ranks", mesh.world()) : std::string(),
               mesh.pp > 1   ? "pipeline_stages x data_parallel_ranks x tensor_parallel_ranks"
               : mesh.tp > 1 ? "data_parallel_ranks x tensor_parallel_ranks"
                             : "data_parallel_ranks",
               nproc);
        return launch_ranks(nproc, tc.threads, argv);
      }
      DistributedEnv env = distributed_env_from_environment(comm_timeout);
      if (nproc > 1 && env.world_size != nproc)
        fail("--nproc {} but WORLD_SIZE is {}", nproc, env.world_size);
      rank_prefix = env.world_size > 1 ? fmt::format("rank {}: ", env.rank) : "";
      auto ex = make_executor(tc, &env);
      train(*ex, to);
      if (memory_report) {
        const std::string r = ex->backend().memory_report();
        std::fprintf(stderr, "bmsys-run: %smemory: %s\n", rank_prefix.c_str(),
                     r.empty() ? "(the backend keeps no account)" : r.c_str());
      }
    } else if (*cal) {
      const char* launched = std::getenv("BMSYS_LAUNCHED");
      if (cal_nproc > 1 && !(launched && *launched)) return launch_ranks(cal_nproc, co.threads, argv);
      DistributedEnv env = distributed_env_from_environment(120);
      rank_prefix = env.world_size > 1 ? fmt::format("rank {}: ", env.rank) : "";
      calibrate(co, env);
    } else if (*tok) {
      std::vector<int64_t> tokens;
      for (const std::string& path : tok_inputs) {
        std::ifstream in(path, std::ios::binary);
        if (!in) fail("{}: cannot open", path);
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (in.bad()) fail("{}: read failed", path);
        for (char c : bytes) tokens.push_back(static_cast<uint8_t>(c));
      }
      write_token_file(tok_output, tokens, *token_dtype_from_name(tok_dtype));
      std::printf("%zu tokens\n", tokens.size());
    } else if (*insp) {
      inspect(*load_artifact(pc.artifact));
    } else if (*infer) {
      auto ex = make_executor(ic);
      const FunctionDesc* f = ex->artifact().find_function(function);
      if (!f) fail("{}: no function '{}'", ic.artifact, function);
      auto in = SafetensorsFile::open(input);
      std::map<std::string, HostTensor> inputs;
      for (uint32_t idx : f->inputs) {
        const BufferDesc& b = ex->artifact().buffers[idx];
        if (!in->contains(b.name))
          fail("{}: no tensor '{}' (input of function '{}')", input, b.name, function);
        inputs[b.name] = in->read(b.name);
      }
      auto outputs = ex->run(function, inputs, 0, infer_step);
      write_safetensors(output, outputs);
    } else if (*gen) {
      std::vector<std::vector<int64_t>> prompts;
      if (!prompts_file.empty()) prompts = read_prompts_file(prompts_file);
      for (const std::string& p : prompt_args) prompts.push_back(parse_ids(p));
      if (prompts.empty()) fail("generate: give --prompt-ids (one or more) or --prompts-file");
      if (!stop_ids.empty()) go.stop_ids = parse_ids(stop_ids, "--stop-ids");
      go.seed = seed_opt->count() ? gen_seed : std::random_device{}();
      check_sampling_options(go.sampling);
      auto ex = make_executor(gc);
      auto seqs = generate(*ex, prompts, go);
      for (const std::vector<int64_t>& seq : seqs) {
        std::string line;
        if (gen_text) {
          for (int64_t t : seq) {
            if (t < 0 || t > 255) fail("--text: token {} is not a byte (a byte-level vocabulary has ids 0..255)", t);
            line.push_back(static_cast<char>(t));
          }
        } else {
          for (size_t i = 0; i < seq.size(); ++i) line += (i ? "," : "") + std::to_string(seq[i]);
        }
        std::fwrite(line.data(), 1, line.size(), stdout);
        std::fputc('\n', stdout);
      }
    }
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::string msg = e.what();
    if (msg.rfind("rank ", 0) == 0) rank_prefix.clear();  // already names the rank
    std::fprintf(stderr, "bmsys-run: error: %s%s\n", rank_prefix.c_str(), msg.c_str());
    return 1;
  }
  return 0;
}
