#!/usr/bin/env bash
# The README's first command: install packages, build everything, run the main job.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
"$root/scripts/main-job.sh"
