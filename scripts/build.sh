#!/usr/bin/env bash
# Configures (once) and builds everything: compiler tools, runtime, CUDA backend
# where nvcc exists, and the tests. BMSYS_BUILD_DIR picks the build directory;
# extra arguments go to cmake at configure time (e.g. -DBMSYS_SANITIZE=ON).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BMSYS_BUILD_DIR:-$root/build}
# ccache hits across clones in other folders (CI builds a fresh clone elsewhere).
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$root} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}

if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit "$@"
fi
ninja -C "$build" -j"$(nproc)" all bmsys-runtime-tests
