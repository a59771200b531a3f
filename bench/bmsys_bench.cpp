// bmsys-bench: measures, in one process on one GPU,
//   - the ceilings: device copy bandwidth (read + write), bf16 GEMM rate (cuBLASLt,
//     8192^3), the GEMV weight-streaming rate;
//   - a compiled model with random weights (`--random-weights`, filled on the device):
//     batch-1 greedy decode tokens/s through the executor (the bmsys-run path), the
//     device time per step, prefill of N tokens (TFLOP/s), decode variants with the
//     backend's switches off, a trace of one decode step and the memory plan.
// Prints a summary and writes everything as JSON (--out).
//
// bmsys-bench --artifact m.bmsys --weights model.safetensors [--dtype bf16] [--prefill 2048]
//             [--prompt 16] [--new 128] [--trace decode_step.json] [--out bench.json]
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "runtime/backends/cuda/compute_dtype.h"
#include "runtime/backends/cuda/cuda_backend.h"
#include "runtime/backends/cuda/gemm.h"
#include "runtime/backends/cuda/kernels.h"
#include "runtime/core/artifact.h"
#include "runtime/core/error.h"
#include "runtime/core/executor.h"
#include "runtime/infer/generate.h"

using namespace bmsys::rt;
using json = nlohmann::json;

namespace {

#define CK(x) ::bmsys::rt::cuda::check_cuda((x), #x, "bench")

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Timer {
  cudaEvent_t a, b;
  Timer() {
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
  }
  ~Timer() {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  }
  template <class F>
  double ms(F&& f, cudaStream_t s) {
    CK(cudaEventRecord(a, s));
    f();
    CK(cudaEventRecord(b, s));
    CK(cudaEventSynchronize(b));
    float t = 0;
    CK(cudaEventElapsedTime(&t, a, b));
    return t;
  }
};

json ceilings() {
  json r;
  cudaStream_t s;
  CK(cudaStreamCreate(&s));
  Timer tm;
  // Device copy, 2 GiB: bytes read + bytes written.
  {
    const size_t n = size_t(2) << 30;
    void *a, *b;
    CK(cudaMalloc(&a, n));
    CK(cudaMalloc(&b, n));
    cuda::Launch L;
    L.stream = s;
    cuda::fill_random(L, DType::BF16, a, n / 2, 1, 1.f);
    for (int i = 0; i < 3; ++i) CK(cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, s));
    std::vector<double> t;
    for (int i = 0; i < 10; ++i)
      t.push_back(tm.ms([&] { CK(cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, s)); }, s));
    r["copy_GBps"] = 2.0 * n / (median(t) * 1e-3) / 1e9;
    CK(cudaFree(a));
    CK(cudaFree(b));
  }
  // bf16 GEMM 8192^3 through cuBLASLt (the backend's Gemm), random data.
  {
    const int64_t n = 8192;
    void *x, *w, *y;
    CK(cudaMalloc(&x, n * n * 2));
    CK(cudaMalloc(&w, n * n * 2));
    CK(cudaMalloc(&y, n * n * 2));
    cuda::Launch L;
    L.stream = s;
    cuda::fill_random(L, DType::BF16, x, n * n, 2, 1.f);
    cuda::fill_random(L, DType::BF16, w, n * n, 3, 1.f);
    cuda::Gemm g(32 << 20);
    void* ws;
    CK(cudaMalloc(&ws, 32 << 20));
    g.set_workspace(ws);
    cuda::GemmArgs a;
    a.dtype = DType::BF16;
    a.x = x;
    a.w = w;
    a.y = y;
    a.M = a.N = a.K = n;
    for (int i = 0; i < 3; ++i) g.run(a, s);
    std::vector<double> t;
    for (int i = 0; i < 10; ++i) t.push_back(tm.ms([&] { g.run(a, s); }, s));
    r["bf16_gemm_TFLOPs"] = 2.0 * n * n * n / (median(t) * 1e-3) / 1e12;
    // GEMV (x of one row) weight-streaming rates per shape: the pipelined (3) and row (2)
    // kernels and cuBLASLt, 10 back-to-back launches per timing, each on
    // its own copy of the weights in a 1 GiB pool so that (as in a decode step) they come
    // from HBM, not from L2.
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    const size_t pool_bytes = size_t(1) << 30;
    void* wpool;
    CK(cudaMalloc(&wpool, pool_bytes));
    cuda::fill_random(L, DType::BF16, wpool, static_cast<int64_t>(pool_bytes / 2), 4, 1.f);
    json gv = json::object();
    const int64_t shapes[][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}, {32000, 4096}};
    for (auto& sh : shapes) {
      const int64_t N = sh[0], K = sh[1];
      const size_t wbytes = static_cast<size_t>(N * K) * 2;
      const int copies = static_cast<int>(pool_bytes / wbytes);  // >= 3 for these shapes
      int next = 0;
      cuda::GemvJob j;
      j.y = y;
      j.N = N;
      json row;
      for (int variant : {0, 3, 2}) {
        auto once = [&] {
          j.w = static_cast<char*>(wpool) + (next++ % copies) * wbytes;
          if (variant == 0) {
            cuda::GemmArgs ga;
            ga.dtype = DType::BF16;
            ga.x = x;
            ga.w = j.w;
            ga.y = y;
            ga.M = 1;
            ga.N = N;
            ga.K = K;
            g.run(ga, s);
          } else {
            cuda::gemv(L, DType::BF16, x, 1, K, &j, 1, prop.multiProcessorCount, variant);
          }
        };
        for (int i = 0; i < 3; ++i) once();
        t.clear();
        for (int i = 0; i < 7; ++i)
          t.push_back(tm.ms([&] { for (int k = 0; k < 10; ++k) once(); }, s) / 10);
        row[variant == 0 ? "cublaslt" : variant == 3 ? "pipelined" : "row"] =
            2.0 * N * K / (median(t) * 1e-3) / 1e9;
      }
      gv[fmt::format("{}x{}", N, K)] = row;
    }
    r["gemv_GBps"] = gv;
    r["gemv_weight_GBps"] = gv["11008x4096"]["cublaslt"];
    CK(cudaFree(wpool));
    CK(cudaFree(x));
    CK(cudaFree(w));
    CK(cudaFree(y));
    CK(cudaFree(ws));
  }
  CK(cudaStreamDestroy(s));
  return r;
}

struct PlanInfo {
  uint64_t weight_bytes = 0, activation = 0, state = 0, inputs = 0;
  // What a decode step reads of the weights: all of them but the embedding tables, of
  // which it reads one row per token (INT8 weights count 1 byte, their scales 4).
  uint64_t streamed_weight_bytes = 0;
  int64_t weights = 0;
  std::string text;
};

PlanInfo plan_of(const Artifact& a) {
  PlanInfo p;
  std::vector<bool> table(a.buffers.size(), false), other(a.buffers.size(), false);
  if (const FunctionDesc* f = a.find_function("forward"))
    for (const InstructionDesc& in : f->instructions)
      for (size_t k = 0; k < in.inputs.size(); ++k)
        (in.kernel == KernelId::Embedding && k == 1 ? table : other)[in.inputs[k]] = true;
  for (size_t i = 0; i < a.buffers.size(); ++i) {
    const BufferDesc& b = a.buffers[i];
    if (b.kind == BufferKind::Weight) {
      const uint64_t bytes = static_cast<uint64_t>(shape_numel(b.resolve(0, 0))) * dtype_size(b.dtype);
      p.weight_bytes += bytes;
      if (!table[i] || other[i]) p.streamed_weight_bytes += bytes;  // a tied table is also read whole
      p.weights++;
    } else if (b.kind == BufferKind::Input) {
      p.inputs += static_cast<uint64_t>(shape_numel(b.resolve(a.max_batch, a.max_seq))) * dtype_size(b.dtype);
    }
  }
  p.activation = a.activation_pool_bytes;
  p.state = a.state_pool_bytes;
  p.text = fmt::format(
      "memory plan (max_batch={}, max_seq={}): weights {:.3f} GB in {} tensors; activation pool "
      "{:.1f} MB (planned for the compiled dtype; the run uses at most that); state pool (KV "
      "cache) {:.1f} MB; inputs {} B; total {:.3f} GB",
      a.max_batch, a.max_seq, p.weight_bytes / 1e9, p.weights, p.activation / 1e6, p.state / 1e6,
      p.inputs, (p.weight_bytes + p.activation + p.state + p.inputs) / 1e9);
  return p;
}

// FLOPs of one forward over T tokens at start position 0 (GEMMs + attention).
double forward_flops(const Artifact& a, int64_t T) {
  const FunctionDesc* f = a.find_function("forward");
  double fl = 0;
  for (const InstructionDesc& in : f->instructions) {
    if (in.kernel == KernelId::Linear) {
      Shape w = a.buffers[in.inputs[1]].resolve(1, T);
      fl += 2.0 * T * w[0] * w[1];
    } else if (in.kernel == KernelId::Attention) {
      double nq = in.attrs.get_int("num_heads"), d = in.attrs.get_int("head_dim");
      bool causal = in.attrs.get_int("causal") != 0;
      double pairs = causal ? T * (T + 1) / 2.0 : double(T) * T;
      fl += 4.0 * nq * d * pairs;
    }
  }
  return fl;
}

int64_t argmax_last(const HostTensor& logits) {
  std::vector<float> v = logits.to_f32();
  int64_t S = logits.shape[1], V = logits.shape[2];
  const float* row = v.data() + (S - 1) * V;
  return std::max_element(row, row + V) - row;
}

struct Model {
  size_t free_before = 0;
  std::shared_ptr<const Artifact> art;
  std::shared_ptr<CudaBackend> be;
  std::unique_ptr<Executor> ex;
};

Model load(const std::string& path, const std::string& weights, DType dt, uint64_t seed,
           bool print) {
  Model m;
  m.art = with_compute_dtype(load_artifact(path), dt);
  // Device memory free before the backend exists (the CUDA context is already made).
  CK(cudaFree(nullptr));
  size_t total = 0;
  CK(cudaMemGetInfo(&m.free_before, &total));
  BackendOptions o;
  o.random_weights = true;
  o.random_seed = seed;
  m.be = std::make_shared<CudaBackend>(o);
  PlanInfo p = plan_of(*m.art);
  m.be->check_memory_plan(p.weight_bytes + p.activation + p.state + p.inputs, p.text);
  ExecutorOptions eo;
  eo.weights = weights;
  double t0 = now_s();
  m.ex = std::make_unique<Executor>(m.art, m.be, eo);
  m.be->synchronize();
  if (print) {
    std::printf("%s\n", p.text.c_str());
    std::printf("loaded (random weights on the device) in %.2f s\n%s\n", now_s() - t0,
                m.be->memory_report().c_str());
  }
  return m;
}

struct DecodeResult {
  double tok_s = 0, step_wall_ms = 0, step_device_ms = 0, host_ms = 0, launch_us = 0;
  int64_t replays = 0;
  std::vector<int64_t> tokens;
};

// With `so`, each token is sampled on the host (runtime/infer/generate.h's Sampler,
// seeded with 1) instead of the argmax.
DecodeResult decode(Model& m, const std::vector<int64_t>& prompt, int64_t n, const SamplingOptions* so = nullptr) {
  DecodeResult r;
  std::unique_ptr<Sampler> sampler = so ? std::make_unique<Sampler>(*so, 1) : nullptr;
  m.ex->reset_state();
  std::vector<int64_t> chunk = prompt;
  int64_t P = 0;
  std::vector<double> wall, dev;
  auto before = m.be->stats();
  double t0 = 0;
  for (int64_t i = 0; i <= n; ++i) {
    double s0 = now_s();
    auto out = m.ex->run("forward", {{"input_ids", HostTensor::from_i64({1, int64_t(chunk.size())}, chunk)}}, P);
    int64_t next = 0;
    if (sampler) {
      const HostTensor& lg = out.at("logits");
      const std::vector<float> v = lg.to_f32();
      const int64_t S = lg.shape[1], V = lg.shape[2];
      next = sampler->next(v.data() + (S - 1) * V, V, r.tokens, r.tokens.size());
    } else {
      next = argmax_last(out.at("logits"));
    }
    double s1 = now_s();
    if (i == 0) {
      t0 = s1;  // decode time starts after the prompt
    } else {
      wall.push_back((s1 - s0) * 1e3);
      dev.push_back(m.be->stats().last_flush_ms);
    }
    P += static_cast<int64_t>(chunk.size());
    r.tokens.push_back(next);
    chunk = {next};
  }
  double total = now_s() - t0;
  r.tok_s = n / total;
  r.step_wall_ms = median(wall);
  r.step_device_ms = median(dev);
  r.host_ms = r.step_wall_ms - r.step_device_ms;
  r.replays = m.be->stats().graph_replays - before.graph_replays;
  r.launch_us = (m.be->stats().launch_host_us - before.launch_host_us) / (n + 1);
  return r;
}

// The same decode as decode(), fed on the device (bmsys-run generate's path): each step
// is queued before the previous step's id is read, the id picked on the device (argmax,
// or with `so` a draw with the sampler's next uniform) written straight into the next
// step's input. Wall time only.
DecodeResult decode_fed(Model& m, const std::vector<int64_t>& prompt, int64_t n, const SamplingOptions* so = nullptr) {
  DecodeResult r;
  std::unique_ptr<Sampler> sampler = so ? std::make_unique<Sampler>(*so, 1) : nullptr;
  const PickOptions pick = so ? pick_options(*so) : PickOptions{};
  auto queue = [&] {
    return sampler ? m.ex->queue_pick("logits", "input_ids", pick, {sampler->uniform()})
                   : m.ex->queue_pick("logits", "input_ids");
  };
  m.ex->reset_state();
  RunOptions ro;
  ro.queued = true;
  m.ex->run("forward", {{"input_ids", HostTensor::from_i64({1, int64_t(prompt.size())}, prompt)}}, ro);
  r.tokens.push_back(m.ex->picked_ids(queue()).at(0));
  const double t0 = now_s();  // decode time starts after the prompt
  ro.device_inputs = {"input_ids"};
  uint64_t pending = 0;
  for (int64_t i = 0; i < n; ++i) {
    ro.start_pos = static_cast<int64_t>(prompt.size()) + i;
    m.ex->run("forward", {{"input_ids", HostTensor(DType::I64, {1, 1})}}, ro);
    const uint64_t next = queue();
    if (pending) r.tokens.push_back(m.ex->picked_ids(pending).at(0));
    pending = next;
  }
  if (pending) r.tokens.push_back(m.ex->picked_ids(pending).at(0));
  const double total = now_s() - t0;
  r.tok_s = n / total;
  r.step_wall_ms = total * 1e3 / n;
  return r;
}

json trace_summary(const std::string& path) {
  std::ifstream in(path);
  json j = json::parse(in);
  std::map<std::string, std::pair<int, double>> agg;
  double first = 1e300, last = 0, busy = 0;
  for (auto& e : j["traceEvents"]) {
    if (e["ph"] != "X" || e["cat"] != "kernel") continue;
    double ts = e["ts"], dur = e["dur"];
    auto& a = agg[e["name"].get<std::string>()];
    a.first++;
    a.second += dur;
    busy += dur;
    first = std::min(first, ts);
    last = std::max(last, ts + dur);
  }
  json s = json::array();
  std::vector<std::pair<std::string, std::pair<int, double>>> v(agg.begin(), agg.end());
  std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second.second > b.second.second; });
  for (auto& kv : v) s.push_back({{"name", kv.first}, {"count", kv.second.first}, {"us", kv.second.second}});
  return {{"slices", s}, {"busy_us", busy}, {"span_us", last > first ? last - first : 0}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bmsys-bench: decode/prefill throughput of a compiled model on the GPU"};
  std::string artifact, weights, dtype = "bf16", trace, out;
  int64_t prefill = 2048, prompt_len = 16, new_tokens = 128, variant_tokens = 64;
  uint64_t seed = 1;
  bool variants = true, skip_ceilings = false;
  app.add_option("--artifact", artifact, "compiled model (.bmsys)")->required();
  app.add_option("--weights", weights, "the safetensors file (its data region is never read)")->required();
  app.add_option("--dtype", dtype, "bf16 | fp16 | fp32");
  app.add_option("--prefill", prefill, "prefill length (0: skip)");
  app.add_option("--prompt", prompt_len, "decode prompt length");
  app.add_option("--new", new_tokens, "decode tokens timed");
  app.add_option("--variant-tokens", variant_tokens, "decode tokens per switch variant");
  app.add_option("--seed", seed, "random weights seed");
  app.add_option("--trace", trace, "write the trace of one decode step here");
  app.add_option("--out", out, "JSON results");
  app.add_flag("!--no-variants", variants, "skip the switch variants");
  app.add_flag("--skip-ceilings", skip_ceilings, "do not measure copy/GEMM ceilings");
  CLI11_PARSE(app, argc, argv);

  try {
    json res;
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    res["gpu"] = prop.name;
    if (!skip_ceilings) {
      res["ceilings"] = ceilings();
      std::printf("ceilings: %s\n", res["ceilings"].dump().c_str());
      std::fflush(stdout);
    }
    DType dt = parse_compute_dtype(dtype);
    Model m = load(artifact, weights, dt, seed, true);
    PlanInfo plan = plan_of(*m.art);
    res["weight_bytes"] = plan.weight_bytes;
    res["streamed_weight_bytes"] = plan.streamed_weight_bytes;
    res["memory_plan"] = plan.text;
    res["memory_report"] = m.be->memory_report();
    res["backend"] = m.be->description();
    if (m.art->schedule.present())  // bmsys-memory-schedule: the bytes each token moves
      res["schedule"] = {{"bytes_per_token", m.art->schedule.bytes_per_token},
                         {"swapped_layers", m.art->schedule.groups},
                         {"budget", m.art->schedule.budget}};
    std::printf("%s\n", m.be->description().c_str());

    std::mt19937 rng(7);
    std::vector<int64_t> prompt(prompt_len);
    const int64_t V = m.art->buffers[m.art->find_function("forward")->outputs[0]].dims.back().value;
    for (auto& t : prompt) t = static_cast<int64_t>(rng() % static_cast<uint64_t>(V > 0 ? V : 32000));

    // Decode: a warm-up run (captures the decode graph), then the timed run.
    decode(m, prompt, 8);
    DecodeResult d = decode(m, prompt, new_tokens);
    res["decode"] = {{"tok_s", d.tok_s}, {"step_wall_ms", d.step_wall_ms},
                     {"step_device_ms", d.step_device_ms}, {"host_ms_per_step", d.host_ms},
                     {"graph_replays", d.replays}, {"tokens", new_tokens}, {"prompt", prompt_len},
                     {"backend_queue_us_per_step", d.launch_us}};
    {
      // Device memory this process holds beyond the free memory seen before the backend was
      // made (allocator pool incl. its cache, cuBLASLt, streams; not the CUDA context).
      size_t fr = 0, total = 0;
      CK(cudaMemGetInfo(&fr, &total));
      res["device_bytes_held"] = static_cast<int64_t>(m.free_before) - static_cast<int64_t>(fr);
      res["memory_report_after_decode"] = m.be->memory_report();
    }
    std::printf("decode: %.1f tok/s (median step %.3f ms wall, %.3f ms device, graph replays %lld; "
                "host: %.0f us/step in the backend's launch queue, the rest in the executor and copies)\n",
                d.tok_s, d.step_wall_ms, d.step_device_ms, static_cast<long long>(d.replays), d.launch_us);
    if (res.contains("ceilings")) {
      double bound = res["ceilings"]["copy_GBps"].get<double>() * 1e9 / plan.weight_bytes;
      res["decode"]["bound_tok_s"] = bound;
      res["decode"]["share_of_bound"] = d.tok_s / bound;
      res["decode"]["device_share_of_bound"] = (1e3 / d.step_device_ms) / bound;
      std::printf("decode bound (weights / copy bandwidth): %.1f tok/s -> %.1f%% (device time only: %.1f%%)\n",
                  bound, 100 * d.tok_s / bound, 100 * (1e3 / d.step_device_ms) / bound);
    }
    // The same decode fed on the device (no host round trip between steps).
    decode_fed(m, prompt, 8);
    DecodeResult df = decode_fed(m, prompt, new_tokens);
    const bool fed_same = df.tokens == d.tokens;
    res["decode_fed"] = {{"tok_s", df.tok_s}, {"step_wall_ms", df.step_wall_ms}, {"same_tokens", fed_same}};
    std::printf("decode fed on the device: %.1f tok/s (%.3f ms/step wall), tokens %s\n", df.tok_s, df.step_wall_ms,
                fed_same ? "identical" : "DIFFERENT");
    if (res.contains("ceilings")) {
      double bound = res["ceilings"]["copy_GBps"].get<double>() * 1e9 / plan.weight_bytes;
      res["decode_fed"]["share_of_bound"] = df.tok_s / bound;
      std::printf("decode fed on the device: %.1f%% of the bound\n", 100 * df.tok_s / bound);
    }
    // Sampled decode (temperature 0.8, top-p 0.9): the host loop, which reads the logits
    // and samples each token on the host, against the pick fed on the device (pick.cu).
    {
      SamplingOptions so;
      so.temperature = 0.8;
      so.top_p = 0.9;
      decode(m, prompt, 8, &so);
      DecodeResult sh = decode(m, prompt, new_tokens, &so);
      decode_fed(m, prompt, 8, &so);
      DecodeResult sf = decode_fed(m, prompt, new_tokens, &so);
      const bool same = sh.tokens == sf.tokens;
      res["decode_sampled"] = {{"temperature", so.temperature}, {"top_p", so.top_p}, {"host_tok_s", sh.tok_s},
                               {"fed_tok_s", sf.tok_s}, {"same_tokens", same}};
      std::printf("decode sampled (T 0.8, top-p 0.9): fed on the device %.1f tok/s, host loop %.1f tok/s "
                  "(%.3f ms/step wall, %.3f ms device), tokens %s\n",
                  sf.tok_s, sh.tok_s, sh.step_wall_ms, sh.step_device_ms, same ? "identical" : "DIFFERENT");
    }
    std::fflush(stdout);

    // Trace of one decode step (eager launches, one slice per kernel).
    if (!trace.empty()) {
      m.ex->reset_state();
      m.ex->run("forward", {{"input_ids", HostTensor::from_i64({1, prompt_len}, prompt)}}, 0);
      m.be->set_trace(trace);
      m.ex->run("forward", {{"input_ids", HostTensor::from_i64({1, 1}, {prompt[0]})}}, prompt_len);
      m.be->set_trace("");
      json ts = trace_summary(trace);
      res["decode_trace"] = ts;
      std::printf("trace of one decode step (eager, per kernel; %s): busy %.1f us over a %.1f us span\n",
                  trace.c_str(), ts["busy_us"].get<double>(), ts["span_us"].get<double>());
      for (auto& s : ts["slices"])
        std::printf("  %-28s x%-4d %9.1f us\n", s["name"].get<std::string>().c_str(), s["count"].get<int>(),
                    s["us"].get<double>());
    }

    // Prefill.
    if (prefill > 0) {
      std::vector<int64_t> ids(prefill);
      for (auto& t : ids) t = static_cast<int64_t>(rng() % static_cast<uint64_t>(V > 0 ? V : 32000));
      std::vector<double> dev, wall;
      for (int i = 0; i < 5; ++i) {
        m.ex->reset_state();
        double s0 = now_s();
        m.ex->run("forward", {{"input_ids", HostTensor::from_i64({1, prefill}, ids)}}, 0);
        double s1 = now_s();
        if (i >= 2) {
          dev.push_back(m.be->stats().last_flush_ms);
          wall.push_back((s1 - s0) * 1e3);
        }
      }
      if (!trace.empty()) {
        std::string pt = trace.substr(0, trace.rfind('.')) + "_prefill.json";
        m.ex->reset_state();
        m.be->set_trace(pt);
        m.ex->run("forward", {{"input_ids", HostTensor::from_i64({1, prefill}, ids)}}, 0);
        m.be->set_trace("");
        json ts = trace_summary(pt);
        res["prefill_trace"] = ts;
        std::printf("trace of one prefill (eager): busy %.1f us over a %.1f us span\n",
                    ts["busy_us"].get<double>(), ts["span_us"].get<double>());
        int shown = 0;
        for (auto& s : ts["slices"])
          if (shown++ < 12)
            std::printf("  %-28s x%-4d %9.1f us\n", s["name"].get<std::string>().c_str(), s["count"].get<int>(),
                        s["us"].get<double>());
      }
      double fl = forward_flops(*m.art, prefill);
      double tf = fl / (median(dev) * 1e-3) / 1e12;
      res["prefill"] = {{"tokens", prefill}, {"device_ms", median(dev)}, {"wall_ms", median(wall)},
                        {"TFLOP", fl / 1e12}, {"TFLOPs", tf}};
      std::printf("prefill %lld tokens: %.2f ms device (%.2f ms wall incl. logits copy), %.2f TFLOP -> %.1f TFLOP/s\n",
                  static_cast<long long>(prefill), median(dev), median(wall), fl / 1e12, tf);
      if (res.contains("ceilings")) {
        double share = tf / res["ceilings"]["bf16_gemm_TFLOPs"].get<double>();
        res["prefill"]["share_of_gemm"] = share;
        std::printf("prefill share of the measured bf16 GEMM rate: %.1f%%\n", 100 * share);
      }
      std::fflush(stdout);
    }
    res["stats"] = {{"flushes", m.be->stats().flushes}, {"graph_captures", m.be->stats().graph_captures},
                    {"graph_replays", m.be->stats().graph_replays},
                    {"launches_saved", m.be->stats().launches_saved}};
    std::vector<int64_t> ref_tokens = d.tokens;
    m = Model{};

    // Switch variants (each a fresh backend: the switches are read at creation).
    if (variants) {
      json vs = json::array();
      const std::pair<const char*, const char*> vars[] = {{"BMSYS_CUDA_GRAPHS", "0"},
                                                          {"BMSYS_CUDA_PDL", "0"},
                                                          {"BMSYS_CUDA_FUSE", "0"},
                                                          {"BMSYS_CUDA_FORK", "0"},
                                                          {"BMSYS_CUDA_GEMV", "1"},
                                                          {"BMSYS_CUDA_GEMV", "3"},
                                                          {"BMSYS_CUDA_GEMV", "2"},
                                                          {"BMSYS_CUDA_GEMV", "0"}};
      for (auto [var, val] : vars) {
        setenv(var, val, 1);
        Model mv = load(artifact, weights, dt, seed, false);
        decode(mv, prompt, 8);
        DecodeResult r = decode(mv, prompt, variant_tokens);
        bool same = std::equal(r.tokens.begin(), r.tokens.end(), ref_tokens.begin());
        vs.push_back({{"off", fmt::format("{}={}", var, val)}, {"tok_s", r.tok_s},
                      {"step_device_ms", r.step_device_ms}, {"step_wall_ms", r.step_wall_ms},
                      {"same_tokens", same}});
        std::printf("variant %s=%s: %.1f tok/s (device %.3f ms/step), tokens %s\n", var, val, r.tok_s,
                    r.step_device_ms, same ? "identical" : "different (other rounding)");
        std::fflush(stdout);
        unsetenv(var);
      }
      res["variants"] = vs;
    }
    if (!out.empty()) std::ofstream(out) << res.dump(1) << "\n";
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bmsys-bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
