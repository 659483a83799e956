#!/usr/bin/env bash
# reports/llamacpp/build_and_run.sh — builds llama.cpp (vendored in the PyPI sdist llama-cpp-python 0.3.36) outside the
# repository and produces the pinned llama.cpp figures and raw logs of reports/llamacpp/ (no llama.cpp code is committed).
#
#   reports/llamacpp/build_and_run.sh build    download + unpack the sdist, configure, build 3 tools (-j2)
#   reports/llamacpp/build_and_run.sh f32      SmolLM2 Q4_1 GGUF -> F32 GGUF (same weights, dequantized)
#   reports/llamacpp/build_and_run.sh ppl      llama-perplexity runs whose output is committed in logs/
#   reports/llamacpp/build_and_run.sh timing   wall/CPU time of 32 chunks at 2 and 1 threads, F32 and Q4_1 (REPS=n: n times)
#   reports/llamacpp/build_and_run.sh all      build, f32, ppl, timing in order
#   reports/llamacpp/build_and_run.sh one NAME ARGS...   one llama-perplexity run (ARGS + -f wiki.test.raw -c 512) into logs/NAME.*
#   EXT=dir (default /work/ext): where the sdist, the build and the F32 GGUF go.
#
# ISA flags are explicit (GGML_NATIVE=OFF; AVX/AVX2/FMA/F16C/BMI2 on, AVX-512 off) so the figures do not depend on
# the CPU that built them: a -DGGML_NATIVE=ON build died with SIGILL on a Q4_1 file on these VMs.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
EXT="${EXT:-/work/ext}"
ver=0.3.36                      # llama-cpp-python; its CHANGELOG: "update llama.cpp to ggml-org/llama.cpp@0c1e57098"
sdist_sha=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
src="$EXT/llama_cpp_python-$ver/vendor/llama.cpp"
bld="$EXT/llama.cpp-build"
bin="$bld/bin"
q41="$repo/models/external/SmolLM2-135M-Instruct.Q4_1.gguf"
f32="$EXT/SmolLM2-135M-Instruct.F32.gguf"
text="$repo/data/wikitext-2-raw/wiki.test.raw"
logs="$repo/reports/llamacpp/logs"

build() {
  mkdir -p "$EXT" && cd "$EXT"
  [ -f "llama_cpp_python-$ver.tar.gz" ] ||
    python3 -m pip download --no-binary :all: --no-deps --dest "$EXT" "llama-cpp-python==$ver"
  echo "$sdist_sha  llama_cpp_python-$ver.tar.gz" | sha256sum -c -
  [ -d "$src" ] || tar xzf "llama_cpp_python-$ver.tar.gz"
  cmake -S "$src" -B "$bld" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
    -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF \
    -DGGML_OPENMP=ON -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_APP=OFF
  cmake --build "$bld" --target llama-perplexity llama-quantize llama-tokenize -j2
}

f32() {
  "$bin/llama-quantize" --allow-requantize "$q41" "$f32" F32
  sha256sum "$q41" "$f32"
}

# run <log name> <llama-perplexity args...>: raw stdout, stderr and /usr/bin/time -v (wall, RSS) into logs/<name>.*
run() {
  local name="$1"; shift
  mkdir -p "$logs"
  { echo "+ llama-perplexity $* -f $text -c 512" | sed "s|$repo/||g; s|$EXT|\$EXT|g"
    echo "# /proc/loadavg before: $(cat /proc/loadavg)"; } > "$logs/$name.cmd"
  /usr/bin/time -v -o "$logs/$name.time" "$bin/llama-perplexity" "$@" -f "$text" -c 512 \
    > "$logs/$name.stdout" 2> "$logs/$name.stderr"
  echo "# /proc/loadavg after: $(cat /proc/loadavg)" >> "$logs/$name.cmd"
  grep -h "Final estimate" "$logs/$name.stderr" "$logs/$name.stdout" || true
}

ppl() {
  # The pinned figures: fp32 everywhere — F32 weights, F32 KV cache (the default F16 cache rounds K and V, and
  # flash attention then rounds Q to F16 too), no flash attention, one window per batch (-b 512: n_seq = 1),
  # --ppl-output-type 1 (prints the running mean NLL with 6 decimals, not only ppl with 4).
  local fp32=(-ctk f32 -ctv f32 -fa off -b 512 --ppl-output-type 1)
  for n in 4 32; do
    for t in 1 2; do run "f32-fp32kv-c512-chunks$n-t$t" -m "$f32" --chunks "$n" -t "$t" "${fp32[@]}"; done
  done
  # As a new user runs it (defaults: F16 KV cache, flash attention auto, -b 2048 = 4 windows per batch).
  run "f32-default-c512-chunks32-t2" -m "$f32" --chunks 32 -t 2
  run "f32-default-c512-chunks4-t2" -m "$f32" --chunks 4 -t 2 -b 512
  run "q4_1-default-c512-chunks32-t2" -m "$q41" --chunks 32 -t 2
  run "q4_1-default-c512-chunks4-t2" -m "$q41" --chunks 4 -t 2 -b 512
  lscpu > "$logs/lscpu.txt"
  "$bin/llama-perplexity" --version > "$logs/version.txt" 2>&1
}

# Wall and CPU time (logs/*.time, /usr/bin/time -v) of 32 chunks as a user runs it, for the perf issues. The machine
# is shared: the load average before and after is in logs/*.cmd; the CPU time of the 1-thread runs is the steadiest
# figure (2 threads spin-wait for each other when a third job takes a core).
timing() {
  for r in $(seq 1 "${REPS:-1}"); do
    for t in 2 1; do
      run "time-f32-default-c512-chunks32-t$t-rep$r" -m "$f32" --chunks 32 -t "$t"
      run "time-q4_1-default-c512-chunks32-t$t-rep$r" -m "$q41" --chunks 32 -t "$t"
    done
  done
}

case "${1:-all}" in
  build) build ;;
  f32) f32 ;;
  ppl) ppl ;;
  timing) timing ;;
  all) build; f32; ppl; timing ;;
  one) shift; run "$@" ;;
  *) echo "usage: $0 build|f32|ppl|timing|all|one NAME ARGS..." >&2; exit 2 ;;
esac
