#!/usr/bin/env bash
# scripts/perf/memory.sh — peak RSS and wall time per stage of one RTN int8 model run on the random 460M GGUF (issue 15).
#
# Builds nothing: needs build/eval/cli/qeval and build/tests/eval/model/qeval_make_random_gguf. Generates
# build/random-460m.gguf (d 2048, 8 layers, all F16) when missing, then runs one RTN int8 per-row run on 4 chunks
# of 512 (configs/protocol-wikitext2-512-first4.json) twice: cold (empty fp-reference cache) and warm (the cache
# the cold run filled). Writes the raw outputs to build/perf/<label>-{cold,warm}.{json,time} and appends a section
# to the report: peak RSS, wall time, the run's stage timings and, per stage, the resident set after it and the peak so
# far (the run's timings.memory_gb).
#   [QEVAL=path/to/qeval] [PRESET=460m|7b] scripts/perf/memory.sh [LABEL] [REPORT]     (defaults: "current", reports/perf/memory.md)
set -euo pipefail
cd "$(dirname "$0")/../.."
label=${1:-current}
report=${2:-reports/perf/memory.md}
qeval=${QEVAL:-build/eval/cli/qeval}  # QEVAL=<copy of main's binary> measures the "before" in the same sitting
gen=build/tests/eval/model/qeval_make_random_gguf
preset=${PRESET:-460m}  # PRESET=7b: Llama-2-7B's block, 2 layers (per-layer cost)
model=build/random-$preset.gguf
for b in "$qeval" "$gen"; do
  [[ -x $b ]] || { echo "memory.sh: $b missing — cmake --build build --target qeval qeval_make_random_gguf" >&2; exit 2; }
done
[[ -f $model ]] || "$gen" --preset "$preset" --out "$model"
mkdir -p build/perf "$(dirname "$report")"
cache=build/perf/cache-$label
rm -rf "$cache"
run() {  # $1: cold|warm
  local out=build/perf/$label-$1
  rm -f "$out.json" "$out.json.jsonl"
  QEVAL_CACHE_DIR=$cache /usr/bin/time -v "$qeval" sweep --model "$model" \
    --protocol configs/protocol-wikitext2-512-first4.json --scheme rtn --bits 8 --group-sizes row \
    --out "$out.json" --jobs 1 --progress none >"$out.log" 2>"$out.time"
  python3 - "$out.json" "$out.time" "$1" <<'PY'
import json, re, sys
rep, tim, kind = sys.argv[1:]
t = open(tim).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1e6
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", t).group(1)
secs = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall.split(":"))))
run = json.load(open(rep))["runs"][0]
tm = run["metrics"]["timings"]
flat = {k: v for k, v in tm.items() if isinstance(v, (int, float))}
flat.update({"quantize." + k: v for k, v in tm.get("quantize", {}).items() if isinstance(v, (int, float))})
mem = tm.get("memory_gb", {})  # per stage: resident set after it / peak so far (GB); absent for older binaries
stages = ", ".join(f"{k[:-2]} {v['rss']:.2f}/{v['peak']:.2f}" for k, v in mem.items())
print(f"| {kind} | {rss:.2f} | {secs:.1f} | " + ", ".join(f"{k} {v:.2f}" for k, v in flat.items()) + f" | {stages or '—'} |")
PY
}
{
  echo
  echo "### $label ($(date -u +%FT%TZ), $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!reports' || echo '+dirty'))"
  echo
  echo "\`QEVAL_CACHE_DIR=$cache /usr/bin/time -v $qeval sweep --model $model --protocol configs/protocol-wikitext2-512-first4.json --scheme rtn --bits 8 --group-sizes row --jobs 1\`"
  echo
  echo "| cache | peak RSS GB | wall s | stage timings (s) | after each stage: resident / peak so far (GB) |"
  echo "|---|---|---|---|---|"
  run cold
  run warm
} | tee -a "$report"
