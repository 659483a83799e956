#!/usr/bin/env bash
# scripts/refresh-baseline.sh — re-makes the CI regression baseline in one command: runs the CI sweep and
# writes it over the committed baseline, marked with who refreshed it, when, and from which command and git SHA
# (report fields producer and baseline). Commit the result with the change that moved the numbers.
#
#   scripts/refresh-baseline.sh                     configs/sweep-ci.json → reports/baseline/ci.json
#   scripts/refresh-baseline.sh CONFIG BASELINE     another pair
#   QEVAL_BUILD_DIR=dir                             build directory (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-configs/sweep-ci.json}"
baseline="${2:-reports/baseline/ci.json}"
build="${QEVAL_BUILD_DIR:-build}"
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$build" --target qeval -j "$(nproc)"
qeval="$build/eval/cli/qeval"
name=$(basename "$baseline" .json)
current="$build/$name-current.json"
rm -f "$current" "$current.jsonl"
"$qeval" sweep --config "$config" --out "$current" --jobs "$(nproc)" --progress none > "$build/$name-sweep.log"
mkdir -p "$(dirname "$baseline")"
"$qeval" check --update-baseline --baseline "$baseline" "$current"
