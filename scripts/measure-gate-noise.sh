#!/usr/bin/env bash
# scripts/measure-gate-noise.sh — what can legitimately move a gated model run between machines, measured: the
# model runs of configs/sweep-ci.json (with their reassociation twins) on this machine, then again under settings
# that change float summation order the way another machine would, each compared with `qeval check` against the
# first. Prints, per setting and run, |change| / tolerance for KL and dppl, and whether the weight fingerprints
# moved. The figures in docs/regression-gate.md and reports/gate/machine-noise.md come from this script.
#
#   scripts/measure-gate-noise.sh [OUT_DIR]      (default build/gate-noise; ~2 min per setting on 2 cores)
#   REUSE=1 scripts/measure-gate-noise.sh DIR    keep the sweeps already in DIR, redo the comparison
#   QEVAL_BUILD_DIR=dir                          build directory (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${QEVAL_BUILD_DIR:-build}"
out="${1:-$build/gate-noise}"
qeval="$build/eval/cli/qeval"
mkdir -p "$out"
# The model part of the CI sweep; threads=1 variant via a protocol copy (the protocol pins the thread count).
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
c = json.load(open("configs/sweep-ci.json"))
c["sweeps"] = [s for s in c["sweeps"] if s["kind"] == "model"]
json.dump(c, open(f"{out}/model-ci.json", "w"), indent=1)
d = json.load(open("configs/default-model.json"))
p = json.load(open(d["protocol"])); p["threads"] = 1
json.dump(p, open(f"{out}/protocol-t1.json", "w"))
for s in c["sweeps"]: s["protocol"] = f"{out}/protocol-t1.json"
json.dump(c, open(f"{out}/model-ci-t1.json", "w"), indent=1)
PY
settings=(
  "native|"
  "threads-1|"
  "QEVAL_CPU=ref|QEVAL_CPU=ref"
  "OpenBLAS-SkylakeX|OPENBLAS_CORETYPE=SkylakeX"
  "OpenBLAS-Sandybridge|OPENBLAS_CORETYPE=Sandybridge"
  "ATen-default|ATEN_CPU_CAPABILITY=default"
  "ATen-avx2|ATEN_CPU_CAPABILITY=avx2"
  "SkylakeX+ATen-default|OPENBLAS_CORETYPE=SkylakeX ATEN_CPU_CAPABILITY=default"
)
for s in "${settings[@]}"; do
  name=${s%%|*}; envs=${s#*|}
  cfg="$out/model-ci.json"; [ "$name" = threads-1 ] && cfg="$out/model-ci-t1.json"
  if [ "${REUSE:-0}" != 1 ] || [ ! -s "$out/$name.json" ]; then
    rm -rf "$out/cache-$name"
    echo "== $name ($envs)" >&2
    env $envs QEVAL_CACHE_DIR="$out/cache-$name" "$qeval" sweep --config "$cfg" --out "$out/$name.json" --jobs 2 \
      --progress none > "$out/$name.log"
  fi
  [ "$name" = native ] && continue
  cur="$out/$name.json"
  if [ "$name" = threads-1 ]; then
    # The protocol pins the thread count, so these runs have other ids: compare them in plan order under the
    # native runs' ids (the specs differ in "threads" only).
    python3 - "$out/native.json" "$cur" "$out/$name-as-native.json" <<'PY'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
for ra, rb in zip(a["runs"], b["runs"]):
    rb["id"], rb["spec"], rb["name"] = ra["id"], ra["spec"], ra["name"]
b["plan"], b["protocol"] = a["plan"], a["protocol"]
json.dump(b, open(sys.argv[3], "w"))
PY
    cur="$out/$name-as-native.json"
  fi
  "$qeval" check --json --baseline "$out/native.json" "$cur" > "$out/check-$name.json" || true
done
python3 - "$out" "${settings[@]}" <<'PY'
import json, sys
out, names = sys.argv[1], [s.split("|")[0] for s in sys.argv[2:]]
base = {r["id"]: r for r in json.load(open(f"{out}/native.json"))["runs"]}
print(f"{'setting':22} {'run':34} {'KL rel change':>13} {'|dKL|/tol':>9} {'|ddppl|/tol':>11} {'weights':>8}")
for n in names[1:]:
    chk = json.load(open(f"{out}/check-{n}.json"))
    cur = {r["id"]: r for r in json.load(open(f"{out}/{n}-as-native.json" if n == "threads-1" else f"{out}/{n}.json"))["runs"]}
    rows = {}
    for c in chk["checks"]:
        rows.setdefault(c["id"], {})[c["metric"]] = abs(c["worse_by"]) / c["tolerance"] if c["tolerance"] else float("inf")
    for i, r in base.items():
        b, c = r["metrics"], cur[i]["metrics"]
        rel = c["kl"]["mean"] / b["kl"]["mean"] - 1
        moved = "same" if b["fingerprint"] == c["fingerprint"] else "moved"
        print(f"{n:22} {r['name'][:34]:34} {rel:13.2e} {rows[i]['kl_mean']:9.3f} {rows[i]['delta_ppl']:11.3f} {moved:>8}")
    print(f"{n:22} gate: {'PASS' if chk['pass'] else 'FAIL'} (z = {chk['z']:.3f})")
print()
print("twins on this machine (native):")
for r in base.values():
    t = r["metrics"]["twin"]
    print(f"  {r['name'][:34]:34} KL {r['metrics']['kl']['mean']:.6g}  twin dKL {t['kl']['delta']:+.2e} se {t['kl']['se']:.2e}"
          f"  ddppl {t['delta_ppl']['delta']:+.2e} se {t['delta_ppl']['se']:.2e}  weights {'kept' if t['fingerprint_equal'] else 'moved in %d layers' % len(t['changed_layers'])}")
PY
