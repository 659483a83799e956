#!/usr/bin/env bash
# reports/perf/run_opencl_h100.sh — the exact commands of the OpenCL runs on the lent NVIDIA H100 (device tool).
#
# The binaries are built on the x86-64 dev machine (cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release
# -DQEVAL_TORCH=OFF; cmake --build build-gpu --target qeval_gpu_test qeval_bench_gpu) and carried in .gpucarry/
# with the one shared library the H100 image lacks (libbenchmark.so.1debian). The image's ICD directory lists
# only PoCL, so NVIDIA's ICD is registered first. Outputs go to $OUT (the device tool copies them back).
set -u
C=.gpucarry
export LD_LIBRARY_PATH=$PWD/$C/lib
echo libnvidia-opencl.so.1 > /etc/OpenCL/vendors/nvidia.icd
export QEVAL_CL_DEVICE=nvidia                  # the H100, not PoCL (both ICDs are installed there)
export QEVAL_CL_CACHE_DIR=/tmp/clcache && mkdir -p $QEVAL_CL_CACHE_DIR   # program binaries (PTX) for ptxas -v
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem,power.limit --format=csv > $OUT/nvidia_smi.csv
nvidia-smi dmon -s pc -d 1 > $OUT/dmon.txt 2>&1 &
DMON=$!
MODE=${1:-all}
if [ "$MODE" = all ] || [ "$MODE" = test ]; then
  QEVAL_TEST_EMU_SG16=1 timeout 200 $C/qeval_gpu_test --gtest_output=json:$OUT/gpu_test_h100.json \
    > $OUT/gpu_test_h100.log 2>&1
  echo "qeval_gpu_test rc=$?"; grep -E "PASSED|FAILED|device .*GEMM tier" $OUT/gpu_test_h100.log | head -20
fi
if [ "$MODE" = all ] || [ "$MODE" = bench ]; then
  timeout 330 $C/qeval_bench_gpu --benchmark_min_time=0.3 ${BENCH_FILTER:+--benchmark_filter=$BENCH_FILTER} \
    --benchmark_out=$OUT/opencl_bench_h100.json --benchmark_out_format=json > $OUT/bench_h100.log 2>&1
  echo "qeval_bench_gpu rc=$?"; grep -vE "^\s*$" $OUT/bench_h100.log | tail -45
fi
kill $DMON 2>/dev/null
# Register use and spills of every compiled program (NVIDIA's program binary is PTX).
for f in $QEVAL_CL_CACHE_DIR/*.bin; do
  echo "== $(grep -m1 -o '\.entry [a-z_0-9]*' $f) $(basename $f)"; ptxas -arch=sm_90 -v $f -o /dev/null 2>&1 | grep -E "Used|spill"
done > $OUT/ptxas.txt 2>&1
tar czf $OUT/ptx.tgz -C /tmp clcache 2>/dev/null
grep -A2 -E "gemm_tiled|gemm_decode|int_dot_peak" $OUT/ptxas.txt | head -40
