#!/usr/bin/env bash
# scripts/fuzz.sh — builds the libFuzzer drivers (tests/fuzz/) with clang + ASan + UBSan in their own build folder and
# runs each for a fixed budget from its committed seed corpus; a crash, sanitizer report, timeout, leak or OOM fails.
#
#   scripts/fuzz.sh                 every driver, 30 s each, $(nproc) at a time (what scripts/test.sh runs in CI)
#   scripts/fuzz.sh --time 300      seconds per driver (libFuzzer -max_total_time)
#   scripts/fuzz.sh --runs 1000000  stop each driver after this many executions instead (a campaign; no time limit)
#   scripts/fuzz.sh --only fuzz_gguf,fuzz_npy    some drivers;  --jobs N   drivers run at once (default: nproc)
#   scripts/fuzz.sh --list          the drivers
#   QEVAL_FUZZ_BUILD_DIR=dir        build folder (default: build-fuzz); logs in dir/fuzz-logs, corpora in dir/fuzz-corpus
#
# Per driver: -timeout=10 (s per input), -rss_limit_mb=2048 (also the malloc limit), the seeds of
# tests/fuzz/corpus/<driver>/ copied into a working corpus that grows across local runs. On a finding the reproducer
# lands in dir/fuzz-findings/<driver>/; the script prints its path, the sanitizer report and the reproducer as base64
# (so the CI log alone carries it) and exits 1. Reproduce: dir/tests/fuzz/<driver> <file>. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

drivers=(fuzz_gguf fuzz_safetensors fuzz_tokenizer fuzz_tokenizer_gguf fuzz_npy fuzz_config fuzz_report)
budget=30 runs="" only="" jobs="$(nproc)"
while [ $# -gt 0 ]; do
  case "$1" in
    --time) budget="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --list) printf '%s\n' "${drivers[@]}"; exit 0 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "fuzz.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [ -n "$only" ]; then
  IFS=, read -r -a drivers <<<"$only"
fi
build="${QEVAL_FUZZ_BUILD_DIR:-build-fuzz}"
cxx="${QEVAL_FUZZ_CXX:-clang++-14}"
command -v "$cxx" >/dev/null || { echo "fuzz.sh: $cxx not found (scripts/setup.sh installs clang-14 and libclang-rt-14-dev)" >&2; exit 1; }

# ---- build (own folder: every library is instrumented; -O1 -g and assertions on, as libFuzzer recommends)
if [ ! -f "$build/CMakeCache.txt" ]; then
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  CC="${cxx/clang++/clang}" CXX="$cxx" cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DQEVAL_FUZZ=ON \
    -DQEVAL_TORCH=OFF -DQEVAL_OPENCL=OFF -DQEVAL_BUILD_TESTS=OFF -DQEVAL_BUILD_BENCHMARKS=OFF "${launcher[@]}" >/dev/null
fi
targets=()
for d in "${drivers[@]}"; do targets+=(--target "$d"); done
cmake --build "$build" -j "$(nproc)" "${targets[@]}"

# ---- run
logs="$build/fuzz-logs" findings="$build/fuzz-findings" corpora="$build/fuzz-corpus"
mkdir -p "$logs" "$findings" "$corpora"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
[ -x /usr/lib/llvm-14/bin/llvm-symbolizer ] && export ASAN_SYMBOLIZER_PATH="${ASAN_SYMBOLIZER_PATH:-/usr/lib/llvm-14/bin/llvm-symbolizer}"
limit=(-max_total_time="$budget")
[ -n "$runs" ] && limit=(-runs="$runs")

run_one() {  # run_one DRIVER: one libFuzzer session; its log in $logs/DRIVER.log; status = libFuzzer's
  local d="$1"
  [ -d "tests/fuzz/corpus/$d" ] || { echo "fuzz.sh: no seed corpus tests/fuzz/corpus/$d" >"$logs/$d.log"; return 2; }
  rm -rf "${findings:?}/$d"
  mkdir -p "$corpora/$d" "$findings/$d"
  cp -n "tests/fuzz/corpus/$d"/* "$corpora/$d"/ 2>/dev/null || true
  "$build/tests/fuzz/$d" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$findings/$d/" "$corpora/$d" >"$logs/$d.log" 2>&1
}

each="$budget s"
[ -n "$runs" ] && each="$runs executions"
echo "fuzz.sh: ${#drivers[@]} driver(s), $each each, $jobs at a time (logs: $logs)"
failed=()
pids=() names=()
for d in "${drivers[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 0.2; done
  run_one "$d" &
  pids+=($!) names+=("$d")
done
for i in "${!pids[@]}"; do
  d="${names[$i]}"
  if wait "${pids[$i]}"; then
    # libFuzzer's "#238 INITED cov: 1224 ft: 3600 corp: 200/2867Kb ..." and "#34048 DONE cov: 1251 ft: 3705 ..."
    inited=$(grep -E '^#[0-9]+[[:space:]]+INITED' "$logs/$d.log" | tail -1 | sed -E 's/.*cov: ([0-9]+).*/\1/' || true)
    summary=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$logs/$d.log" | tail -1 || true)
    printf 'fuzz.sh: %-20s ok   %s (seeds: cov %s)\n' "$d" "${summary:-"(no DONE line; see $logs/$d.log)"}" "${inited:-?}"
  else
    failed+=("$d")
  fi
done

# ---- findings: the report and the reproducer, in the log
for d in "${failed[@]}"; do
  echo "fuzz.sh: $d FAILED — last lines of $logs/$d.log:"
  tail -n 60 "$logs/$d.log" | sed 's/^/    /'
  for f in "$findings/$d"/*; do
    [ -f "$f" ] || continue
    echo "fuzz.sh: $d reproducer $f ($(stat -c %s "$f") bytes); rerun: $build/tests/fuzz/$d $f"
    echo "fuzz.sh: gzip + base64 (paste into: base64 -d | gunzip > repro):"
    gzip -9c "$f" | head -c 262144 | base64 -w 120 | sed 's/^/    /'
  done
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: FAILED: ${failed[*]} (add the fixed reproducer to tests/fuzz/corpus/<driver>/ and a regression test)" >&2
  exit 1
fi
echo "fuzz.sh: all ${#drivers[@]} driver(s) clean"
