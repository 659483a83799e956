#!/usr/bin/env bash
# scripts/perf/eval_speed.sh — qeval's evaluation speed against llama.cpp's llama-perplexity, same GGUF, text, chunks
# and threads, in one sitting (issue 12 "Evaluation speed"; issue 15 compares wall/RSS the same way).
#
#   scripts/perf/eval_speed.sh [OUT_DIR]      default OUT_DIR: reports/perf/eval_speed
#   CHUNKS=32 THREADS=2 BACKENDS="ref cpu"    what to run (BACKENDS: the model backends qeval's W8A8 run uses)
#
# Needs build/ (qeval) and llama.cpp built by reports/llamacpp/build_and_run.sh build f32 (EXT=/work/ext: the tools
# and the F32 GGUF of SmolLM2's Q4_1 weights). Runs, each under /usr/bin/time -v (wall, peak RSS), with the load
# average before and after:
#   llama.cpp F32 file, fp32 settings (-ctk f32 -ctv f32 -fa off -b 512)    the computation qeval's fp pass matches
#   llama.cpp Q4_1 file, defaults (-b 512)                                  what a user runs (Q8_1 activations)
#   qeval fp reference pass on the Q4_1 file (= the F32 weights), cold cache (metrics.timings.reference_s)
#   qeval W8A8 (rtn int8 per-channel weights, dynamic per-token int8 activations) per backend (timings.eval_s)
# and prints tokens/s = CHUNKS·512 / seconds with the ratio to llama.cpp F32 of the same sitting. Raw outputs land
# in OUT_DIR; summarize them into a report with the table this prints.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
out="${1:-reports/perf/eval_speed}"
CHUNKS="${CHUNKS:-32}" THREADS="${THREADS:-2}" BACKENDS="${BACKENDS:-ref cpu}"
EXT="${EXT:-/work/ext}"
bin="$EXT/llama.cpp-build/bin"
q41="models/external/SmolLM2-135M-Instruct.Q4_1.gguf"
f32="$EXT/SmolLM2-135M-Instruct.F32.gguf"
text="data/wikitext-2-raw/wiki.test.raw"
qeval="build/eval/cli/qeval"
protocol="configs/protocol-wikitext2-512-first32.json"
for f in "$bin/llama-perplexity" "$f32" "$q41" "$qeval"; do
  [ -e "$f" ] || { echo "eval_speed.sh: $f missing (scripts/setup.sh; reports/llamacpp/build_and_run.sh build f32)" >&2; exit 1; }
done
[ "$CHUNKS" = 32 ] || { echo "eval_speed.sh: the qeval protocol pins 32 chunks ($protocol); CHUNKS=$CHUNKS differs" >&2; exit 1; }
mkdir -p "$out"
tokens=$((CHUNKS * 512))

timed() {  # timed NAME CMD...: stdout/stderr/time -v into $out/NAME.*, load average around it
  local name="$1"; shift
  { echo "+ $*"; echo "# loadavg before: $(cat /proc/loadavg)"; } > "$out/$name.cmd"
  /usr/bin/time -v -o "$out/$name.time" "$@" > "$out/$name.stdout" 2> "$out/$name.stderr"
  echo "# loadavg after: $(cat /proc/loadavg)" >> "$out/$name.cmd"
}
wall() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$1"; }
rss() { awk -F': ' '/Maximum resident set size/ {printf "%.2f", $2/1048576}' "$1"; }

timed llamacpp-f32-fp32 "$bin/llama-perplexity" -m "$f32" -f "$text" -c 512 --chunks "$CHUNKS" -t "$THREADS" \
  -b 512 -ctk f32 -ctv f32 -fa off
timed llamacpp-q4_1-default "$bin/llama-perplexity" -m "$q41" -f "$text" -c 512 --chunks "$CHUNKS" -t "$THREADS" -b 512
cache="$(mktemp -d)"
trap 'rm -rf "$cache"' EXIT
for be in $BACKENDS; do
  be_opt=()
  [ "$be" = ref ] || be_opt=(--backend "$be")  # ref: today's path, also where the backend axis does not exist
  QEVAL_CACHE_DIR="$cache/$be" timed "qeval-w8a8-$be" "$qeval" sweep --model "$q41" --protocol "$protocol" \
    --scheme rtn --bits 8 --group-sizes row --activation dynamic_per_token "${be_opt[@]}" --jobs 1 \
    --progress none --out "$out/qeval-w8a8-$be.json"
done

llama_wall=$(wall "$out/llamacpp-f32-fp32.time")
printf '%-34s %10s %10s %9s %8s\n' "what" "seconds" "tokens/s" "x llama" "RSS GB"
row() { printf '%-34s %10.2f %10.0f %9.3f %8s\n' "$1" "$2" "$(echo "$tokens / $2" | bc -l)" \
  "$(echo "$llama_wall / $2" | bc -l)" "$3"; }
row "llama.cpp F32 fp32 (whole command)" "$llama_wall" "$(rss "$out/llamacpp-f32-fp32.time")"
row "llama.cpp Q4_1 default (whole)" "$(wall "$out/llamacpp-q4_1-default.time")" "$(rss "$out/llamacpp-q4_1-default.time")"
for be in $BACKENDS; do
  j="$out/qeval-w8a8-$be.json"
  ref=$(python3 -c "import json,sys; r=json.load(open('$j'))['runs'][0]['metrics']['timings']; print(r['reference_s'])")
  ev=$(python3 -c "import json,sys; r=json.load(open('$j'))['runs'][0]['metrics']['timings']; print(r['eval_s'])")
  [ "$be" = "${BACKENDS%% *}" ] && row "qeval fp reference pass" "$ref" "-"
  row "qeval W8A8 pass, backend $be" "$ev" "-"
  row "qeval W8A8 whole command ($be)" "$(wall "$out/qeval-w8a8-$be.time")" "$(rss "$out/qeval-w8a8-$be.time")"
done
