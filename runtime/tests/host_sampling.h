// The token-by-token host loop that generate() (runtime/infer/generate.h) replaces with a
// decode fed on the device: the same tokens are expected from both, on every backend.
#pragma once

#include <vector>

#include "runtime/core/executor.h"
#include "runtime/infer/generate.h"

namespace bmsys::rt::test {

// Sequence 0 of generate(ex, {prompt}, o) decoded one step at a time: each token sampled
// on the host from the last position's logits, by the sampler of sequence 0.
inline std::vector<int64_t> host_loop_generate(Executor& ex, std::vector<int64_t> prompt, const GenerateOptions& o) {
  Sampler s(o.sampling, sequence_seed(o.seed, 0));
  ex.reset_state();
  std::vector<int64_t> chunk = prompt;
  int64_t P = 0;
  const size_t prompt_len = prompt.size();
  while (static_cast<int64_t>(prompt.size() - prompt_len) < o.max_new_tokens) {
    RunOptions ro;
    ro.start_pos = P;
    auto out = ex.run(o.function, {{"input_ids", HostTensor::from_i64({1, static_cast<int64_t>(chunk.size())}, chunk)}}, ro);
    const HostTensor& lg = out.at("logits");
    const int64_t S = lg.shape[1], V = lg.shape[2];
    const std::vector<float> v = lg.to_f32();
    const int64_t next = s.next(v.data() + (S - 1) * V, V, prompt, prompt.size() - prompt_len);
    P += static_cast<int64_t>(chunk.size());
    prompt.push_back(next);
    chunk = {next};
    bool stop = false;
    for (int64_t id : o.stop_ids) stop = stop || id == next;
    if (stop) break;
  }
  return prompt;
}

}  // namespace bmsys::rt::test
