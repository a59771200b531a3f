// bmsys-bench-int8: the INT8 kernels of linear_int8 against their bf16 counterparts, in
// one process on one GPU:
//   - GEMM 8192^3: cuBLASLt INT8 (int32 out) and the whole INT8-activation linear
//     (per-token quantization + INT8 GEMM + rescale to bf16) against cuBLASLt bf16;
//   - decode GEMV (one row of x) per Llama-7B shape: the weight-only INT8 GEMV against
//     cuBLASLt bf16 and the own bf16 GEMV, as time and weight bytes streamed per second;
//   - pinned host -> device copy bandwidth (the link the memory schedule streams over),
//     for 256 MiB copies from cudaHostAlloc memory.
// bmsys-bench-int8 [--out int8.json]
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "runtime/backends/cuda/gemm.h"
#include "runtime/backends/cuda/int8.h"
#include "runtime/backends/cuda/kernels.h"
#include "runtime/core/error.h"

using namespace bmsys::rt;
using json = nlohmann::json;

namespace {

#define CK(x) ::bmsys::rt::cuda::check_cuda((x), #x, "bench-int8")

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Median over `reps` timings of `inner` back-to-back calls of f, in ms per call.
template <class F>
double time_ms(cudaStream_t s, F&& f, int reps = 9, int inner = 1) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i) f();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    CK(cudaEventRecord(a, s));
    for (int i = 0; i < inner; ++i) f();
    CK(cudaEventRecord(b, s));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms / inner);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return median(t);
}

void* dmalloc(size_t n) {
  void* p = nullptr;
  CK(cudaMalloc(&p, n));
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bmsys-bench-int8: INT8 GEMM / GEMV rates against bf16, pinned H2D bandwidth"};
  std::string out;
  app.add_option("--out", out, "JSON results");
  CLI11_PARSE(app, argc, argv);
  try {
    json res;
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    res["gpu"] = prop.name;
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cuda::Launch L;
    L.stream = s;
    const size_t ws_bytes = 32u << 20;
    void* ws = dmalloc(ws_bytes);
    cuda::Gemm gemm(ws_bytes);
    gemm.set_workspace(ws);
    cuda::GemmInt8 gi8;
    gi8.set_workspace(ws, ws_bytes);

    // --- GEMM 8192^3 ---------------------------------------------------------------------
    {
      const int64_t n = 8192;
      void* x = dmalloc(n * n * 2);
      void* w = dmalloc(n * n * 2);
      void* y = dmalloc(n * n * 2);
      int8_t* xq = static_cast<int8_t*>(dmalloc(n * n));
      int8_t* q = static_cast<int8_t*>(dmalloc(n * n));
      int32_t* acc = static_cast<int32_t*>(dmalloc(n * n * 4));
      float* scale = static_cast<float*>(dmalloc(n * 4));
      cuda::fill_random(L, DType::BF16, x, n * n, 2, 1.f);
      cuda::fill_random(L, DType::BF16, w, n * n, 3, 1.f);
      cuda::fill_random_int8(L, xq, n * n, 4);
      cuda::fill_random_int8(L, q, n * n, 5);
      cuda::fill_random(L, DType::F32, scale, n, 6, 0.01f);
      cuda::GemmArgs g;
      g.dtype = DType::BF16;
      g.x = x;
      g.w = w;
      g.y = y;
      g.M = g.N = g.K = n;
      const double flop = 2.0 * n * n * n;
      const double bf16_ms = time_ms(s, [&] { gemm.run(g, s); });
      if (!gi8.supported(xq, q, acc, n, n, n)) fail("cuBLASLt has no INT8 GEMM for 8192^3");
      const double i8_ms = time_ms(s, [&] { gi8.run(xq, q, acc, n, n, n, s); });
      cuda::LinearInt8Args a;
      a.dtype = DType::BF16;
      a.x = x;
      a.q = q;
      a.scale = scale;
      a.y = y;
      a.M = a.N = a.K = n;
      a.int8_activations = true;
      const size_t sb = cuda::linear_int8_scratch_bytes(a);
      void* scratch = dmalloc(sb);
      const double lin_ms = time_ms(s, [&] { cuda::linear_int8(L, a, gi8, gemm, scratch, sb); });
      res["gemm_8192"] = {{"bf16_ms", bf16_ms},
                          {"bf16_TFLOPs", flop / bf16_ms / 1e9},
                          {"int8_ms", i8_ms},
                          {"int8_TOPs", flop / i8_ms / 1e9},
                          {"int8_speedup", bf16_ms / i8_ms},
                          {"int8_linear_ms", lin_ms},
                          {"int8_linear_speedup", bf16_ms / lin_ms}};
      std::printf("GEMM 8192^3: bf16 %.3f ms (%.0f TFLOP/s); INT8 cuBLASLt %.3f ms (%.0f TOP/s) = %.2fx; "
                  "INT8 linear incl. quantize + rescale %.3f ms = %.2fx\n",
                  bf16_ms, flop / bf16_ms / 1e9, i8_ms, flop / i8_ms / 1e9, bf16_ms / i8_ms, lin_ms,
                  bf16_ms / lin_ms);
      std::fflush(stdout);
      for (void* p : {x, w, y, static_cast<void*>(xq), static_cast<void*>(q), static_cast<void*>(acc),
                      static_cast<void*>(scale), scratch})
        CK(cudaFree(p));
    }

    // --- decode GEMVs: weight bytes streamed per second ----------------------------------
    {
      const int64_t shapes[][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}, {32000, 4096}};
      // Several distinct weight copies so consecutive launches do not hit in L2.
      const int copies = 8;
      const size_t maxw = 32000 * 4096;
      std::vector<void*> wb, wq;
      for (int c = 0; c < copies; ++c) {
        wb.push_back(dmalloc(maxw * 2));
        wq.push_back(dmalloc(maxw));
        cuda::fill_random(L, DType::BF16, wb.back(), maxw, 10 + c, 0.02f);
        cuda::fill_random_int8(L, static_cast<int8_t*>(wq.back()), maxw, 20 + c);
      }
      void* x = dmalloc(8 * 11008 * 2);  // up to 8 rows (batched decode)
      void* y = dmalloc(8 * 32000 * 2);
      float* scale = static_cast<float*>(dmalloc(32000 * 4));
      cuda::fill_random(L, DType::BF16, x, 8 * 11008, 7, 1.f);
      cuda::fill_random(L, DType::F32, scale, 32000, 8, 0.01f);
      json gv = json::object();
      for (auto& sh : shapes) {
        const int64_t N = sh[0], K = sh[1];
        int c = 0;
        const double i8 = time_ms(s, [&] {
          cuda::gemv_int8(L, DType::BF16, y, x, static_cast<int8_t*>(wq[c]), scale, nullptr, 1, K, N);
          c = (c + 1) % copies;
        }, 7, 16);
        c = 0;
        const double i8s = time_ms(s, [&] {
          cuda::gemv_int8(L, DType::BF16, y, x, static_cast<int8_t*>(wq[c]), scale, nullptr, 1, K, N, false);
          c = (c + 1) % copies;
        }, 7, 16);
        c = 0;
        const double bl = time_ms(s, [&] {
          cuda::GemmArgs g;
          g.dtype = DType::BF16;
          g.x = x;
          g.w = wb[c];
          g.y = y;
          g.M = 1;
          g.N = N;
          g.K = K;
          gemm.run(g, s);
          c = (c + 1) % copies;
        }, 7, 16);
        c = 0;
        const double own = time_ms(s, [&] {
          cuda::GemvJob j;
          j.w = wb[c];
          j.y = y;
          j.N = N;
          cuda::gemv(L, DType::BF16, x, 1, K, &j, 1, prop.multiProcessorCount, 2);
          c = (c + 1) % copies;
        }, 7, 16);
        gv[fmt::format("{}x{}", N, K)] = {{"int8_us", i8 * 1e3},
                                          {"int8_GBps", N * K / (i8 * 1e-3) / 1e9},
                                          {"int8_simt_us", i8s * 1e3},
                                          {"bf16_cublaslt_us", bl * 1e3},
                                          {"bf16_row_us", own * 1e3},
                                          {"speedup_vs_best_bf16", std::min(bl, own) / i8}};
        std::printf("GEMV %lldx%lld: INT8 weight-only %.1f us (%.0f GB/s of weights; SIMT kernel %.1f us); "
                    "bf16 cuBLASLt %.1f us, own %.1f us -> %.2fx\n",
                    static_cast<long long>(N), static_cast<long long>(K), i8 * 1e3,
                    N * K / (i8 * 1e-3) / 1e9, i8s * 1e3, bl * 1e3, own * 1e3, std::min(bl, own) / i8);
      }
      res["gemv"] = gv;
      // Batched decode (M rows of x): the tensor-core GEMV's products cover up to 2 rows in
      // one mma (3 for 8 rows); the SIMT GEMV's instructions grow with every row.
      json gm = json::object();
      for (int64_t M : {2, 4, 8})
        for (auto& sh : shapes) {
          const int64_t N = sh[0], K = sh[1];
          double t[2];
          for (int tc = 0; tc < 2; ++tc) {
            int c = 0;
            t[tc] = time_ms(s, [&] {
              cuda::gemv_int8(L, DType::BF16, y, x, static_cast<int8_t*>(wq[c]), scale, nullptr, M, K, N, tc == 0);
              c = (c + 1) % copies;
            }, 7, 16);
          }
          gm[fmt::format("M{}:{}x{}", M, N, K)] = {{"tensor_core_us", t[0] * 1e3}, {"simt_us", t[1] * 1e3}};
          std::printf("GEMV M=%lld %lldx%lld: INT8 tensor cores %.1f us, SIMT %.1f us -> %.2fx\n",
                      static_cast<long long>(M), static_cast<long long>(N), static_cast<long long>(K), t[0] * 1e3,
                      t[1] * 1e3, t[1] / t[0]);
        }
      res["gemv_batched"] = gm;
      for (void* p : wb) CK(cudaFree(p));
      for (void* p : wq) CK(cudaFree(p));
      CK(cudaFree(x));
      CK(cudaFree(y));
      CK(cudaFree(scale));
    }

    // --- pinned host -> device bandwidth --------------------------------------------------
    {
      const size_t n = 256u << 20;
      void* h = nullptr;
      CK(cudaHostAlloc(&h, n, cudaHostAllocDefault));
      std::memset(h, 1, n);
      void* d = dmalloc(n);
      const double ms = time_ms(s, [&] { CK(cudaMemcpyAsync(d, h, n, cudaMemcpyHostToDevice, s)); }, 7);
      res["pinned_h2d_GBps"] = n / (ms * 1e-3) / 1e9;
      std::printf("pinned host -> device: %.1f GB/s (256 MiB copies)\n", n / (ms * 1e-3) / 1e9);
      CK(cudaFree(d));
      CK(cudaFreeHost(h));
    }
    CK(cudaFree(ws));
    CK(cudaStreamDestroy(s));
    if (!out.empty()) std::ofstream(out) << res.dump(1) << "\n";
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bmsys-bench-int8: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
