#!/usr/bin/env bash
# reports/perf/run_opencl_gpu.sh — the one prepared command of the OpenCL backend on a lent GPU (device tool):
# the bit-exact suite, `qeval tune`, the benchmarks with the tuned table, and a short table of the figures against
# the baselines of the same run — within 8 minutes, every step under its own timeout.
#
# Here, first: scripts/perf/build_gpu_carry.sh (programs built without LibTorch + the libraries the image lacks).
# There:      run(command="bash reports/perf/run_opencl_gpu.sh", carry=[".gpucarry"], timeout_s=600)
# Dry run on PoCL: QEVAL_CL_DEVICE=pocl OUT=/tmp/gpurun bash reports/perf/run_opencl_gpu.sh
#
# Environment: QEVAL_CL_DEVICE (default nvidia: the image lists PoCL too, and only the selected device is ever
# probed), TUNE_BUDGET (seconds, default 120), TOTAL_S (the whole run's wall-clock limit, default 470), and the
# step limits TEST_S (150), BENCH_S (110), VARIANTS_S (60) — each step also leaves room for the ones after it.
# $OUT receives (≤ 8 files): summary.md (the table), tuning_table.json (to commit as gpu/tuning/<device>.json),
# bench.json (Google Benchmark), logs.tgz (test/tune/bench logs and JSON, nvidia-smi, ptxas register use).
#
# Not here: a model run on `--backend opencl` (eval/model/backend/opencl_backend). Its binary needs LibTorch, whose
# shared libraries (libtorch_cpu.so alone 120 MB; the qeval CLI's dependencies 528 MB, 2026-12-05) do not fit the
# device tool's 64 MiB carry, and the GPU image has no Debian packages to install them from. Until a LibTorch-free
# forward or a GPU image with LibTorch exists, the model path's opencl backend is measured on PoCL only.
set -u
export LC_ALL=C
C=$PWD/.gpucarry
OUT=${OUT:?OUT must name the output folder}
mkdir -p "$OUT"
L=$OUT/logs && mkdir -p "$L"
T0=$(date +%s)
TOTAL_S=${TOTAL_S:-470}
TUNE_BUDGET=${TUNE_BUDGET:-120}
TEST_S=${TEST_S:-150} BENCH_S=${BENCH_S:-110} VARIANTS_S=${VARIANTS_S:-60}
left() { echo $((TOTAL_S - ($(date +%s) - T0))); }
# cap SECONDS RESERVE: the timeout of a step — at most SECONDS, leaving RESERVE for the steps after it.
cap() { local l; l=$(($(left) - $2)); [ "$l" -lt "$1" ] && echo $((l > 5 ? l : 5)) || echo "$1"; }
say() { echo "[$(( $(date +%s) - T0 )) s] $*"; }

[ -x "$C/qeval_gpu_test" ] || { echo "no $C/qeval_gpu_test: run scripts/perf/build_gpu_carry.sh first and carry .gpucarry"; exit 1; }
export LD_LIBRARY_PATH=$C/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export QEVAL_CL_DEVICE=${QEVAL_CL_DEVICE:-nvidia}
export QEVAL_CL_CACHE_DIR=${QEVAL_CL_CACHE_DIR:-/tmp/qeval-cl-cache}   # binaries, probes: shared by the steps
mkdir -p "$QEVAL_CL_CACHE_DIR"
if command -v nvidia-smi > /dev/null; then  # an NVIDIA machine: the image's ICD folder lists only PoCL
  NVICD=/usr/local/nvidia/lib64/libnvidia-opencl.so.1
  [ -e "$NVICD" ] || NVICD=libnvidia-opencl.so.1  # else let the loader search the library path
  mkdir -p /etc/OpenCL/vendors && echo "$NVICD" > /etc/OpenCL/vendors/nvidia.icd
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem,power.limit --format=csv > "$L/nvidia_smi.csv" 2>&1
  nvidia-smi dmon -s pc -d 1 > "$L/dmon.txt" 2>&1 &
  DMON=$!
fi
say "device selector '$QEVAL_CL_DEVICE'; ICD files: $(ls /etc/OpenCL/vendors 2>/dev/null | tr '\n' ' ')"
# 0. The device list (compiles nothing) and the device the selector picks: every later step runs on it alone.
timeout 60 "$C/qeval_gpu_test" --gtest_filter='Devices.ListingNeverThrowsAndProbesNothing' > "$L/devices.log" 2>&1
grep -E '^\[[0-9]+:[0-9]+\]' "$L/devices.log"
grep -qE '^\[[0-9]+:[0-9]+\].*\(GPU,.*<- selected' "$L/devices.log" ||
  echo "WARNING: the selected device is not a GPU (or none matches '$QEVAL_CL_DEVICE'): the figures below are not a GPU's"

# 1. The bit-exact suite, kernel variants last (step 4). On a GPU it includes the SG = 16 T3 emulation
#    (GemmCl.T3EmulationWithSubgroup16; a CPU device skips it unless QEVAL_TEST_EMU_SG16=1: PoCL takes minutes).
say "qeval_gpu_test (timeout $(cap "$TEST_S" 250) s)"
timeout "$(cap "$TEST_S" 250)" "$C/qeval_gpu_test" --gtest_filter='-Variants.*' \
  --gtest_output=json:"$L/gpu_test.json" > "$L/gpu_test.log" 2>&1
TEST_RC=$?
say "qeval_gpu_test rc=$TEST_RC: $(grep -E '^\[  (PASSED|FAILED) ' "$L/gpu_test.log" | head -2 | tr '\n' ' ')"

# 2. The tuner (writes the table after every class: a timeout keeps what it measured).
say "qeval_tune --budget $TUNE_BUDGET (timeout $(cap $((TUNE_BUDGET + 50)) 110) s)"
timeout "$(cap $((TUNE_BUDGET + 50)) 110)" "$C/qeval_tune" --budget "$TUNE_BUDGET" --out "$OUT/tuning_table.json" \
  > "$L/tune.log" 2>&1
TUNE_RC=$?
say "qeval_tune rc=$TUNE_RC"

# 3. Benchmarks with the tuned table (baselines first: copy bandwidth and dot4 peak of the same run).
[ -s "$OUT/tuning_table.json" ] && export QEVAL_CL_TUNING=$OUT/tuning_table.json
# (A CPU device registers the same benchmarks at smaller shapes: 512 rows, 256×256×1024, 2048×2048 decode.)
F='BM_CopyBuffer|BM_IntDotPeak/tier_dot4|BM_Quantize/(int8_sym_token_f32|int4_sym_g128_f32)/(16384|512)/'
F="$F|BM_GemmS8/(tuned|large)/|BM_GemmS8/(decode_tuned|decode_tpc16)/(1|16)/(16384|4096|2048)/"
F="$F|BM_W8A8/token_x_channel/(4096|256)/|BM_W4A8/token_x_g128/"
say "qeval_bench_gpu (timeout $(cap "$BENCH_S" 50) s)"
timeout "$(cap "$BENCH_S" 50)" "$C/qeval_bench_gpu" --benchmark_filter="$F" --benchmark_min_time=0.2 \
  --benchmark_out="$OUT/bench.json" --benchmark_out_format=json > "$L/bench.log" 2>&1
BENCH_RC=$?
say "qeval_bench_gpu rc=$BENCH_RC"
unset QEVAL_CL_TUNING

# 4. Every kernel variant of this device's catalogue (NVIDIA: warp-shuffle ones too) against the reference.
if [ "$(left)" -gt 30 ]; then
  say "qeval_gpu_test Variants.* (timeout $(cap "$VARIANTS_S" 20) s)"
  timeout "$(cap "$VARIANTS_S" 20)" "$C/qeval_gpu_test" --gtest_filter='Variants.*' --gtest_output=json:"$L/variants.json" \
    > "$L/variants.log" 2>&1
  say "variants rc=$?: $(grep -E '^\[  (PASSED|FAILED) ' "$L/variants.log" | head -2 | tr '\n' ' ')"
fi

# 5. Registers and spills of the compiled programs (NVIDIA's program binary is PTX), when ptxas is there.
PTXAS=$(command -v ptxas || ls /usr/local/cuda/bin/ptxas 2>/dev/null)
if [ -n "$PTXAS" ] && [ "$(left)" -gt 20 ]; then
  timeout "$(cap 20 5)" bash -c 'for f in "$1"/qeval-*.bin; do
      e=$(grep -m1 -o "\.entry [a-z_0-9]*" "$f") || continue
      echo "== $e $(basename "$f")"; "$2" -arch=sm_90 -v "$f" -o /dev/null 2>&1 | grep -E "Used|spill"
    done' _ "$QEVAL_CL_CACHE_DIR" "$PTXAS" > "$L/ptxas.txt" 2>&1
fi

[ -n "${DMON:-}" ] && kill "$DMON" 2> /dev/null
cp "$QEVAL_CL_CACHE_DIR"/probe-*.json "$L/" 2> /dev/null
python3 "$PWD/scripts/perf/gpu_summary.py" "$OUT/bench.json" "$OUT/tuning_table.json" > "$OUT/summary.md" 2> "$L/summary.err"
echo
echo "== failed tests (if any)"
grep -h -E '^\[  FAILED  \] [A-Za-z]' "$L/gpu_test.log" "$L/variants.log" 2> /dev/null | sort -u | head -20
grep -h -E 'Failure|differ' "$L/gpu_test.log" "$L/variants.log" 2> /dev/null | head -10
tar czf "$OUT/logs.tgz" -C "$OUT" logs && rm -rf "$L"
echo
cat "$OUT/summary.md"
say "done: tests rc=$TEST_RC, tune rc=$TUNE_RC, bench rc=$BENCH_RC; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
