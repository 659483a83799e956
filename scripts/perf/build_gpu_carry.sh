#!/usr/bin/env bash
# scripts/perf/build_gpu_carry.sh — builds the OpenCL test, tuner and benchmark programs without LibTorch and puts
# them, with the two shared libraries a bare GPU machine lacks, into .gpucarry/ for reports/perf/run_opencl_gpu.sh.
#
#   scripts/perf/build_gpu_carry.sh            # build folder build-gpu/ (BUILD_DIR=... to change), -j2 (JOBS=...)
#
# .gpucarry/ (git-ignored): qeval_gpu_test, qeval_tune, qeval_bench_gpu (stripped) and lib/libOpenCL.so.1 (the ICD
# loader) + lib/libbenchmark.so.1debian. Everything else they need (libstdc++, libc) is on any CUDA image. The
# device tool carries it with carry=[".gpucarry"] (a few MiB; the limit is 64 MiB with the working tree).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
B=${BUILD_DIR:-build-gpu}
C=.gpucarry
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DQEVAL_TORCH=OFF \
  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache > /dev/null
cmake --build "$B" -j"${JOBS:-2}" --target qeval_gpu_test qeval_tune qeval_bench_gpu
rm -rf "$C" && mkdir -p "$C/lib"
git check-ignore -q "$C/" || { echo "build_gpu_carry: $C is not git-ignored (.gitignore)" >&2; exit 1; }
cp "$B/tests/gpu/qeval_gpu_test" "$B/gpu/qeval_tune" "$B/tests/bench/qeval_bench_gpu" "$C/"
strip "$C"/qeval_*
for lib in libOpenCL.so.1 libbenchmark.so.1debian; do
  src=$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')
  [ -n "$src" ] || { echo "build_gpu_carry: $lib not found (apt-get install ocl-icd-libopencl1 libbenchmark1debian)" >&2; exit 1; }
  cp -L "$src" "$C/lib/$lib"
done
# Every library the programs need beyond what a CUDA image has must be in $C/lib.
missing=$(for f in "$C"/qeval_*; do LD_LIBRARY_PATH=$C/lib ldd "$f"; done | awk '/=>/ {print $1}' | sort -u |
  grep -vE '^(libstdc\+\+|libm|libc|libgcc_s|libpthread|libdl|librt|libOpenCL|libbenchmark)\.so' || true)
[ -z "$missing" ] || { echo "build_gpu_carry: also needed, not carried: $missing" >&2; exit 1; }
du -sh "$C"
echo "device tool: run(command=\"bash reports/perf/run_opencl_gpu.sh\", carry=[\"$C\"], timeout_s=600)"
