// Training checkpoints (docs/training.md "Checkpoints"). A checkpoint is a directory:
//
//   model.safetensors      every Weight buffer as float32 under its weight_key (the
//                          Hugging Face name), one tensor per key (tied weights once)
//   config.json            the artifact's model_config (the HF config.json text)
//   optimizer.safetensors  every OptimizerState buffer under its buffer name
//   trainer_state.json     step, optimizer step, data position, seed, token dtype,
//                          batch, seq, the loss scale (dynamic loss scaling), and the
//                          size and FNV-1a 64 checksum of each of the three files above
//
// save_checkpoint() writes everything into DIR.tmp-<pid>, fsyncs it, then swaps it in
// (renameat2 RENAME_EXCHANGE, or rename the old one aside first) and removes the old
// one, so a crash never leaves a partial checkpoint at DIR. load_checkpoint() checks
// every size and checksum and every tensor's presence and shape against the artifact
// before it changes any buffer; errors name the file.
#pragma once

#include <cstdint>
#include <string>

namespace bmsys::rt {

class Executor;

struct TrainerState {
  int64_t step = 0;           // the last completed training step
  int64_t data_position = 0;  // in tokens: where the next batch starts
  uint64_t seed = 0;
  std::string token_dtype = "u16";
  int64_t batch = 0;
  int64_t seq = 0;
  std::string data_file;  // informational
  // Updates the optimizer has applied (its step T): equal to `step` unless dynamic
  // loss scaling skipped some steps. -1 when loading an older checkpoint: take `step`.
  int64_t optimizer_step = -1;
  // Dynamic loss scaling (docs/training.md): the current scale and the clean steps
  // since it last changed. loss_scale 0: not used (not written).
  double loss_scale = 0;
  int64_t loss_scale_clean_steps = 0;
};

inline constexpr const char* kCheckpointModelFile = "model.safetensors";
inline constexpr const char* kCheckpointConfigFile = "config.json";
inline constexpr const char* kCheckpointOptimizerFile = "optimizer.safetensors";
inline constexpr const char* kCheckpointStateFile = "trainer_state.json";

void save_checkpoint(const std::string& dir, const Executor& executor, const TrainerState& state);
// Loads weights and optimizer state into `executor`; returns the trainer state.
TrainerState load_checkpoint(const std::string& dir, Executor& executor);

// FNV-1a 64 of a file's bytes as 16 hex digits; `size` receives its length.
std::string fnv1a64_file(const std::string& path, uint64_t* size);

}  // namespace bmsys::rt
