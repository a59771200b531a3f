#!/usr/bin/env bash
# Regenerates the op and pass reference (docs/reference/) from the ODS
# descriptions (add_mlir_doc). Run after changing a .td file.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BMSYS_BUILD_DIR:-$root/build}
ninja -C "$build" BmsysOpsDocGen BmsysRtOpsDocGen BmsysPassesDocGen
mkdir -p "$root/docs/reference"
cp "$build/docs/Dialects/BmsysOps.md" "$root/docs/reference/bmsys-dialect.md"
cp "$build/docs/Dialects/BmsysRtOps.md" "$root/docs/reference/bmsys-rt-dialect.md"
cp "$build/docs/Passes/BmsysPasses.md" "$root/docs/reference/passes.md"
echo "docs/reference updated"
