#include "fuzz/fuzz_util.h"

#include <dirent.h>
#include <signal.h>

#include <cerrno>
#include <cstring>

#ifndef BMSYS_SOURCE_DIR
#error "BMSYS_SOURCE_DIR must be defined (fuzz/CMakeLists.txt does)"
#endif

namespace bmsys::fuzz {
namespace {

[[noreturn]] void die(const char* what, const std::string& path) {
  std::fprintf(stderr, "fuzz harness: %s %s: %s\n", what, path.c_str(), std::strerror(errno));
  std::abort();
}

std::string* g_dir = nullptr;

void remove_scratch() {
  if (!g_dir) return;
  std::string cmd = "rm -rf '" + *g_dir + "'";
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "fuzz harness: cannot remove %s\n", g_dir->c_str());
}

// Removes the scratch directories of fuzzers that died without running their
// atexit handler (a crash, a timeout, libFuzzer's own exit paths).
void remove_stale(const std::string& base) {
  DIR* d = opendir(base.c_str());
  if (!d) return;
  while (dirent* e = readdir(d)) {
    long pid = 0;
    char rest[64];
    if (std::sscanf(e->d_name, "bmsys-fuzz-%ld-%63s", &pid, rest) != 2 || pid <= 0) continue;
    if (kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    std::string cmd = "rm -rf '" + base + "/" + e->d_name + "'";
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "fuzz harness: cannot remove %s\n", e->d_name);
  }
  closedir(d);
}

}  // namespace

const std::string& scratch_dir() {
  if (!g_dir) {
    const char* base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    remove_stale(base);
    std::string templ = std::string(base) + "/bmsys-fuzz-" + std::to_string(getpid()) + "-XXXXXX";
    if (!mkdtemp(templ.data())) die("cannot create", templ);
    g_dir = new std::string(templ);
    std::atexit(remove_scratch);
  }
  return *g_dir;
}

std::string scratch_subdir(const std::string& name) {
  std::string d = scratch_dir() + "/" + name;
  if (mkdir(d.c_str(), 0700) != 0 && errno != EEXIST) die("cannot create", d);
  return d;
}

void write_file(const std::string& path, const uint8_t* data, size_t size) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) die("cannot open", path);
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(fd, data + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("cannot write", path);
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0) die("cannot close", path);
}

void resize_file(const std::string& path, uint64_t size) {
  if (truncate(path.c_str(), static_cast<off_t>(size)) != 0) die("cannot resize", path);
}

void symlink_file(const std::string& target, const std::string& link) {
  unlink(link.c_str());
  if (symlink(target.c_str(), link.c_str()) != 0) die("cannot link", link);
}

const char* source_dir() { return BMSYS_SOURCE_DIR; }

int context_uses() {
  static const int uses = [] {
    const char* v = std::getenv("BMSYS_FUZZ_CONTEXT_USES");
    int n = v ? std::atoi(v) : 0;
    return n > 0 ? n : 2000;
  }();
  return uses;
}

void refused(const std::string& message) {
  static const bool verbose = [] {
    const char* v = std::getenv("BMSYS_FUZZ_VERBOSE");
    return v && *v && std::strcmp(v, "0") != 0;
  }();
  if (verbose) std::fprintf(stderr, "refused: %s\n", message.c_str());
}

}  // namespace bmsys::fuzz

// ASan defaults for every target (the environment's ASAN_OPTIONS still wins).
// allow_user_poisoning=0: LLVM's BumpPtrAllocator, inlined from Debian's LLVM
// headers into our ASan-instrumented code, poisons its slabs and expects the
// allocator in libMLIR to unpoison what it hands out; Debian's libMLIR is not
// instrumented and never does, which reads as use-after-poison inside MLIR
// (e.g. in MLIRContext's constructor). Our own code never poisons by hand.
extern "C" const char* __asan_default_options() { return "allow_user_poisoning=0"; }
