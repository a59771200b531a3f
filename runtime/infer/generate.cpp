#include "runtime/infer/generate.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <map>
#include <numeric>

#include "runtime/core/error.h"
#include "runtime/core/executor.h"

namespace bmsys::rt {

void check_sampling_options(const SamplingOptions& o) {
  if (!(o.temperature >= 0) || !std::isfinite(o.temperature))
    fail("--temperature must be >= 0, not {}", o.temperature);
  if (o.top_k < 0) fail("--top-k must be >= 0, not {}", o.top_k);
  if (!(o.top_p > 0 && o.top_p <= 1)) fail("--top-p must be in (0, 1], not {}", o.top_p);
  if (!(o.repetition_penalty > 0) || !std::isfinite(o.repetition_penalty))
    fail("--repetition-penalty must be > 0, not {}", o.repetition_penalty);
  if (!std::isfinite(o.frequency_penalty)) fail("--frequency-penalty must be finite");
  if (!std::isfinite(o.presence_penalty)) fail("--presence-penalty must be finite");
}

uint64_t sequence_seed(uint64_t seed, uint64_t index) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (index + 1);  // splitmix64
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

PickOptions pick_options(const SamplingOptions& o) {
  PickOptions p;
  p.temperature = o.temperature;
  p.top_k = o.top_k;
  p.top_p = o.top_p;
  return p;
}

Sampler::Sampler(const SamplingOptions& options, uint64_t seed) : o_(options), rng_(seed) {}

int64_t Sampler::next(const float* logits, int64_t V, const std::vector<int64_t>& context, size_t generated) {
  if (V < 1 || V > INT32_MAX) fail("sampler: a vocabulary of {} tokens", V);
  const size_t n = static_cast<size_t>(V);
  std::vector<double>& x = x_;
  x.resize(n);
  for (size_t i = 0; i < n; ++i) x[i] = std::isnan(logits[i]) ? -INFINITY : logits[i];  // keeps the orders strict
  if (o_.repetition_penalty != 1.0) {  // HF RepetitionPenaltyLogitsProcessor: every token seen
    seen_.assign(n, 0);
    for (int64_t t : context)
      if (t >= 0 && t < V && !seen_[static_cast<size_t>(t)]) {
        seen_[static_cast<size_t>(t)] = 1;
        double& v = x[static_cast<size_t>(t)];
        v = v > 0 ? v / o_.repetition_penalty : v * o_.repetition_penalty;
      }
  }
  if (o_.frequency_penalty != 0 || o_.presence_penalty != 0) {  // OpenAI: the output so far
    std::map<int64_t, int64_t> count;
    for (size_t i = context.size() - std::min(generated, context.size()); i < context.size(); ++i)
      if (context[i] >= 0 && context[i] < V) ++count[context[i]];
    for (const auto& [t, c] : count)
      x[static_cast<size_t>(t)] -= static_cast<double>(c) * o_.frequency_penalty + o_.presence_penalty;
  }
  const PickOptions pick = pick_options(o_);
  // One draw a sampled token, taken before the logits are looked at, so that a decode
  // fed on the device can take the same uniforms ahead (Executor::queue_pick).
  const double u = pick.greedy() ? 0 : uniform();
  return pick_token(x, pick, u, scratch_);
}

namespace {

struct Group {
  Executor& ex;
  const GenerateOptions& o;
  std::vector<std::vector<int64_t>>& out;
  std::vector<Sampler>& samplers;
  std::vector<size_t> idx;  // sequences of this batch, in cache-row order
  std::vector<size_t> generated;
  std::vector<bool> done;

  std::map<std::string, HostTensor> call(const std::vector<int64_t>& ids, int64_t B, int64_t S, int64_t P,
                                         int64_t row) {
    std::map<std::string, HostTensor> in;
    in["input_ids"] = HostTensor::from_i64({B, S}, ids);
    RunOptions ro;
    ro.start_pos = P;
    ro.batch_offset = row;
    return ex.run(o.function, in, ro);
  }

  // Samples sequence b's next token from row r, position s of the logits.
  void accept(size_t b, const std::vector<float>& logits, const Shape& shape, int64_t r, int64_t s) {
    const int64_t S = shape[1], V = shape[2];
    const size_t i = idx[b];
    accept_token(b, samplers[i].next(logits.data() + (r * S + s) * V, V, out[i], generated[b]));
  }
  void accept_token(size_t b, int64_t t) {
    out[idx[b]].push_back(t);
    ++generated[b];
    if (static_cast<int64_t>(generated[b]) >= o.max_new_tokens ||
        std::find(o.stop_ids.begin(), o.stop_ids.end(), t) != o.stop_ids.end())
      done[b] = true;
  }

  std::vector<float> logits(const std::map<std::string, HostTensor>& res, int64_t B, Shape* shape) {
    auto it = res.find("logits");
    if (it == res.end()) fail("{}: function '{}' has no output 'logits'", ex.artifact().path, o.function);
    const HostTensor& t = it->second;
    if (t.shape.size() != 3 || t.shape[0] != B)
      fail("{}: output 'logits' has shape {}, expected [{},S,V]", ex.artifact().path, shape_str(t.shape), B);
    *shape = t.shape;
    return t.to_f32();
  }

  void run() {
    const size_t n = idx.size();
    generated.assign(n, 0);
    done.assign(n, false);
    ex.reset_state();
    Shape shape;
    int64_t Lmax = 0;
    bool same = true;
    for (size_t b = 0; b < n; ++b) {
      const int64_t L = static_cast<int64_t>(out[idx[b]].size());
      same &= b == 0 || L == Lmax;
      Lmax = std::max(Lmax, L);
    }
    if (same) {  // one batched prefill
      std::vector<int64_t> ids;
      for (size_t b = 0; b < n; ++b) ids.insert(ids.end(), out[idx[b]].begin(), out[idx[b]].end());
      auto lg = logits(call(ids, static_cast<int64_t>(n), Lmax, 0, 0), static_cast<int64_t>(n), &shape);
      for (size_t b = 0; b < n; ++b) accept(b, lg, shape, static_cast<int64_t>(b), Lmax - 1);
    } else {
      // Each sequence alone (B = 1) into its own cache row b: its prefill, then decode
      // steps until it holds Lmax positions, so that all rows continue at one P.
      for (size_t b = 0; b < n; ++b) {
        const std::vector<int64_t>& prompt = out[idx[b]];
        int64_t pos = static_cast<int64_t>(prompt.size());
        auto lg = logits(call(prompt, 1, pos, 0, static_cast<int64_t>(b)), 1, &shape);
        accept(b, lg, shape, 0, pos - 1);
        for (; !done[b] && pos < Lmax; ++pos) {
          lg = logits(call({out[idx[b]].back()}, 1, 1, pos, static_cast<int64_t>(b)), 1, &shape);
          accept(b, lg, shape, 0, 0);
        }
      }
    }
    // Batched decode: every row at P; finished rows run along and are ignored.
    if (picks_on_device()) return decode_fed(Lmax);
    for (int64_t P = Lmax; std::find(done.begin(), done.end(), false) != done.end(); ++P) {
      std::vector<int64_t> ids;
      for (size_t b = 0; b < n; ++b) ids.push_back(out[idx[b]].back());
      auto lg = logits(call(ids, static_cast<int64_t>(n), 1, P, 0), static_cast<int64_t>(n), &shape);
      for (size_t b = 0; b < n; ++b)
        if (!done[b]) accept(b, lg, shape, static_cast<int64_t>(b), 0);
    }
  }

  // Without penalties a token depends on nothing but the logits and the sequence's
  // uniform (pick_token), which the backend can take on the device.
  bool picks_on_device() const {
    const SamplingOptions& s = o.sampling;
    return s.repetition_penalty == 1 && s.frequency_penalty == 0 && s.presence_penalty == 0;
  }

  // The batched decode from position P with the next ids chosen on the device: the ids
  // of the first step come from the host (the prefill's), every later step reads its ids
  // from the input buffer the previous step's pick wrote. The host queues step k+1
  // before it reads step k's ids, so its own work per step overlaps the device's. A
  // sampled pick takes each row's next uniform from the sequence's own sampler, as the
  // host loop would, so the tokens are the host's (docs/inference.md).
  void decode_fed(int64_t P) {
    const size_t n = idx.size();
    const int64_t B = static_cast<int64_t>(n);
    uint64_t pending = 0;  // the ticket of the queued step whose ids are not read yet
    for (;; ++P) {
      // Whether any row still needs a step after the pending one (the token limit is
      // known ahead; a stop id shows only when read, and then one queued step is spare).
      bool more = false;
      for (size_t b = 0; b < n; ++b)
        more = more || (!done[b] && static_cast<int64_t>(generated[b]) + (pending ? 1 : 0) < o.max_new_tokens);
      uint64_t next = 0;
      if (more) {
        std::map<std::string, HostTensor> in;
        RunOptions ro;
        ro.start_pos = P;
        ro.queued = true;
        if (pending) {
          in["input_ids"] = HostTensor(DType::I64, {B, 1});
          ro.device_inputs = {"input_ids"};
        } else {
          std::vector<int64_t> ids;
          for (size_t b = 0; b < n; ++b) ids.push_back(out[idx[b]].back());
          in["input_ids"] = HostTensor::from_i64({B, 1}, ids);
        }
        ex.run(o.function, in, ro);
        const PickOptions pick = pick_options(o.sampling);
        std::vector<double> uniforms;
        if (!pick.greedy())
          for (size_t b = 0; b < n; ++b) uniforms.push_back(done[b] ? 0.0 : samplers[idx[b]].uniform());
        next = ex.queue_pick("logits", "input_ids", pick, uniforms);
      }
      if (pending) {
        std::vector<int64_t> ids = ex.picked_ids(pending);
        for (size_t b = 0; b < n; ++b)
          if (!done[b]) accept_token(b, ids[b]);
      }
      if (!more || std::find(done.begin(), done.end(), false) == done.end()) break;
      pending = next;
    }
  }
};

}  // namespace

std::vector<std::vector<int64_t>> generate(Executor& ex, const std::vector<std::vector<int64_t>>& prompts,
                                           const GenerateOptions& o) {
  check_sampling_options(o.sampling);
  const Artifact& a = ex.artifact();
  if (o.max_new_tokens < 0) fail("--max-new-tokens must be >= 0");
  if (prompts.empty()) fail("generate: no prompts");
  for (size_t i = 0; i < prompts.size(); ++i) {
    const int64_t L = static_cast<int64_t>(prompts[i].size());
    const std::string which = prompts.size() > 1 ? fmt::format(" {}", i + 1) : std::string();
    if (L == 0) fail("generate: prompt{} is empty", which);
    if (L + o.max_new_tokens > a.max_seq)
      fail("{}: prompt{} of {} tokens + {} new tokens exceeds max_seq {}", a.path, which, L, o.max_new_tokens,
           a.max_seq);
  }
  std::vector<std::vector<int64_t>> out = prompts;
  if (o.max_new_tokens == 0) return out;
  std::vector<Sampler> samplers;
  for (size_t i = 0; i < prompts.size(); ++i) samplers.emplace_back(o.sampling, sequence_seed(o.seed, i));

  const size_t max_batch = static_cast<size_t>(std::max<int64_t>(1, a.max_batch));
  for (size_t start = 0; start < prompts.size(); start += max_batch) {
    std::vector<size_t> idx;
    for (size_t i = start; i < std::min(prompts.size(), start + max_batch); ++i) idx.push_back(i);
    bool same = true;
    for (size_t i : idx) same &= prompts[i].size() == prompts[idx[0]].size();
    if (same || ex.backend().supports_batch_offset()) {
      Group{ex, o, out, samplers, idx, {}, {}}.run();
    } else {  // no cache row offsets on this backend: one sequence at a time
      for (size_t i : idx) Group{ex, o, out, samplers, {i}, {}, {}}.run();
    }
  }
  return out;
}

}  // namespace bmsys::rt
