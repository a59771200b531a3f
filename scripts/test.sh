#!/usr/bin/env bash
# Builds what changed and runs every test: the lit suite (dialects, passes,
# importer, end-to-end runs against the golden data, bad inputs) and the unit
# tests (GoogleTest, through lit). Ends with a line `N passed, N failed, N skipped`
# and exits non-zero on any failure.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BMSYS_BUILD_DIR:-$root/build}

"$root/scripts/build.sh" || { echo "0 passed, 1 failed"; exit 1; }

log="$build/test-results.log"
/usr/lib/llvm-22/bin/lit -sv "$build/test" "$build/test/unit" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

count() { grep -aE "^\s*$1\s*: [0-9]" "$log" | sed -E "s/.*: ([0-9]+).*/\1/" | awk "{s += \$1} END {print s + 0}"; }
passed=$(( $(count Passed) + $(count "Expectedly Failed") ))
failed=$(( $(count Failed) + $(count Unresolved) + $(count "Timed Out") + $(count "Unexpectedly Passed") ))
skipped=$(( $(count Unsupported) + $(count Skipped) ))
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
