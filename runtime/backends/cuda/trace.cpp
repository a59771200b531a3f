#include "runtime/backends/cuda/trace.h"

#include <fmt/format.h>

#include <cstdio>

#include "runtime/backends/cuda/cuda_common.h"
#include "runtime/core/error.h"

namespace bmsys::rt::cuda {

std::string json_escape(const std::string& s) {
  std::string o;
  o.reserve(s.size() + 2);
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      o += fmt::format("\\u{:04x}", static_cast<int>(c));
    } else {
      o += c;
    }
  }
  return o;
}

Tracer::Tracer(std::string path) : path_(std::move(path)) {
  BMSYS_CUDA(cudaEventCreate(&base_), "trace");
}

Tracer::~Tracer() {
  try {
    cudaDeviceSynchronize();
    collect();
    write();
  } catch (...) {
  }
  for (auto& p : pending_) {
    cudaEventDestroy(p.a);
    cudaEventDestroy(p.b);
  }
  for (cudaEvent_t e : pool_) cudaEventDestroy(e);
  if (open_) cudaEventDestroy(open_);
  if (base_) cudaEventDestroy(base_);
}

void Tracer::set_track(int track, const std::string& name) { tracks_.emplace_back(track, name); }

cudaEvent_t Tracer::take() {
  if (!pool_.empty()) {
    cudaEvent_t e = pool_.back();
    pool_.pop_back();
    return e;
  }
  cudaEvent_t e = nullptr;
  BMSYS_CUDA(cudaEventCreate(&e), "trace");
  return e;
}

void Tracer::begin(cudaStream_t stream) {
  if (!base_set_) {
    BMSYS_CUDA(cudaEventRecord(base_, stream), "trace");
    base_set_ = true;
  }
  if (open_) pool_.push_back(open_);
  open_ = take();
  BMSYS_CUDA(cudaEventRecord(open_, stream), "trace");
}

void Tracer::end(cudaStream_t stream, const std::string& name, const char* category, int track,
                 const std::string& args_json) {
  if (!open_) return;
  Pending p;
  p.a = open_;
  open_ = nullptr;
  p.b = take();
  BMSYS_CUDA(cudaEventRecord(p.b, stream), "trace");
  p.name = name;
  p.cat = category;
  p.track = track;
  p.args = args_json;
  pending_.push_back(std::move(p));
}

void Tracer::collect() {
  std::vector<Pending> keep;
  for (auto& p : pending_) {
    if (cudaEventQuery(p.b) != cudaSuccess) {
      cudaGetLastError();
      keep.push_back(p);
      continue;
    }
    float t0 = 0, t1 = 0;
    if (cudaEventElapsedTime(&t0, base_, p.a) == cudaSuccess &&
        cudaEventElapsedTime(&t1, base_, p.b) == cudaSuccess) {
      slices_.push_back(fmt::format(
          "{{\"name\":\"{}\",\"cat\":\"{}\",\"ph\":\"X\",\"pid\":1,\"tid\":{},\"ts\":{:.3f},"
          "\"dur\":{:.3f},\"args\":{}}}",
          json_escape(p.name), p.cat, p.track, t0 * 1000.0, (t1 - t0) * 1000.0,
          p.args.empty() ? "{}" : p.args));
    } else {
      cudaGetLastError();
    }
    pool_.push_back(p.a);
    pool_.push_back(p.b);
  }
  pending_ = std::move(keep);
}

void Tracer::write() {
  if (path_.empty()) return;
  std::string out = "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n";
  out += "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"args\":{\"name\":\"bmsys cuda\"}}";
  for (auto& t : tracks_)
    out += fmt::format(
        ",\n{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":{},\"args\":{{\"name\":\"{}\"}}}}",
        t.first, json_escape(t.second));
  for (auto& s : slices_) out += ",\n" + s;
  out += "\n]}\n";
  FILE* f = std::fopen(path_.c_str(), "wb");
  if (!f) fail("cuda backend: cannot write the trace file {}", path_);
  std::fwrite(out.data(), 1, out.size(), f);
  std::fclose(f);
}

}  // namespace bmsys::rt::cuda
