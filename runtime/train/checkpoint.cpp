#include "runtime/train/checkpoint.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "runtime/collectives/communicator.h"
#include "runtime/core/error.h"
#include "runtime/core/executor.h"
#include "runtime/io/safetensors.h"

namespace bmsys::rt {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const char* const kChecked[] = {kCheckpointModelFile, kCheckpointConfigFile, kCheckpointOptimizerFile};

std::string join(const std::string& dir, const std::string& file) {
  return !dir.empty() && dir.back() == '/' ? dir + file : dir + "/" + file;
}

void fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open to sync: {}", path, std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) fail("{}: fsync failed: {}", path, std::strerror(err));
}

void write_text(const std::string& path, const std::string& text) {
  FILE* fp = std::fopen(path.c_str(), "wb");
  if (!fp) fail("{}: cannot open for writing: {}", path, std::strerror(errno));
  int err = 0;
  if (std::fwrite(text.data(), 1, text.size(), fp) != text.size()) err = errno;
  if (std::fflush(fp) != 0 && !err) err = errno;
  if (std::fclose(fp) != 0 && !err) err = errno;
  if (err) fail("{}: write failed: {}", path, std::strerror(err));
}

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Leftovers of saves that were interrupted (killed, power loss) by a process that is
// gone: DIR.tmp-<pid> (a partial new checkpoint: never complete, removed), and
// DIR.old-<pid> when DIR itself is complete again (in the fallback's window between two
// renames it is the only copy of the previous checkpoint, so otherwise it is kept).
void remove_stale_leftovers(const std::string& dir) {
  fs::path d(dir);
  fs::path parent = d.has_parent_path() ? d.parent_path() : fs::path(".");
  const std::string base = d.filename().string();
  const bool complete = fs::exists(d / kCheckpointStateFile);
  std::error_code ec;
  std::vector<fs::path> stale;
  for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    for (const std::string kind : {".tmp-", ".old-"}) {
      const std::string prefix = base + kind;
      if (name.rfind(prefix, 0) != 0 || !all_digits(name.substr(prefix.size()))) continue;
      const long pid = std::atol(name.c_str() + prefix.size());
      if (pid == ::getpid()) continue;
      if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // still running
      if (kind == ".old-" && !complete) continue;
      stale.push_back(it->path());
    }
  }
  for (const fs::path& p : stale) {
    std::fprintf(stderr, "bmsys-run: removing %s, left by an interrupted checkpoint save\n", p.c_str());
    fs::remove_all(p, ec);
  }
}

std::string parent_of(const std::string& dir) {
  fs::path p = fs::absolute(fs::path(dir)).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();
  return p.parent_path().string();
}

}  // namespace

void write_checkpoint_files(const std::string& dir, const Artifact& a, const TrainerState& st,
                            const std::map<std::string, HostTensor>& weights,
                            const std::map<std::string, HostTensor>& states);

std::string fnv1a64_file(const std::string& path, uint64_t* size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  uint64_t h = 0xcbf29ce484222325ull, n = 0;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    std::streamsize got = in.gcount();
    for (std::streamsize i = 0; i < got; ++i) {
      h ^= static_cast<uint8_t>(buf[i]);
      h *= 0x100000001b3ull;
    }
    n += static_cast<uint64_t>(got);
  }
  if (in.bad()) fail("{}: read failed", path);
  if (size) *size = n;
  return fmt::format("{:016x}", h);
}

void save_checkpoint(const std::string& dir_in, const Executor& ex, const TrainerState& st) {
  std::string dir = dir_in;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const Artifact& a = ex.artifact();
  // Always whole tensors: sharded buffers are gathered from every rank (a collective:
  // every rank gathers, in buffer order), and rank 0 alone writes.
  std::map<std::string, HostTensor> weights, states;
  // bmsys-offload: an offloaded parameter is saved from its float32 host master (what
  // the optimizer updates), not from its device copy (which may be bf16).
  for (uint32_t i = 0; i < a.buffers.size(); ++i) {
    const BufferDesc& b = a.buffers[i];
    if (b.kind == BufferKind::Weight && b.host() && !weights.count(b.weight_key))
      weights.emplace(b.weight_key, ex.read_logical(i, DType::F32));
  }
  for (uint32_t i = 0; i < a.buffers.size(); ++i) {
    const BufferDesc& b = a.buffers[i];
    if (b.kind == BufferKind::Weight && !weights.count(b.weight_key))
      weights.emplace(b.weight_key, ex.read_logical(i, DType::F32));
    else if (b.kind == BufferKind::OptimizerState)
      states.emplace(b.name, ex.read_logical(i, b.dtype));
  }
  if (ex.rank() != 0) {
    ex.comm().barrier();  // until rank 0 has written it
    return;
  }
  write_checkpoint_files(dir, a, st, weights, states);
  ex.comm().barrier();
}

void write_checkpoint_files(const std::string& dir, const Artifact& a, const TrainerState& st,
                            const std::map<std::string, HostTensor>& weights,
                            const std::map<std::string, HostTensor>& states) {
  const std::string tmp = fmt::format("{}.tmp-{}", dir, ::getpid());
  std::error_code ec;
  remove_stale_leftovers(dir);
  fs::remove_all(tmp, ec);
  if (!fs::create_directories(tmp, ec) && ec)
    fail("{}: cannot create the checkpoint directory: {}", tmp, ec.message());
  try {
    // Weights: float32 under their HF key, once per key.
    const std::map<std::string, std::string> meta = {{"format", "pt"}};
    write_safetensors(join(tmp, kCheckpointModelFile), weights, meta);
    // Test hook: BMSYS_TEST_KILL_DURING_SAVE=1 dies here, with part of the new
    // checkpoint written (docs/training.md; test/e2e/checkpoint_faults.test).
    if (const char* k = std::getenv("BMSYS_TEST_KILL_DURING_SAVE"); k && *k && std::string(k) != "0") {
      std::fprintf(stderr, "bmsys-run: BMSYS_TEST_KILL_DURING_SAVE: exiting with status 9 in the middle of saving %s\n",
                   tmp.c_str());
      std::fflush(stderr);
      ::_exit(9);
    }
    write_safetensors(join(tmp, kCheckpointOptimizerFile), states, meta);
    write_text(join(tmp, kCheckpointConfigFile), a.model_config.empty() ? "{}\n" : a.model_config);

    json files = json::object();
    for (const char* f : kChecked) {
      uint64_t size = 0;
      std::string sum = fnv1a64_file(join(tmp, f), &size);
      files[f] = {{"bytes", size}, {"fnv1a64", sum}};
    }
    json state = {{"format", "bmsys-trainer-state"},
                  {"version", 1},
                  {"step", st.step},
                  {"data_position", st.data_position},
                  {"seed", st.seed},
                  {"token_dtype", st.token_dtype},
                  {"batch", st.batch},
                  {"seq", st.seq},
                  {"data_file", st.data_file},
                  {"files", files}};
    state["optimizer_step"] = st.optimizer_step >= 0 ? st.optimizer_step : st.step;
    if (st.loss_scale > 0) {
      state["loss_scale"] = st.loss_scale;
      state["loss_scale_clean_steps"] = st.loss_scale_clean_steps;
    }
    write_text(join(tmp, kCheckpointStateFile), state.dump(2) + "\n");
    for (const char* f : kChecked) fsync_path(join(tmp, f), false);
    fsync_path(join(tmp, kCheckpointStateFile), false);
    fsync_path(tmp, true);

    // Swap it into place.
    if (fs::exists(dir)) {
      if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) != 0) {
        // No atomic exchange here (filesystem or kernel): rename the old one aside.
        const std::string old = fmt::format("{}.old-{}", dir, ::getpid());
        fs::remove_all(old, ec);
        if (std::rename(dir.c_str(), old.c_str()) != 0)
          fail("{}: cannot move the previous checkpoint aside: {}", dir, std::strerror(errno));
        if (std::rename(tmp.c_str(), dir.c_str()) != 0)
          fail("{}: cannot rename {} into place: {} (the previous checkpoint is at {})", dir, tmp,
               std::strerror(errno), old);
        fsync_path(parent_of(dir), true);
        fs::remove_all(old, ec);
      } else {
        fsync_path(parent_of(dir), true);
        fs::remove_all(tmp, ec);  // now holds the previous checkpoint
      }
    } else {
      if (std::rename(tmp.c_str(), dir.c_str()) != 0)
        fail("{}: cannot rename {} into place: {}", dir, tmp, std::strerror(errno));
      fsync_path(parent_of(dir), true);
    }
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

namespace {

// The integers of trainer_state.json. nlohmann's get<int64_t>() converts a number
// written as a float with static_cast: 3.5 silently becomes 3 and 9.3e74 is an
// out-of-range conversion (UB). So a number must be an integer in the JSON, within
// the range of its field; the caller prefixes the file's path to the error.
int64_t get_int(const json& j, const char* key) {
  const json& v = j.at(key);
  if (!v.is_number_integer())
    fail("'{}' must be an integer, not {}", key, v.dump());
  // An unsigned JSON number above INT64_MAX: is_number_unsigned, out of range.
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    fail("'{}' is {}, larger than {}", key, v.dump(), INT64_MAX);
  return v.get<int64_t>();
}
int64_t get_int(const json& j, const char* key, int64_t fallback) {
  return j.contains(key) ? get_int(j, key) : fallback;
}
uint64_t get_uint(const json& j, const char* key) {
  const json& v = j.at(key);
  if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0))
    fail("'{}' must be a non-negative integer, not {}", key, v.dump());
  return v.get<uint64_t>();
}

// Checks a safetensors file of the checkpoint against the tensors the artifact
// expects (name -> buffer indices); every tensor present with the buffer's shape and
// a float dtype, and nothing else in the file.
void check_tensors(const SafetensorsFile& f, const Artifact& a,
                   const std::map<std::string, std::vector<uint32_t>>& want, const char* what) {
  for (const auto& [name, idx] : want) {
    const BufferDesc& b = a.buffers[idx.front()];
    if (!f.contains(name))
      fail("{}: no tensor '{}' ({} of buffer '{}' in {})", f.path(), name, what, b.name, a.path);
    const SafetensorsInfo& info = f.info(name);
    Shape shape = b.logical_shape();
    if (info.shape != shape)
      fail("{}: tensor '{}' has shape {}, but the artifact's buffer '{}' is {} ({})", f.path(), name,
           shape_str(info.shape), b.name, shape_str(shape), a.path);
    if (!dtype_is_float(info.dtype))
      fail("{}: tensor '{}' is {}, not a float tensor", f.path(), name, dtype_name(info.dtype));
  }
  for (const std::string& name : f.names())
    if (!want.count(name))
      fail("{}: tensor '{}' is not {} of the artifact {} (a checkpoint of another model?)", f.path(),
           name, what, a.path);
}

}  // namespace

TrainerState load_checkpoint(const std::string& dir, Executor& ex) {
  const Artifact& a = ex.artifact();
  if (!fs::is_directory(dir)) {
    // An interrupted save's fallback window: the previous checkpoint is at DIR.old-<pid>.
    std::string d = dir;
    while (d.size() > 1 && d.back() == '/') d.pop_back();
    fs::path p(d);
    std::error_code ec;
    for (fs::directory_iterator it(p.has_parent_path() ? p.parent_path() : fs::path("."), ec), end;
         !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string(), prefix = p.filename().string() + ".old-";
      if (name.rfind(prefix, 0) == 0 && all_digits(name.substr(prefix.size())))
        fail("{}: no such checkpoint directory; an interrupted save left the previous checkpoint at {} "
             "(rename it to {} to resume from it)",
             dir, it->path().string(), d);
    }
    fail("{}: no such checkpoint directory", dir);
  }
  const std::string state_path = join(dir, kCheckpointStateFile);
  if (!fs::exists(state_path)) fail("{}: missing (not a complete checkpoint)", state_path);
  TrainerState st;
  json j;
  try {
    std::ifstream in(state_path);
    j = json::parse(in);
    if (j.value("format", std::string()) != "bmsys-trainer-state")
      fail("'format' is not \"bmsys-trainer-state\"");
    if (!j.is_object()) fail("not a JSON object");
    st.step = get_int(j, "step");
    st.data_position = get_int(j, "data_position");
    st.seed = get_uint(j, "seed");
    st.token_dtype = j.at("token_dtype").get<std::string>();
    st.batch = get_int(j, "batch");
    st.seq = get_int(j, "seq");
    st.data_file = j.value("data_file", std::string());
    st.optimizer_step = get_int(j, "optimizer_step", st.step);
    st.loss_scale = j.value("loss_scale", 0.0);
    st.loss_scale_clean_steps = get_int(j, "loss_scale_clean_steps", 0);
    if (st.step < 0 || st.data_position < 0) fail("negative step or data_position");
    if (st.optimizer_step < 0 || st.optimizer_step > st.step)
      fail("optimizer_step {} is outside [0, step {}]", st.optimizer_step, st.step);
    if (st.loss_scale < 0 || !std::isfinite(st.loss_scale) || st.loss_scale_clean_steps < 0)
      fail("invalid loss_scale {} or loss_scale_clean_steps {}", st.loss_scale, st.loss_scale_clean_steps);
    for (const char* f : kChecked) {
      const json& e = j.at("files").at(f);
      std::string path = join(dir, f);
      if (!fs::exists(path)) fail("{}: missing (the checkpoint is incomplete)", path);
      uint64_t recorded = 0;
      try {
        recorded = get_uint(e, "bytes");
      } catch (const Error& err) {
        fail("files.{}: {}", f, err.what());
      }
      uint64_t size = 0;
      std::string sum = fnv1a64_file(path, &size);
      if (size != recorded)
        fail("{}: {} bytes, trainer_state.json records {} (truncated or modified)", path, size, recorded);
      if (sum != e.at("fnv1a64").get<std::string>())
        fail("{}: checksum mismatch (FNV-1a 64 {}, trainer_state.json records {}): the file is corrupt",
             path, sum, e.at("fnv1a64").get<std::string>());
    }
  } catch (const json::exception& e) {
    fail("{}: invalid trainer state: {}", state_path, e.what());
  } catch (const Error& e) {
    std::string msg = e.what();
    if (msg.rfind(dir, 0) == 0) throw;  // already names a file of the checkpoint
    fail("{}: {}", state_path, msg);
  }

  auto model = SafetensorsFile::open(join(dir, kCheckpointModelFile));
  auto optim = SafetensorsFile::open(join(dir, kCheckpointOptimizerFile));
  std::map<std::string, std::vector<uint32_t>> weights, states;
  for (uint32_t i = 0; i < a.buffers.size(); ++i) {
    const BufferDesc& b = a.buffers[i];
    if (b.kind == BufferKind::Weight) weights[b.weight_key].push_back(i);
    if (b.kind == BufferKind::OptimizerState) states[b.name].push_back(i);
  }
  check_tensors(*model, a, weights, "a weight");
  check_tensors(*optim, a, states, "an optimizer state");
  for (const auto& [key, idx] : weights)
    for (uint32_t i : idx) {
      const SafetensorsInfo& info = model->info(key);
      ex.write_logical(i, model->data(key), info.dtype, info.shape,
                      fmt::format("{}: tensor '{}'", model->path(), key));
    }
  for (const auto& [name, idx] : states)
    for (uint32_t i : idx) {
      const SafetensorsInfo& info = optim->info(name);
      ex.write_logical(i, optim->data(name), info.dtype, info.shape,
                      fmt::format("{}: tensor '{}'", optim->path(), name));
    }
  return st;
}

}  // namespace bmsys::rt
