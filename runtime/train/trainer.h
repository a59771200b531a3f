// The training loop of `bmsys-run train` (docs/training.md): each step reads a batch
// of token windows, runs the artifact's train_step function (input "input_ids"
// [B,S] int64, training step T) and reads its scalar outputs "loss" and "grad_norm";
// metrics go to a JSONL file, progress to a stream, checkpoints to a directory.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "runtime/train/token_data.h"

namespace bmsys::rt {

class Executor;

struct StepMetrics {
  int64_t step = 0;
  double loss = 0;
  double lr = 0;  // NaN when the function has no adamw/sgd instruction
  double grad_norm = 0;
  double loss_scale = 1.0;  // L of this step (1 without dynamic loss scaling)
  bool skipped = false;     // dynamic loss scaling: non-finite gradients, no update
  double tokens_per_s = 0;
};

enum class ProgressMode : uint8_t {
  None,      // silent
  Terminal,  // one line updated in place (\r), for a terminal
  Lines,     // plain lines at the first step, every ~10% and the last
};

struct TrainOptions {
  std::string data;  // token file
  TokenDtype token_dtype = TokenDtype::U16;
  int64_t batch = 1;
  int64_t seq = 1;
  int64_t steps = 0;  // train until this step number (total, also when resuming)
  std::string function = "train_step";
  std::string metrics;     // JSONL file, or empty
  std::string save_dir;    // checkpoint directory, or empty
  int64_t save_every = 0;  // also save every K steps (0: only at the end)
  std::string resume_dir;  // checkpoint to resume from, or empty
  uint64_t seed = 0;       // recorded in checkpoints (no randomness is used yet)
  // Dynamic loss scaling (when an instruction of the function has loss_scaling = 1):
  // the initial scale, and the clean steps after which it doubles.
  double loss_scale_init = 65536.0;
  int64_t loss_scale_window = 1000;
  ProgressMode progress = ProgressMode::None;
  FILE* progress_stream = stderr;
};

// The lr of step T by the same schedule the optimizer kernel uses: the first adamw or
// sgd instruction of `function`; NaN when there is none.
double scheduled_lr(const Executor& executor, const std::string& function, int64_t step);

// Whether `function` uses dynamic loss scaling (an instruction with loss_scaling = 1).
bool uses_loss_scaling(const Executor& executor, const std::string& function);

// Consecutive skipped (overflowing) steps after which train() gives up.
inline constexpr int64_t kMaxConsecutiveSkips = 50;

// Runs steps (resume step + 1) .. options.steps; returns their metrics. Throws
// bmsys::rt::Error (naming the file, function or step) on any failure.
std::vector<StepMetrics> train(Executor& executor, const TrainOptions& options);

}  // namespace bmsys::rt
