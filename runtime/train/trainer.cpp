#include "runtime/train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "runtime/core/error.h"
#include "runtime/core/executor.h"
#include "runtime/train/checkpoint.h"

namespace bmsys::rt {

using json = nlohmann::json;

double scheduled_lr(const Executor& ex, const std::string& function, int64_t step) {
  const FunctionDesc* f = ex.artifact().find_function(function);
  if (ex.artifact().pipeline_stages > 1) f = &ex.function_for(function);  // this stage's step
  if (f)
    for (const InstructionDesc& inst : f->instructions)
      if (is_optimizer_kernel(inst.kernel)) return LrSchedule::from_attrs(inst.attrs).at(step);
  return std::numeric_limits<double>::quiet_NaN();
}

bool uses_loss_scaling(const Executor& ex, const std::string& function) {
  const FunctionDesc* f = ex.artifact().find_function(function);
  if (ex.artifact().pipeline_stages > 1) f = &ex.function_for(function);
  if (f)
    for (const InstructionDesc& inst : f->instructions)
      if (inst.attrs.has("loss_scaling") && inst.attrs.get_int("loss_scaling") != 0) return true;
  return false;
}

namespace {

double scalar(const std::map<std::string, HostTensor>& out, const std::string& name,
              const std::string& where) {
  auto it = out.find(name);
  if (it == out.end()) fail("{}: has no output '{}'", where, name);
  if (it->second.numel() != 1)
    fail("{}: output '{}' has shape {}, expected a scalar", where, name, shape_str(it->second.shape));
  return it->second.to_f32()[0];
}

json num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

std::string hms(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) seconds = 0;
  auto s = static_cast<int64_t>(seconds + 0.5);
  return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
}

// Keeps the lines of an existing metrics file up to step `last` (resume after a
// crash: later steps are run again) and opens it for appending.
std::ofstream open_metrics(const std::string& path, bool resuming, int64_t last) {
  std::string kept;
  if (resuming && std::filesystem::exists(path)) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      json j = json::parse(line, nullptr, false);
      if (!j.is_discarded() && j.is_object() && j.contains("step") && j["step"].is_number_integer() &&
          j["step"].get<int64_t>() <= last)
        kept += line + "\n";
    }
  }
  std::ofstream out(path, std::ios::trunc);
  if (!out) fail("{}: cannot open the metrics file for writing", path);
  out << kept;
  out.flush();
  return out;
}

}  // namespace

std::vector<StepMetrics> train(Executor& ex, const TrainOptions& o) {
  const Artifact& a = ex.artifact();
  const FunctionDesc* f = a.pipeline_stages > 1 ? &ex.function_for(o.function) : a.find_function(o.function);
  if (!f) fail("{}: no function '{}' to train with", a.path, o.function);
  const std::string where = fmt::format("{}: function '{}'", a.path, f->name);
  // A pipeline stage's step takes the micro-batches of input_ids (Executor::run cuts them).
  const bool pipelined = f->pipeline_stage >= 0;
  if (pipelined ? f->inputs.empty() || a.buffers[f->inputs[0]].name != "input_ids.mb0"
                : f->inputs.size() != 1 || a.buffers[f->inputs[0]].name != "input_ids")
    fail("{}: a training function takes exactly one input, 'input_ids' [B,S]", where);
  for (const char* name : {"loss", "grad_norm"}) {
    bool found = false;
    for (const std::string& n : f->output_names) found |= n == name;
    if (!found) fail("{}: has no output '{}'", where, name);
  }
  if (o.batch < 1 || o.seq < 1) fail("--batch and --seq must be >= 1");
  if (o.steps < 0) fail("--steps must be >= 0");
  if (o.save_every < 0) fail("--save-every must be >= 0");
  // Data parallelism: rank r trains on rows [r*B/R, (r+1)*B/R) of each global batch.
  // With tensor parallelism the ranks of a tensor-parallel group share rows.
  const int64_t R = ex.dp_size(), rank = ex.dp_rank(), world_rank = ex.rank();
  if (o.batch % R != 0)
    fail("--batch {} is not divisible by the {} data-parallel ranks (each rank takes B/R rows of every "
         "global batch)",
         o.batch, R);
  const int64_t local_batch = o.batch / R;
  if (pipelined && local_batch % a.pipeline_micro_batches != 0)
    fail("--batch {} is not divisible into {} data-parallel rank(s) x {} micro-batches (bmsys-pipeline-parallel "
         "micro-batches={}): each micro-batch takes B/({}*{}) rows",
         o.batch, R, a.pipeline_micro_batches, a.pipeline_micro_batches, R, a.pipeline_micro_batches);
  const bool lead = world_rank == 0;  // only rank 0 prints progress and writes metrics
  const ProgressMode progress = lead ? o.progress : ProgressMode::None;
  // Test hook (docs/distributed.md): BMSYS_TEST_KILL_RANK=R makes rank R _exit(9) at
  // the start of step BMSYS_TEST_KILL_STEP (default 3), or hang there with
  // BMSYS_TEST_HANG=1.
  int64_t kill_step = -1;
  bool hang = false;
  if (const char* kr = std::getenv("BMSYS_TEST_KILL_RANK"); kr && *kr && std::atoll(kr) == world_rank) {
    const char* ks = std::getenv("BMSYS_TEST_KILL_STEP");
    kill_step = ks && *ks ? std::atoll(ks) : 3;
    const char* h = std::getenv("BMSYS_TEST_HANG");
    hang = h && *h && std::string(h) != "0";
  }

  // Dynamic loss scaling (docs/training.md): L starts at loss_scale_init, halves on a
  // step whose gradient norm is not finite (the kernels skip the update; the step
  // counts, the optimizer's T does not advance) and doubles after loss_scale_window
  // clean steps. It never drops below min(1, init).
  const bool dynamic = uses_loss_scaling(ex, o.function);
  if (dynamic && !(o.loss_scale_init > 0 && std::isfinite(o.loss_scale_init)))
    fail("--loss-scale-init must be a positive number, not {}", o.loss_scale_init);
  if (dynamic && o.loss_scale_window < 1) fail("--loss-scale-window must be >= 1");
  const double min_scale = std::min(1.0, o.loss_scale_init);
  const double max_scale = std::ldexp(1.0, 100);
  // Test hook: BMSYS_TEST_FORCE_OVERFLOW_STEP=k multiplies step k's loss scale by 1e38,
  // so that its gradients overflow to inf/nan (a loss-scaled artifact only).
  int64_t force_overflow = -1;
  if (const char* fo = std::getenv("BMSYS_TEST_FORCE_OVERFLOW_STEP"); fo && *fo) force_overflow = std::atoll(fo);

  auto data = TokenFile::open(o.data, o.token_dtype);
  if (data->size() < o.seq)
    fail("{}: the file has {} tokens, fewer than one window of --seq {}", o.data, data->size(), o.seq);

  TrainerState st;
  st.seed = o.seed;
  st.token_dtype = token_dtype_name(o.token_dtype);
  st.batch = o.batch;
  st.seq = o.seq;
  st.data_file = o.data;
  st.optimizer_step = 0;
  if (dynamic) st.loss_scale = o.loss_scale_init;
  if (!o.resume_dir.empty()) {
    TrainerState r = load_checkpoint(o.resume_dir, ex);
    const std::string sp = o.resume_dir + "/" + kCheckpointStateFile;
    if (r.batch != o.batch || r.seq != o.seq)
      fail("{}: the checkpoint was trained with --batch {} --seq {}, not --batch {} --seq {}; resuming "
           "with other sizes would not continue the same run",
           sp, r.batch, r.seq, o.batch, o.seq);
    if (r.token_dtype != st.token_dtype)
      fail("{}: the checkpoint's token dtype is {}, not --token-dtype {}", sp, r.token_dtype, st.token_dtype);
    if (r.data_position >= data->size())
      fail("{}: data position {} is beyond the end of {} ({} tokens): another data file?", sp,
           r.data_position, o.data, data->size());
    st.step = r.step;
    st.optimizer_step = r.optimizer_step >= 0 ? r.optimizer_step : r.step;
    st.data_position = r.data_position;
    st.seed = r.seed;
    if (dynamic && r.loss_scale > 0) {
      st.loss_scale = r.loss_scale;
      st.loss_scale_clean_steps = r.loss_scale_clean_steps;
    }
  }

  std::ofstream metrics;
  if (!o.metrics.empty() && lead) metrics = open_metrics(o.metrics, !o.resume_dir.empty(), st.step);

  FILE* ps = o.progress_stream ? o.progress_stream : stderr;
  const int64_t first = st.step + 1, total = o.steps, todo = total - st.step;
  if (todo <= 0 && progress != ProgressMode::None)
    std::fprintf(ps, "already at step %lld of %lld: nothing to do\n", static_cast<long long>(st.step),
                 static_cast<long long>(total));
  const int64_t every = std::max<int64_t>(1, total / 10);

  std::vector<StepMetrics> out;
  std::vector<int64_t> ids(static_cast<size_t>(o.batch * o.seq));
  double elapsed = 0;
  int64_t last_saved = -1, skips_in_a_row = 0;
  for (int64_t T = first; T <= total; ++T) {
    auto t0 = std::chrono::steady_clock::now();
    if (T == kill_step) {
      std::fprintf(stderr, "bmsys-run: rank %lld: BMSYS_TEST_KILL_RANK: %s at step %lld\n",
                   static_cast<long long>(world_rank), hang ? "hanging" : "exiting with status 9",
                   static_cast<long long>(T));
      std::fflush(stderr);
      if (hang)
        for (;;) ::pause();
      ::_exit(9);
    }
    int64_t next = data->read_batch(st.data_position, o.batch, o.seq, ids.data());
    std::map<std::string, HostTensor> in;
    in["input_ids"] = HostTensor::from_i64(
        {local_batch, o.seq},
        std::vector<int64_t>(ids.begin() + rank * local_batch * o.seq, ids.begin() + (rank + 1) * local_batch * o.seq));
    RunOptions ro;
    ro.step = st.optimizer_step + 1;  // the optimizer's T (= T without skipped steps)
    ro.loss_scale = dynamic ? st.loss_scale : 1.0;
    if (dynamic && T == force_overflow) ro.loss_scale *= 1e38;
    auto res = ex.run(o.function, in, ro);
    StepMetrics m;
    m.step = T;
    m.loss = scalar(res, "loss", where);
    m.grad_norm = scalar(res, "grad_norm", where);
    m.lr = scheduled_lr(ex, o.function, ro.step);
    if (!std::isfinite(m.loss)) fail("{}: step {}: the loss is {}; stopping", where, T, m.loss);
    if (dynamic) {
      m.loss_scale = st.loss_scale;
      m.grad_norm /= ro.loss_scale;  // the norm of the scaled gradients
      m.skipped = !std::isfinite(m.grad_norm);
      if (m.skipped) {  // the kernels skipped the update
        st.loss_scale = std::max(min_scale, st.loss_scale / 2);
        st.loss_scale_clean_steps = 0;
        if (++skips_in_a_row >= kMaxConsecutiveSkips)
          fail("{}: step {}: the gradients were not finite in {} consecutive steps (loss scale now {}); "
               "stopping",
               where, T, skips_in_a_row, st.loss_scale);
      } else {
        skips_in_a_row = 0;
        st.optimizer_step = ro.step;
        if (++st.loss_scale_clean_steps >= o.loss_scale_window) {
          st.loss_scale = std::min(max_scale, st.loss_scale * 2);
          st.loss_scale_clean_steps = 0;
        }
      }
    } else {
      st.optimizer_step = ro.step;
    }
    st.step = T;
    st.data_position = next;
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    elapsed += dt;
    m.tokens_per_s = dt > 0 ? static_cast<double>(o.batch * o.seq) / dt : 0;
    out.push_back(m);

    if (metrics.is_open()) {
      json j = {{"step", m.step},       {"loss", num(m.loss)},           {"lr", num(m.lr)},
                {"grad_norm", num(m.grad_norm)}, {"loss_scale", m.loss_scale}, {"skipped", m.skipped},
                {"tokens_per_s", num(m.tokens_per_s)}};
      metrics << j.dump() << "\n";
      metrics.flush();
      if (!metrics) fail("{}: write failed", o.metrics);
    }
    if (progress != ProgressMode::None) {
      const int64_t done = T - first + 1;
      double eta = elapsed / static_cast<double>(done) * static_cast<double>(total - T);
      std::string line = fmt::format("step {}/{}  loss {:.4f}  {:.0f} tokens/s  ETA {}", T, total, m.loss,
                                     m.tokens_per_s, hms(eta));
      if (m.skipped)
        line += fmt::format("  skipped: gradients overflowed at loss scale {}, now {}", m.loss_scale,
                            st.loss_scale);
      if (progress == ProgressMode::Terminal) {
        std::fprintf(ps, "\r\033[K%s%s", line.c_str(), T == total || m.skipped ? "\n" : "");
        std::fflush(ps);
      } else if (T == first || T == total || T % every == 0 || m.skipped) {
        std::fprintf(ps, "%s\n", line.c_str());
        std::fflush(ps);
      }
    }
    if (!o.save_dir.empty() && o.save_every > 0 && T % o.save_every == 0) {
      save_checkpoint(o.save_dir, ex, st);
      last_saved = T;
    }
  }
  if (!o.save_dir.empty() && todo > 0 && last_saved != st.step) save_checkpoint(o.save_dir, ex, st);
  return out;
}

}  // namespace bmsys::rt
