#!/usr/bin/env bash
# scripts/test.sh — the test command (README, .ci/run): builds (incrementally) and runs the `fast` tests.
#
#   scripts/test.sh            fast tests (every CI run; minutes)
#   scripts/test.sh --slow     also the `slow` tests (real model, long sweeps)
#   QEVAL_BUILD_DIR=dir        build directory (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${QEVAL_BUILD_DIR:-build}"
labels="fast"
for a in "$@"; do
  case "$a" in
    --slow) labels="fast|slow" ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
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
