#!/bin/sh
# tests/gpu/tune_test.sh — CTest qeval_tune_pocl: `qeval tune` with a small budget on the CI device (PoCL) writes a
# table, every chosen variant was verified, and the backend picks it up (Tuning.AWrittenTableIsPickedUpAndVerified).
# Usage: tune_test.sh <qeval or qeval_tune> <subcommand or ""> <qeval_gpu_test> <work dir> <budget s>
set -u
TUNE=$1 SUB=$2 GPUTEST=$3 WORK=$4 BUDGET=$5
mkdir -p "$WORK" && rm -f "$WORK/table.json"
# shellcheck disable=SC2086  # $SUB is empty for qeval_tune, "tune" for qeval
"$TUNE" $SUB --budget "$BUDGET" --out "$WORK/table.json"
rc=$?
[ "$rc" -eq 77 ] && exit 77  # no OpenCL device: skipped
[ "$rc" -ne 0 ] && { echo "tune_test: $TUNE $SUB exited with $rc"; exit 1; }
[ -s "$WORK/table.json" ] || { echo "tune_test: no table written"; exit 1; }
QEVAL_TUNE_TABLE_UNDER_TEST="$WORK/table.json" "$GPUTEST" --gtest_filter='Tuning.AWrittenTableIsPickedUpAndVerified'
