// Helpers shared by the bmsys fuzz targets (see docs/hardening.md).
//
// Targets that read files (the runtime's safetensors reader, the importer) get
// the fuzzed bytes through a per-process scratch directory, on /dev/shm when it
// exists, removed at exit. Plain POSIX only: used by both the runtime targets
// (exceptions on) and the compiler targets (-fno-exceptions).
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace bmsys::fuzz {

// The scratch directory of this process (created on first use).
const std::string& scratch_dir();

// A directory `name` inside the scratch directory (created on first use).
std::string scratch_subdir(const std::string& name);

// Writes `size` bytes to `path` (truncating it); aborts on failure, since a
// harness that cannot write its input would otherwise fuzz nothing.
void write_file(const std::string& path, const uint8_t* data, size_t size);

// Extends (or cuts) the file at `path` to `size` bytes; the extension reads as zeros.
void resize_file(const std::string& path, uint64_t size);

// Makes `link` a symbolic link to `target` (replacing whatever was there).
void symlink_file(const std::string& target, const std::string& link);

// The repository's source directory (compiled in), for fixed test data.
const char* source_dir();

// With BMSYS_FUZZ_VERBOSE=1 in the environment, harnesses print each refusal
// ("refused: <message>") to stderr, so that the lit replay tests (test/fuzz/)
// can check that a recorded finding is now refused with the right message.
// Off when fuzzing (printing would slow it down).
void refused(const std::string& message);

// How many inputs the MLIR harnesses run in one MLIRContext before replacing it:
// 2000, or BMSYS_FUZZ_CONTEXT_USES (the replay tests set it low so that the
// replacement itself is exercised).
int context_uses();

}  // namespace bmsys::fuzz
