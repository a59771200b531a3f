// bmsys-fuzz-replay-<target>: one fuzz target's LLVMFuzzerTestOneInput in a
// plain executable, built by the normal build (any compiler, no libFuzzer), so
// that the lit suite replays every recorded finding and the seed corpus through
// the harness on every build, the sanitizer build included (test/fuzz/).
//
//   bmsys-fuzz-replay-<target> FILE|DIR...
//
// Each file (each regular file of a directory, in name order, except the .log
// and .md files and dotfiles beside the inputs) is read into a buffer of exactly
// its size (so that ASan sees a read past the end) and passed to the harness
// once. A finding aborts, as in the fuzzer; stderr names the input first.
// Exits 0 after printing "N inputs", 2 when an argument cannot be read or no
// input was given.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

bool ends_with(const std::string& s, const char* suffix) {
  size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

bool list(const std::string& path, std::vector<std::string>* out) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return false;
  if (!S_ISDIR(st.st_mode)) {
    out->push_back(path);
    return true;
  }
  DIR* d = opendir(path.c_str());
  if (!d) return false;
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.empty() || name[0] == '.' || ends_with(name, ".log") || ends_with(name, ".md")) continue;
    std::string full = path + "/" + name;
    if (stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode)) names.push_back(full);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  out->insert(out->end(), names.begin(), names.end());
  return true;
}

bool read_file(const std::string& path, std::vector<uint8_t>* bytes) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  bytes->clear();
  uint8_t chunk[65536];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) bytes->insert(bytes->end(), chunk, chunk + n);
  bool ok = !std::ferror(f);
  std::fclose(f);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> inputs;
  for (int i = 1; i < argc; ++i)
    if (!list(argv[i], &inputs)) {
      std::fprintf(stderr, "%s: cannot read %s: %s\n", argv[0], argv[i], std::strerror(errno));
      return 2;
    }
  if (inputs.empty()) {
    std::fprintf(stderr, "usage: %s FILE|DIR... (no input given)\n", argv[0]);
    return 2;
  }
  std::vector<uint8_t> bytes;
  for (const std::string& path : inputs) {
    if (!read_file(path, &bytes)) {
      std::fprintf(stderr, "%s: cannot read %s: %s\n", argv[0], path.c_str(), std::strerror(errno));
      return 2;
    }
    std::fprintf(stderr, "replaying %s (%zu bytes)\n", path.c_str(), bytes.size());
    // An exact-size heap copy, as libFuzzer passes inputs.
    std::unique_ptr<uint8_t[]> copy(new uint8_t[bytes.size() ? bytes.size() : 1]);
    if (!bytes.empty()) std::memcpy(copy.get(), bytes.data(), bytes.size());
    LLVMFuzzerTestOneInput(copy.get(), bytes.size());
  }
  std::printf("%zu inputs\n", inputs.size());
  return 0;
}
