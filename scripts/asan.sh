#!/usr/bin/env bash
# scripts/asan.sh — the fast tests of the memory-unsafe code (qeval_test(... MEMORY), target qeval_memory_tests) built
# with AddressSanitizer + UBSan in their own build folder and run with every finding fatal.
#
#   scripts/asan.sh                 build qeval_memory_tests in build-asan and run them (what scripts/test.sh runs in CI)
#   QEVAL_ASAN_BUILD_DIR=dir        build folder (default: build-asan)
#
# The build: g++, -O1 -g1 -DNDEBUG, -fsanitize=address,undefined -fno-sanitize-recover=all, LibTorch off (not
# instrumented, and its ~1 s start-up under ASan per test process dominates; the LibTorch-linked tests were run under
# ASan once by hand, docs/memory-safety.md). ctest runs the built fast tests only (programs not built have no label).
# Idempotent: the build is incremental.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
  "") ;;
  *) echo "asan.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
esac
build="${QEVAL_ASAN_BUILD_DIR:-build-asan}"

if [ ! -f "$build/CMakeCache.txt" ]; then
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DQEVAL_SANITIZE=ON -DQEVAL_TORCH=OFF \
    -DQEVAL_BUILD_BENCHMARKS=OFF "${launcher[@]}" >/dev/null
fi
cmake --build "$build" -j "$(nproc)" --target qeval_memory_tests

# detect_leaks: LeakSanitizer at exit; abort_on_error: a core-style abort that ctest reports as a failure.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:check_initialization_order=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# The OpenCL C syntax checks (clang, no C++ of ours) are not memory tests: skipped here.
# qeval_tune_pocl runs the qeval binary, which is not a memory test (not built here).
ctest --test-dir "$build" -L fast -E '_syntax$|^qeval_tune_pocl$' --output-on-failure -j "$(nproc)" --timeout 900
