#!/usr/bin/env bash
# The sanitizer build of the test suite (docs/hardening.md): builds everything
# with AddressSanitizer + UndefinedBehaviorSanitizer (-DBMSYS_SANITIZE=ON, no CUDA)
# in BMSYS_ASAN_BUILD_DIR (default build-asan/) and runs scripts/test.sh on it,
# which ends with `N passed, N failed, N skipped`. Exits non-zero on any failure,
# including any sanitizer report (UBSan halts on the first error).
#
#   scripts/sanitize.sh            every test (lit suite + runtime unit tests)
#   scripts/sanitize.sh --subset   only the runtime unit tests and the end-to-end
#                                  bad-input tests (what .ci/run runs if the whole
#                                  suite does not fit its time budget)
#
# Extra arguments after the options go to cmake at configure time.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BMSYS_ASAN_BUILD_DIR:-$root/build-asan}
case "$build" in /*) ;; *) build=$root/$build ;; esac

subset=0
while [ $# -gt 0 ]; do
  case "$1" in
    --subset) subset=1; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done

# detect_leaks=0: Debian's LLVM/MLIR keep global state (cl::opt registries, the
# MLIRContext's uniquers of static contexts) that LeakSanitizer reports at exit
# of the compiler tools; none of it is ours to fix. allow_user_poisoning=0: see
# fuzz/fuzz_util.cpp (LLVM's allocator inlined into instrumented code poisons
# memory that the uninstrumented libMLIR never unpoisons).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allow_user_poisoning=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.ccache}

# Configure once with the sanitizer flags (scripts/build.sh configures only when
# the build directory is new); scripts/test.sh then builds what changed and tests.
if [ ! -f "$build/build.ninja" ]; then
  BMSYS_BUILD_DIR=$build "$root/scripts/build.sh" -DBMSYS_SANITIZE=ON -DBMSYS_ENABLE_CUDA=OFF "$@" ||
    { echo "0 passed, 1 failed, 0 skipped"; exit 1; }
fi
if ! grep -q '^BMSYS_SANITIZE:BOOL=ON' "$build/CMakeCache.txt"; then
  echo "sanitize.sh: $build is not a BMSYS_SANITIZE=ON build directory" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi

if [ "$subset" = 1 ]; then
  # lit's filter on the test names: the GoogleTest cases (bmsys-runtime-tests,
  # suite "bmsys-unit") and test/e2e/bad_inputs.test.
  export LIT_FILTER=${LIT_FILTER:-'bmsys-runtime-tests|e2e/bad_inputs'}
fi
BMSYS_BUILD_DIR=$build exec "$root/scripts/test.sh"
