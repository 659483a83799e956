#!/usr/bin/env bash
# scripts/test.sh — the test command (README, .ci/run): builds (incrementally) and runs the `fast` tests, the
# regression gate, the fuzzers and the memory-unsafe code's tests under ASan + UBSan (docs/memory-safety.md).
#
#   scripts/test.sh            fast tests, gate, fuzz (30 s per driver), ASan tests (every CI run)
#   scripts/test.sh --slow     also the `slow` tests (real model, long sweeps)
#   scripts/test.sh --no-memcheck   without the fuzzers and the ASan tests (their own build folders)
#   QEVAL_BUILD_DIR=dir        build directory (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${QEVAL_BUILD_DIR:-build}"
labels="fast"
memcheck=1
for a in "$@"; do
  case "$a" in
    --slow) labels="fast|slow" ;;
    --no-memcheck) memcheck=0 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option '$a' (see --help)" >&2; exit 2 ;;
  esac
done
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" -L "$labels" --output-on-failure -j "$(nproc)" --timeout 900

# The CI regression gate (docs/regression-gate.md): a fast sweep on the default input (configs/sweep-ci.json,
# seconds), checked against the committed baseline. Refresh it with scripts/refresh-baseline.sh.
rm -f "$build/ci-current.json" "$build/ci-current.json.jsonl"
"$build/eval/cli/qeval" sweep --config configs/sweep-ci.json --out "$build/ci-current.json" --jobs "$(nproc)" \
  --progress none > "$build/ci-sweep.log"
"$build/eval/cli/qeval" check --baseline reports/baseline/ci.json "$build/ci-current.json"

# Memory safety (docs/memory-safety.md): each libFuzzer driver for 30 s from its committed seeds (build-fuzz), then the
# fast tests of the memory-unsafe code under ASan + UBSan (build-asan). A finding fails here with its reproducer.
if [ "$memcheck" = 1 ]; then
  scripts/fuzz.sh --time 30
  scripts/asan.sh
fi
