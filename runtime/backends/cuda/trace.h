// Chrome trace-event output (open in Perfetto or chrome://tracing): one track per CUDA
// stream, one slice per kernel, GEMM, copy or graph replay, timed with CUDA events
// recorded around each piece of work. Events resolve after the stream synchronizes;
// the file is written when the tracer is destroyed (or by write()).
#pragma once

#include <cuda_runtime.h>

#include <string>
#include <vector>

namespace bmsys::rt::cuda {

class Tracer {
 public:
  explicit Tracer(std::string path);
  ~Tracer();
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  void set_track(int track, const std::string& name);
  // begin() before enqueueing work on `stream`, end() after it; returns nothing to keep.
  void begin(cudaStream_t stream);
  void end(cudaStream_t stream, const std::string& name, const char* category, int track,
           const std::string& args_json);
  // Turns completed event pairs into slices (call after synchronizing).
  void collect();
  void write();
  const std::string& path() const { return path_; }

 private:
  cudaEvent_t take();
  struct Pending {
    cudaEvent_t a = nullptr, b = nullptr;
    std::string name, args;
    const char* cat = "";
    int track = 0;
  };
  std::string path_;
  cudaEvent_t base_ = nullptr;
  bool base_set_ = false;
  cudaEvent_t open_ = nullptr;
  std::vector<Pending> pending_;
  std::vector<cudaEvent_t> pool_;
  std::vector<std::string> slices_;
  std::vector<std::pair<int, std::string>> tracks_;
};

std::string json_escape(const std::string& s);

}  // namespace bmsys::rt::cuda
