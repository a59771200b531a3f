#!/usr/bin/env bash
# Builds and runs the libFuzzer targets of fuzz/ (docs/hardening.md).
#
#   scripts/fuzz.sh [--seconds N | --runs N] [--targets a,b,...] [--parallel P]
#       Fuzzes every target (default: 60 seconds each) and prints a table:
#       target, executions, exec/s, findings. A finding is an input that crashed,
#       leaked, timed out or ran out of memory; each is copied to
#       fuzz/regressions/<target>/ (with the report beside it as <name>.log) and
#       fuzzing resumes with the time (or runs) left. Exits 1 when anything was found.
#   scripts/fuzz.sh --regress [--targets ...]
#       Replays fuzz/regressions/<target>/* and the seed corpus fuzz/corpus/<target>/
#       once through each target; prints one line per target and a final
#       `N passed, N failed` (an input passes when it runs without a finding).
#       Exits 1 on any crash.
#   scripts/fuzz.sh --build-only
#
# Other options: --no-build (use the fuzzers as built), --list (print the targets).
# The fuzzers are built with clang-14 (CC/CXX override), ASan + UBSan and
# -fsanitize=fuzzer in BMSYS_FUZZ_BUILD_DIR (default build-fuzz/), with ccache.
# The working corpus grows in $BMSYS_FUZZ_BUILD_DIR/fuzz/work/<target>/ (kept
# between runs; fuzz/corpus/ holds only the small committed seeds).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BMSYS_FUZZ_BUILD_DIR:-$root/build-fuzz}
case "$build" in /*) ;; *) build=$root/$build ;; esac
bindir=$build/fuzz

mode=fuzz seconds=60 runs="" targets="" parallel=1 do_build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; runs=""; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --targets) targets=${2//,/ }; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    --regress) mode=regress; shift ;;
    --build-only) mode=build; shift ;;
    --list) mode=list; shift ;;
    --no-build) do_build=0; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fuzz.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.ccache}

build_fuzzers() {
  local cc=${CC:-clang-14} cxx=${CXX:-clang++-14}
  if ! command -v "$cxx" >/dev/null; then
    echo "fuzz.sh: $cxx not found (apt-get install clang-14 libclang-rt-14-dev)" >&2
    return 1
  fi
  if [ ! -f "$build/build.ninja" ]; then
    # -fsanitize=fuzzer-no-link everywhere: the code under test (runtime, dialects,
    # importer) gets coverage instrumentation; BMSYS_SANITIZE adds ASan + UBSan.
    local flags="-fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined -gline-tables-only"
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
      -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
      -DBMSYS_ENABLE_CUDA=OFF -DBMSYS_SANITIZE=ON -DBMSYS_BUILD_FUZZERS=ON \
      -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit >"$build.configure.log" 2>&1 ||
      { cat "$build.configure.log" >&2; return 1; }
  fi
  ninja -C "$build" -j"$(nproc)" bmsys-fuzzers
}

list_targets() {
  local t
  for t in "$bindir"/fuzz-*; do
    [ -x "$t" ] && [ -f "$t" ] && basename "$t" | sed 's/^fuzz-//'
  done
}

if [ "$do_build" = 1 ] || [ "$mode" = build ]; then
  build_fuzzers || { echo "0 passed, 1 failed"; exit 1; }
fi
[ "$mode" = build ] && exit 0
[ -n "$targets" ] || targets=$(list_targets | tr '\n' ' ')
if [ -z "$targets" ]; then
  echo "fuzz.sh: no fuzz targets in $bindir (build them first)" >&2
  exit 1
fi
if [ "$mode" = list ]; then
  echo "$targets" | tr ' ' '\n' | sed '/^$/d'
  exit 0
fi
for t in $targets; do
  [ -x "$bindir/fuzz-$t" ] || { echo "fuzz.sh: no fuzz target '$t' in $bindir" >&2; exit 2; }
done

# Options every run of a target gets: limits, its dictionary (fuzz/<target>.dict,
# and fuzz/mlir.dict for the MLIR parser) and, when fuzzing, the input length.
target_options() {
  local t=$1 how=$2
  echo -n "-rss_limit_mb=2048 -timeout=20"
  [ -f "$root/fuzz/$t.dict" ] && echo -n " -dict=$root/fuzz/$t.dict"
  [ "$t" = mlir_parse ] && echo -n " -dict=$root/fuzz/mlir.dict"
  if [ "$how" = fuzz ]; then
    # Inputs no larger than the seeds need: the MLIR seeds are chunks of at most a
    # few KB, configs under 2 KB, the tiny models' safetensors headers under 8 KB.
    case "$t" in
      mlir_parse|hf_safetensors) echo -n " -max_len=8192" ;;
      hf_config|compress_config) echo -n " -max_len=4096" ;;
    esac
  fi
}

# Files of fuzz/regressions/<t>/ to replay (the .log reports are not inputs).
regression_inputs() {
  local d=$root/fuzz/regressions/$1
  [ -d "$d" ] || return 0
  find "$d" -maxdepth 1 -type f ! -name '*.log' ! -name '*.md' ! -name '.*' | sort
}

# ------------------------------------------------------------------ regress
if [ "$mode" = regress ]; then
  total_pass=0 total_fail=0
  logdir=$build/fuzz/regress-logs
  rm -rf "$logdir"; mkdir -p "$logdir"
  printf '%-16s %8s %8s %8s\n' target inputs passed failed
  for t in $targets; do
    bin=$bindir/fuzz-$t pass=0 fail=0 failed_names=""
    opts=$(target_options "$t" regress)
    while IFS= read -r f; do
      [ -n "$f" ] || continue
      # shellcheck disable=SC2086
      if "$bin" $opts -runs=1 "$f" >"$logdir/$t-$(basename "$f").log" 2>&1; then
        pass=$((pass + 1))
      else
        fail=$((fail + 1)); failed_names="$failed_names $(basename "$f")"
      fi
    done < <(regression_inputs "$t")
    seeds=$root/fuzz/corpus/$t
    if [ -d "$seeds" ] && [ -n "$(ls -A "$seeds")" ]; then
      n=$(find "$seeds" -maxdepth 1 -type f | wc -l)
      # -runs=0 runs each input of the corpus directories once and stops; the
      # first directory (where libFuzzer would add inputs) is a scratch one, so
      # the committed seeds are never written to.
      mkdir -p "$logdir/$t-scratch"
      # shellcheck disable=SC2086
      if "$bin" $opts -runs=0 "$logdir/$t-scratch" "$seeds" >"$logdir/$t-corpus.log" 2>&1; then
        pass=$((pass + n))
      else
        fail=$((fail + 1)); failed_names="$failed_names corpus/$t"
        pass=$((pass + n - 1))
      fi
    fi
    printf '%-16s %8d %8d %8d%s\n' "$t" $((pass + fail)) "$pass" "$fail" \
      "${failed_names:+   failing:$failed_names}"
    total_pass=$((total_pass + pass)); total_fail=$((total_fail + fail))
  done
  [ "$total_fail" -eq 0 ] || echo "reports: $logdir/"
  echo "$total_pass passed, $total_fail failed"
  [ "$total_fail" -eq 0 ]
  exit
fi

# ------------------------------------------------------------------ fuzz
# Per run (by process id), so that two runs at once do not remove each other's logs.
results=$build/fuzz/results/$$
rm -rf "$results"; mkdir -p "$results"

# Fuzzes one target; writes "execs seconds findings" to $results/<t>.
fuzz_target() {
  local t=$1 bin=$bindir/fuzz-$1
  local work=$build/fuzz/work/$t crashes=$build/fuzz/crashes/$t regdir=$root/fuzz/regressions/$t
  local seeds=$root/fuzz/corpus/$t log=$results/$t.log
  mkdir -p "$work" "$crashes"
  local execs=0 elapsed=0 findings=0 restarts=0
  local left_s=$seconds left_runs=$runs
  : >"$log"
  while :; do
    local budget seg_log=$results/$t.segment.log start end
    if [ -n "$runs" ]; then budget="-runs=$left_runs"; else budget="-max_total_time=$left_s"; fi
    local before; before=$(ls "$crashes" | sort)
    start=$(date +%s.%N)
    # shellcheck disable=SC2046
    "$bin" $(target_options "$t" fuzz) $budget -print_final_stats=1 \
      -artifact_prefix="$crashes/" "$work" $( [ -d "$seeds" ] && echo "$seeds") >"$seg_log" 2>&1
    local rc=$?
    end=$(date +%s.%N)
    cat "$seg_log" >>"$log"
    local seg_execs
    seg_execs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$seg_log" | tail -1 | awk '{print $2}')
    execs=$((execs + ${seg_execs:-0}))
    elapsed=$(awk -v a="$elapsed" -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", a + e - s }')
    # New files under crashes/ are this segment's findings.
    local f new=0
    for f in $(comm -13 <(echo "$before") <(ls "$crashes" | sort)); do
      case "$f" in crash-*|leak-*|timeout-*|oom-*) ;; *) continue ;; esac  # not slow-unit-*
      mkdir -p "$regdir"
      cp "$crashes/$f" "$regdir/$f"
      # The report: from the first sanitizer, harness or terminate message on.
      awk '/runtime error|ERROR:|fuzzer: |terminate called|what\(\)/ { on = 1 } on && n++ < 120' \
        "$seg_log" >"$regdir/$f.log"
      new=$((new + 1))
    done
    findings=$((findings + new))
    [ "$rc" -eq 0 ] && break
    if [ "$new" -eq 0 ]; then
      echo "fuzz.sh: fuzz-$t exited with status $rc and left no reproducer (see $log)" >&2
      findings=$((findings + 1)); break
    fi
    restarts=$((restarts + 1))
    [ "$restarts" -ge 10 ] && break
    if [ -n "$runs" ]; then
      left_runs=$((left_runs - ${seg_execs:-0})); [ "$left_runs" -gt 0 ] || break
    else
      left_s=$(awk -v t="$seconds" -v e="$elapsed" 'BEGIN { printf "%d", t - e }'); [ "$left_s" -gt 0 ] || break
    fi
  done
  echo "$execs $elapsed $findings" >"$results/$t"
}

running=0
for t in $targets; do
  fuzz_target "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$parallel" ]; then wait -n; running=$((running - 1)); fi
done
wait

total_findings=0
printf '%-16s %12s %10s %9s\n' target executions exec/s findings
for t in $targets; do
  read -r execs secs findings <"$results/$t" || { execs=0 secs=0 findings=1; }
  rate=$(echo "$execs $secs" | awk '{ if ($2 > 0) printf "%d", $1 / $2; else print 0 }')
  printf '%-16s %12d %10s %9d\n' "$t" "$execs" "$rate" "$findings"
  total_findings=$((total_findings + findings))
done
if [ "$total_findings" -gt 0 ]; then
  echo "findings were copied to fuzz/regressions/<target>/ (reports: <name>.log; logs: $results/)"
  exit 1
fi
