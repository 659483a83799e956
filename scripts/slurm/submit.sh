#!/usr/bin/env bash
# scripts/slurm/submit.sh — run a qeval sweep as a Slurm array job (one task per shard) and merge the parts.
#
#   scripts/slurm/submit.sh --config configs/sweep.json --shards N --out merged.json [options] [-- sbatch args...]
#
#   --config FILE   the sweep config (the same file `qeval sweep --config` takes; relative input paths resolve
#                   against --chdir)
#   --shards N      array tasks; task i runs `qeval sweep --config FILE --shard i/N --out PARTS/part-i.json`
#                   (runs i, i+N, ... of the plan). `--shards runs`: one task per run.
#   --out FILE      the merged report (`qeval merge PARTS/part-*.json -o FILE`, a dependent job)
#   --parts DIR     where the per-task reports and logs go (default: FILE.parts)
#   --qeval BIN     the qeval binary every task runs (default: build/eval/cli/qeval; must be reachable from the
#                   compute nodes, e.g. on a shared file system)
#   --chdir DIR     working directory of the tasks (default: the current directory)
#   --jobs J        threads per task (`qeval sweep --jobs`, and sbatch --cpus-per-task; default 1)
#   --wait          block until the merge job has finished; exit status = the merge job's
#   -- ARGS         passed to both sbatch calls (e.g. -- --partition=gpu --time=01:00:00)
#
# Each task passes --resume, so a requeued or re-submitted task continues from its journal instead of
# starting over; the merge job runs only if every task succeeded (afterok) and fails, naming the missing
# shards, if a part is absent. Prints the array and merge job ids.
set -euo pipefail

config="" shards="" out="" parts="" qeval="" chdir="" jobs=1 wait=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config="$2"; shift 2 ;;
    --shards) shards="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --parts) parts="$2"; shift 2 ;;
    --qeval) qeval="$2"; shift 2 ;;
    --chdir) chdir="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --wait) wait=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "submit.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$config" ] && [ -n "$shards" ] && [ -n "$out" ] || { echo "submit.sh: --config, --shards and --out are required (see --help)" >&2; exit 2; }
command -v sbatch >/dev/null || { echo "submit.sh: sbatch not found (is this a Slurm login node? apt-get install slurm-client)" >&2; exit 3; }

here=$(pwd)
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$here/$1" ;; esac; }
root=$(cd "$(dirname "$0")/../.." && pwd)
[ -n "$qeval" ] || qeval="$root/build/eval/cli/qeval"
qeval=$(abspath "$qeval")
config=$(abspath "$config")
out=$(abspath "$out")
[ -n "$parts" ] || parts="$out.parts"
parts=$(abspath "$parts")
[ -n "$chdir" ] || chdir="$here"
chdir=$(abspath "$chdir")
[ -x "$qeval" ] || { echo "submit.sh: qeval binary '$qeval' not found or not executable (--qeval)" >&2; exit 2; }
[ -r "$config" ] || { echo "submit.sh: cannot read config '$config'" >&2; exit 2; }
mkdir -p "$parts"

# Validate the config here, before anything is queued (every task repeats the check).
if ! (cd "$chdir" && "$qeval" sweep --config "$config" --dry-run > "$parts/plan.txt"); then
  echo "submit.sh: the sweep config is invalid (see the error above); nothing was submitted" >&2
  exit 2
fi
runs=$(head -1 "$parts/plan.txt" | sed -n 's/^qeval sweep: \([0-9]*\) run.*/\1/p')
if [ "$shards" = runs ]; then shards="$runs"; fi
case "$shards" in ''|*[!0-9]*) echo "submit.sh: --shards '$shards' is not a positive integer (or 'runs')" >&2; exit 2 ;; esac
[ "$shards" -ge 1 ] || { echo "submit.sh: --shards must be >= 1" >&2; exit 2; }
if [ -n "$runs" ] && [ "$shards" -gt "$runs" ]; then
  echo "submit.sh: --shards $shards is more than the $runs run(s) of the sweep; using $runs" >&2
  shards="$runs"
fi

last=$((shards - 1))
array_id=$(sbatch --parsable --job-name=qeval-sweep --array="0-$last" --cpus-per-task="$jobs" \
  --chdir="$chdir" --output="$parts/task-%a.log" --error="$parts/task-%a.log" "${extra[@]}" <<SCRIPT
#!/bin/bash
set -euo pipefail
exec "$qeval" sweep --config "$config" --shard "\${SLURM_ARRAY_TASK_ID}/$shards" \
  --out "$parts/part-\${SLURM_ARRAY_TASK_ID}.json" --resume --jobs "$jobs" --progress lines
SCRIPT
)
array_id=${array_id%%;*}

partlist=""
for i in $(seq 0 "$last"); do partlist="$partlist \"$parts/part-$i.json\""; done
wait_flag=()
[ "$wait" = 1 ] && wait_flag=(--wait)
merge_id=$(sbatch --parsable "${wait_flag[@]}" --job-name=qeval-merge --dependency="afterok:$array_id" \
  --kill-on-invalid-dep=yes --chdir="$chdir" --output="$parts/merge.log" --error="$parts/merge.log" "${extra[@]}" <<SCRIPT
#!/bin/bash
set -euo pipefail
exec "$qeval" merge $partlist -o "$out"
SCRIPT
) || { rc=$?; echo "submit.sh: the merge job failed (rc $rc; see $parts/merge.log and $parts/task-*.log)" >&2; exit "$rc"; }
merge_id=${merge_id%%;*}
echo "submit.sh: array job $array_id ($shards task(s)), merge job $merge_id -> $out"
