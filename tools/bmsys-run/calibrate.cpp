// `bmsys-run calibrate` (docs/autofit.md "Calibration"). Every rate is measured
// through the Backend interface the executor uses, so it is what bmsys itself
// achieves on this machine: GEMMs are `linear` launches, attention an `attention`
// launch, memory bandwidth an `add` launch over vectors much larger than any cache,
// host copies the backend's upload / copy_to_host, collectives the communicator
// the training runs would use.
#include "tools/bmsys-run/calibrate.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>

#include "runtime/backends/backend.h"
#include "runtime/core/error.h"
#include "runtime/core/kernels.h"

namespace bmsys::rt {

namespace {

using Clock = std::chrono::steady_clock;

// Seconds per call of `fn`: one warm-up call, then repetitions until `budget`
// seconds have passed (at least 3), with a synchronize before the clock stops.
double time_per_call(Backend& be, double budget, const std::function<void()>& fn) {
  fn();
  be.synchronize();
  int reps = 0;
  auto start = Clock::now();
  double elapsed = 0;
  do {
    fn();
    ++reps;
    if (reps % 4 == 0 || reps < 3) {
      be.synchronize();
      elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    }
  } while (reps < 3 || elapsed < budget);
  be.synchronize();
  elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  return elapsed / reps;
}

// The median of `reps` values of `fn` (a device time in seconds) after `warmup` calls.
double device_median(const std::function<double()>& fn, int warmup, int reps) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> v;
  for (int i = 0; i < reps; ++i) v.push_back(fn());
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Tensor {
  std::unique_ptr<DeviceMemory> mem;
  TensorView view;
};

Tensor make_tensor(Backend& be, DType dtype, Shape shape, const std::string& what) {
  Tensor t;
  t.view.dtype = dtype;
  t.view.shape = std::move(shape);
  t.mem = be.allocate(t.view.bytes(), what);
  t.view.data = t.mem->data();
  // Small values: GEMMs on denormals or infinities would not time the common case.
  std::vector<float> host(static_cast<size_t>(std::min<int64_t>(t.view.numel(), int64_t(1) << 20)));
  for (size_t i = 0; i < host.size(); ++i) host[i] = 0.01f * static_cast<float>((i * 7919) % 97) - 0.48f;
  const int64_t n = t.view.numel();
  const size_t elt = dtype_size(dtype);
  for (int64_t off = 0; off < n; off += static_cast<int64_t>(host.size())) {
    int64_t count = std::min<int64_t>(static_cast<int64_t>(host.size()), n - off);
    be.upload(static_cast<char*>(t.view.data) + off * elt, dtype, host.data(), DType::F32, count);
  }
  return t;
}

void run_launch(Backend& be, KernelId id, const Attrs& attrs, std::vector<TensorView> in,
                std::vector<TensorView> out, int64_t batch, int64_t seq) {
  KernelLaunch l;
  l.kernel = id;
  l.attrs = &attrs;
  l.inputs = std::move(in);
  l.outputs = std::move(out);
  l.ctx.batch = l.ctx.max_batch = batch;
  l.ctx.seq = l.ctx.max_seq = seq;
  check_launch(l);
  be.launch(l);
}

}  // namespace

void calibrate(const CalibrateOptions& o, const DistributedEnv& env) {
  BackendOptions bo;
  bo.threads = o.threads;
  bo.device = env.local_rank;
  std::string device = o.device == "auto" ? default_backend() : o.device;
  std::shared_ptr<Backend> be = create_backend(device, bo);
  const bool rank0 = env.rank == 0;
  const bool gpu = device != "cpu";
  DType dtype = DType::F32;
  if (!o.dtype.empty()) {
    std::optional<DType> d;
    if (o.dtype == "f32") d = DType::F32;
    if (o.dtype == "bf16") d = DType::BF16;
    if (o.dtype == "f16") d = DType::F16;
    if (!d || !be->supports_dtype(*d))
      fail("calibrate: --dtype {} is not supported by the {} backend (f32, bf16 or f16)", o.dtype, device);
    dtype = *d;
  } else if (be->supports_dtype(DType::BF16)) {
    dtype = DType::BF16;
  }
  const std::string dname = dtype_name(dtype);
  nlohmann::json j;
  j["format"] = "bmsys-calibration";
  j["version"] = 1;
  j["device"] = be->description();
  j["backend"] = device;
  j["source"] = fmt::format("bmsys-run calibrate{} on {} ranks", o.quick ? " --quick" : "", env.world_size);
  j["memory_bytes"] = gpu ? static_cast<int64_t>(be->device_memory_bytes())
                          : static_cast<int64_t>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGESIZE);
  j["host_memory_bytes"] = static_cast<int64_t>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGESIZE);
  j["workspace_bytes"] = 0;
  auto say = [&](const std::string& s) {
    if (rank0) std::fprintf(stderr, "calibrate: %s\n", s.c_str());
  };

  if (rank0) {
    // GEMMs: y[1,n,n] = x[1,n,n] · w[n,n]ᵀ at a few sizes, from launch-bound to compute-bound.
    std::vector<int64_t> sizes = gpu ? std::vector<int64_t>{512, 1024, 2048, 4096, 8192}
                                     : std::vector<int64_t>{64, 128, 256, 512};
    if (o.quick) sizes = {32, 64};
    Attrs none;
    nlohmann::json gemm = nlohmann::json::array();
    for (int64_t n : sizes) {
      Tensor x = make_tensor(*be, dtype, {1, n, n}, "calibration x");
      Tensor w = make_tensor(*be, dtype, {n, n}, "calibration w");
      Tensor y = make_tensor(*be, dtype, {1, n, n}, "calibration y");
      double t = time_per_call(*be, o.seconds, [&] { run_launch(*be, KernelId::Linear, none, {x.view, w.view}, {y.view}, 1, n); });
      double flops = 2.0 * n * n * n;
      gemm.push_back({flops, flops / t});
      say(fmt::format("gemm {}^3 {}: {:.3g} s, {:.3g} FLOP/s", n, dname, t, flops / t));
    }
    j["gemm"][dname] = gemm;

    // Attention: causal, no cache.
    {
      int64_t heads = gpu ? 32 : 4, dim = gpu ? 128 : 32, s = gpu ? 4096 : 256;
      if (o.quick) heads = 2, dim = 16, s = 32;
      Attrs a;
      a.set("num_heads", int_attr(heads));
      a.set("num_kv_heads", int_attr(heads));
      a.set("head_dim", int_attr(dim));
      a.set("scale", float_attr(1.0 / std::sqrt(double(dim))));
      a.set("causal", int_attr(1));
      Tensor q = make_tensor(*be, dtype, {1, s, heads * dim}, "calibration q");
      Tensor k = make_tensor(*be, dtype, {1, s, heads * dim}, "calibration k");
      Tensor v = make_tensor(*be, dtype, {1, s, heads * dim}, "calibration v");
      Tensor y = make_tensor(*be, dtype, {1, s, heads * dim}, "calibration attention y");
      double t = time_per_call(*be, o.seconds, [&] {
        run_launch(*be, KernelId::Attention, a, {q.view, k.view, v.view}, {y.view}, 1, s);
      });
      double flops = 4.0 * heads * s * ((s + 1) / 2.0) * dim;
      j["attention"][dname] = flops / t;
      say(fmt::format("attention S={} H={} D={}: {:.3g} s, {:.3g} FLOP/s", s, heads, dim, t, flops / t));
    }

    // Memory bandwidth: y = a + b over vectors far larger than the caches.
    {
      int64_t n = gpu ? (int64_t(1) << 28) : (int64_t(1) << 24);
      if (o.quick) n = int64_t(1) << 20;
      Attrs none2;
      Tensor a = make_tensor(*be, DType::F32, {n}, "calibration a");
      Tensor b = make_tensor(*be, DType::F32, {n}, "calibration b");
      Tensor y = make_tensor(*be, DType::F32, {n}, "calibration y");
      double t = time_per_call(*be, o.seconds, [&] { run_launch(*be, KernelId::Add, none2, {a.view, b.view}, {y.view}, 1, 1); });
      double bw = 3.0 * n * 4 / t;
      j["memory_bandwidth"] = bw;
      say(fmt::format("memory bandwidth (add, read+write): {:.3g} B/s", bw));

      // Launch latency: the time of a tiny kernel.
      Tensor sa = make_tensor(*be, DType::F32, {256}, "calibration small a");
      Tensor sy = make_tensor(*be, DType::F32, {256}, "calibration small y");
      double tl = time_per_call(*be, o.seconds, [&] { run_launch(*be, KernelId::Add, none2, {sa.view, sa.view}, {sy.view}, 1, 1); });
      j["launch_latency_s"] = tl;
      say(fmt::format("launch latency: {:.3g} s", tl));

      if (gpu && be->last_flush_seconds() >= 0) {
        // Device time per kernel inside a replayed CUDA graph: the backend captures a
        // flush it has seen before and replays it (a decode step is such a flush).
        const int kernels = o.quick ? 8 : 256;
        auto flush = [&] {
          for (int i = 0; i < kernels; ++i) run_launch(*be, KernelId::Add, none2, {sa.view, sa.view}, {sy.view}, 1, 1);
          be->synchronize();
          return be->last_flush_seconds();
        };
        double tg = device_median(flush, 3, 7) / kernels;
        j["graph_kernel_latency_s"] = tg;
        say(fmt::format("kernel in a replayed graph: {:.3g} s", tg));
      }
    }

    // Decode GEMVs: y[1,1,N] = x[1,1,K] . w[N,K]^T streams the weight once; the rate
    // against the weight's bytes (copies cycled so that no launch finds its weight in L2).
    if (gpu && be->last_flush_seconds() >= 0) {
      std::vector<std::pair<int64_t, int64_t>> shapes = {{2048, 2048}, {4096, 4096}, {11008, 4096}, {32000, 4096}};
      if (o.quick) shapes = {{64, 64}};
      Attrs none3;
      nlohmann::json gemv = nlohmann::json::array();
      for (auto [N, K] : shapes) {
        const double wbytes = double(N) * K * dtype_size(dtype);
        const int copies = static_cast<int>(std::clamp(std::ceil(256e6 / wbytes), 3.0, 32.0));
        std::vector<Tensor> ws;
        for (int c = 0; c < copies; ++c) ws.push_back(make_tensor(*be, dtype, {N, K}, "calibration gemv w"));
        Tensor x = make_tensor(*be, dtype, {1, 1, K}, "calibration gemv x");
        Tensor y = make_tensor(*be, dtype, {1, 1, N}, "calibration gemv y");
        auto flush = [&] {
          for (int c = 0; c < copies; ++c) run_launch(*be, KernelId::Linear, none3, {x.view, ws[c].view}, {y.view}, 1, 1);
          be->synchronize();
          return be->last_flush_seconds();
        };
        double t = device_median(flush, 3, 7) / copies;
        gemv.push_back({wbytes, wbytes / t});
        say(fmt::format("gemv {}x{} {}: {:.3g} s, {:.3g} B/s of weights", N, K, dname, t, wbytes / t));
      }
      j["gemv"] = gemv;
    }
  }

  // Collectives, with several ranks: bus bandwidth as nccl-tests defines it.
  if (env.world_size > 1) {
    std::shared_ptr<Communicator> comm = create_communicator(env, *be);
    const int p = env.world_size;
    int64_t n = gpu ? (int64_t(1) << 28) : (int64_t(1) << 22);  // elements of f32
    if (o.quick) n = int64_t(1) << 16;
    Tensor full = make_tensor(*be, DType::F32, {n}, "calibration collective buffer");
    Tensor shard = make_tensor(*be, DType::F32, {shard_size(n, p)}, "calibration shard");
    const double bytes = double(n) * 4;
    // Every rank must make the same calls: the repetitions are agreed on from the
    // mean time of one call, then the mean over the ranks of the mean per call.
    auto timed = [&](const std::function<void()>& fn) {
      auto once = [&] {
        comm->barrier();
        auto start = Clock::now();
        fn();
        be->synchronize();
        double t = std::chrono::duration<double>(Clock::now() - start).count();
        comm->all_reduce_host_f64(&t, 1);
        return t / p;
      };
      once();  // warm-up
      const double first = once();
      const int reps = static_cast<int>(std::clamp(o.seconds / std::max(first, 1e-9), 3.0, 1000.0));
      comm->barrier();
      auto start = Clock::now();
      for (int i = 0; i < reps; ++i) fn();
      be->synchronize();
      double t = std::chrono::duration<double>(Clock::now() - start).count() / reps;
      comm->all_reduce_host_f64(&t, 1);
      return t / p;
    };
    double ar = timed([&] { comm->all_reduce(full.view.data, DType::F32, n, ReduceOp::Sum); });
    double rs = timed([&] { comm->reduce_scatter(full.view.data, DType::F32, n, shard.view.data, ReduceOp::Sum); });
    double ag = timed([&] { comm->all_gather(shard.view.data, DType::F32, full.view.data, n); });
    double lat = timed([&] { comm->all_reduce(full.view.data, DType::F32, 1, ReduceOp::Sum); });
    nlohmann::json c;
    c["ranks"] = p;
    c["communicator"] = comm->name();
    c["all_reduce"] = bytes * 2.0 * (p - 1) / p / ar;
    c["reduce_scatter"] = bytes * double(p - 1) / p / rs;
    c["all_gather"] = bytes * double(p - 1) / p / ag;
    c["latency_s"] = lat;
    j["collectives"] = c;
    say(fmt::format("{} ranks ({}): all_reduce {:.3g}, reduce_scatter {:.3g}, all_gather {:.3g} B/s bus bandwidth, latency {:.3g} s",
                    p, comm->name(), c["all_reduce"].get<double>(), c["reduce_scatter"].get<double>(),
                    c["all_gather"].get<double>(), lat));
  }
  // Host <-> device copies as the memory schedule's swaps and the optimizer offload's
  // copies make them: from and into the backend's host memory (pinned on CUDA), the
  // host-to-device ones through a swap slot. Last: a backend that swaps runs without
  // CUDA graphs from then on.
  {
    const size_t hb = size_t(4) << (gpu ? 26 : 22) >> (o.quick ? 8 : 0);
    std::unique_ptr<DeviceMemory> host = be->allocate_host(hb, "calibration host copies");
    std::memset(host->data(), 1, hb);
    Tensor dev = make_tensor(*be, DType::F32, {static_cast<int64_t>(hb / 4)}, "calibration copy target");
    double th = time_per_call(*be, o.seconds, [&] {
      be->swap_in(0, dev.view.data, host->data(), hb);
      be->acquire_slot(0);  // the synchronize that ends the timing waits for the copy
      be->release_slot(0);
    });
    double td = time_per_call(*be, o.seconds, [&] { be->copy_to_host(host->data(), dev.view.data, hb); });
    j["h2d_bandwidth"] = hb / th;
    j["d2h_bandwidth"] = hb / td;
    say(fmt::format("host to device {:.3g} B/s, device to host {:.3g} B/s (host memory of the backend)", hb / th,
                    hb / td));
  }

  // The CUDA backend runs collectives on their own stream, ordered by events on the
  // buffers they touch (docs/distributed.md), so the cost model may overlap them with
  // compute; the CPU backend runs every instruction in order.
  j["overlap"] = gpu;

  if (rank0) {
    std::ofstream out(o.output);
    if (!out) fail("{}: cannot open for writing", o.output);
    out << j.dump(2) << "\n";
    if (!out) fail("{}: write failed", o.output);
    std::printf("wrote %s\n", o.output.c_str());
  }
}

}  // namespace bmsys::rt
