#!/usr/bin/env bash
# Installs the Debian packages bmsys needs (LLVM/MLIR 22, FlatBuffers, OpenBLAS,
# Gloo, GoogleTest, ...). Idempotent: does nothing when all are present.
# CUDA is not installed here: it comes with the machine image (/usr/local/cuda).
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache git python3
  libmlir-22-dev mlir-22-tools llvm-22-dev llvm-22-tools libzstd-dev
  libflatbuffers-dev flatbuffers-compiler
  libopenblas-dev libgloo-dev libomp-dev
  nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
