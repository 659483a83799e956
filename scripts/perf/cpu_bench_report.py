#!/usr/bin/env python3
# scripts/perf/cpu_bench_report.py — turns qeval_bench_quant's JSON into reports/perf/cpu_quantize.md (medians, ratios).
#
#   scripts/perf/cpu_bench_report.py reports/perf/cpu_quantize.json reports/perf/cpu_quantize.md
#
# Reads the load averages, the command and the load threshold that run_cpu_bench.sh stores in the JSON's
# context (qeval_load_before/after, qeval_command, qeval_max_load).
import datetime, json, sys
src, md_path = sys.argv[1:3]
d = json.load(open(src))
ctx = d["context"]
load_before = ctx.get("qeval_load_before", "?")
load_after = ctx.get("qeval_load_after", "?")
cmd = ctx.get("qeval_command", "?")
max_load = ctx.get("qeval_max_load", "?")

med = {}   # run_name -> median aggregate
cv = {}
for b in d["benchmarks"]:
    if b.get("run_type") != "aggregate":
        continue
    if b["aggregate_name"] == "median":
        med[b["run_name"]] = b
    elif b["aggregate_name"] == "cv":
        cv[b["run_name"]] = b["real_time"]

# Rates are per wall-clock second (the benchmarks use UseRealTime). On a shared machine the process
# may be descheduled; the same rate per CPU-second (rate · real_time / cpu_time) is given beside it.
def rate(name, key, cpu=False):
    b = med.get(name)
    if not b or key not in b:
        return None
    v = b[key] / 1e9
    if cpu and b.get("cpu_time"):
        v *= b["real_time"] / b["cpu_time"]
    return v

def gbps(name, cpu=False):
    return rate(name, "bytes_per_second", cpu)

def gops(name, cpu=False):
    return rate(name, "ops", cpu)

def ratio(a, b):
    return a / b if a and b else None

def fmt(x, f="{:.2f}"):
    return "n/a" if x is None else f.format(x)

def pct(x):
    return "n/a" if x is None else f"{100 * x:.1f}"

lines = []
w = lines.append
w("# CPU quantize / dequantize / int8 GEMM — single-core performance")
w("")
w(f"- Date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')} (benchmark run {ctx.get('date', '?')})")
cpuinfo = {}
try:
    for line in open("/proc/cpuinfo"):
        if ":" in line:
            k, v = (t.strip() for t in line.split(":", 1))
            cpuinfo.setdefault(k, v)
except OSError:
    pass
fam = f" (family {cpuinfo['cpu family']}, model {cpuinfo['model']}, stepping {cpuinfo.get('stepping', '?')})" \
    if "cpu family" in cpuinfo and "model" in cpuinfo else ""
caches = ", ".join(f"L{c['level']}{c['type'][0] if c['type'] != 'Unified' else ''} {c['size'] // 1024} KiB"
                   for c in ctx.get("caches", []))
w(f"- CPU: {ctx.get('cpu_model', '?')}{fam}, {ctx.get('num_cpus', '?')} logical CPUs, "
  f"{ctx.get('mhz_per_cpu', '?')} MHz (reported), caches {caches}; features: {ctx.get('cpu_features', '?')}")
w(f"- qeval kernels: quantize = {ctx.get('qeval_quantize_isa', '?')}, GEMM = {ctx.get('qeval_gemm_isa', '?')}; "
  f"oneDNN {ctx.get('onednn_version', 'not built')}")
w(f"- Load average (1/5/15 min) before: {load_before}; after: {load_after}. The machine has 2 cores shared "
  f"with other work; 'quiet' means a 1-minute load ≤ {max_load} — see the CV column for the spread of the "
  f"{len([1 for b in d['benchmarks'] if b.get('run_type') == 'iteration' and b['run_name'].startswith('memcpy')])} "
  f"repetitions.")
w(f"- Command: `{cmd}` (via `scripts/perf/run_cpu_bench.sh`); figures are medians of the repetitions, "
  f"wall-clock time, one thread.")
wall_cvs = [v for v in cv.values()]
if wall_cvs and max(wall_cvs) > 0.05:
    w(f"- **Noise:** the repetitions' coefficient of variation (wall clock) reaches {100 * max(wall_cvs):.0f} % "
      f"(median {100 * sorted(wall_cvs)[len(wall_cvs) // 2]:.0f} %): the other core's work preempts this process and "
      f"shares memory bandwidth, so the wall-clock figures are indicative. The CPU-time columns (rate per "
      f"CPU-second) are not affected by preemption and are the steadier comparison; they are still affected "
      f"by shared caches and memory bandwidth.")
w("")
w("## Quantize / dequantize, 4096 × 4096 fp32 (64 MiB), bytes/s of the fp32 side")
w("")
mname = "memcpy/4096x4096_fp32/real_time"
mc, mc_cpu = gbps(mname), gbps(mname, cpu=True)
w(f"memcpy of the same 64 MiB (same run): **{fmt(mc)} GB/s** wall-clock, {fmt(mc_cpu)} GB/s per CPU-second "
  f"(CV {pct(cv.get(mname))} %)")
w("")
w("| operation | scheme | ref GB/s | avx512 GB/s | **avx512 ÷ memcpy** | same, CPU time | avx512 ÷ ref | CV avx512 % | goal ≥ 50 % memcpy |")
w("|---|---|---|---|---|---|---|---|---|")
for op in ("quantize", "dequantize"):
    for s in ("int8_sym_per_token", "int4_asym_g128"):
        r = gbps(f"{op}/ref/{s}/real_time")
        name = f"{op}/avx512/{s}/real_time"
        f, f_cpu = gbps(name), gbps(name, cpu=True)
        rt = ratio(f, mc)
        goal = "" if op != "quantize" else ("n/a" if rt is None else "met" if rt >= 0.5 else "NOT met")
        w(f"| {op} | {s} | {fmt(r)} | {fmt(f)} | **{pct(rt)} %** | {pct(ratio(f_cpu, mc_cpu))} % | "
          f"{fmt(ratio(f, r), '{:.1f}')}× | {pct(cv.get(name))} | {goal} |")
w("")
w("## int8 GEMM C[M,N] = A[M,K]·B[N,K]ᵀ (s8 × s8 → s32), Gops/s (2·M·N·K per second)")
w("")
w("oneDNN `plain`: weights passed as the same row-major B[N][K] (format `ba`) our kernel takes; "
  "`prepacked`: weights reordered once, outside the timed loop, to oneDNN's preferred layout.")
w("")
paths = [p for p in ("qeval_best", "qeval_vnni", "qeval_amx") if any(k.startswith(f"gemm_s8s8s32/{p}/") for k in med)]
hdr = ("| M×N×K | " + " | ".join(f"{p} Gops/s" for p in paths) +
       " | oneDNN plain | oneDNN prepacked | **qeval_best ÷ oneDNN plain** | **qeval_best ÷ oneDNN prepacked** |"
       " same two, CPU time |")
w(hdr)
w("|" + "---|" * (hdr.count("|") - 1))
shapes = sorted({tuple(k.split("/")[2:5]) for k in med if k.startswith("gemm_s8s8s32/qeval_best/")},
                key=lambda t: [int(x.split(":")[1]) for x in t])
for m, n, kk in shapes:
    tail = f"{m}/{n}/{kk}/real_time"
    vals = [gops(f"gemm_s8s8s32/{p}/{tail}") for p in paths]
    odp, odk = gops(f"gemm_s8s8s32/onednn_plain/{tail}"), gops(f"gemm_s8s8s32/onednn_prepacked/{tail}")
    best = vals[0]
    best_c = gops(f"gemm_s8s8s32/qeval_best/{tail}", cpu=True)
    odp_c = gops(f"gemm_s8s8s32/onednn_plain/{tail}", cpu=True)
    odk_c = gops(f"gemm_s8s8s32/onednn_prepacked/{tail}", cpu=True)
    dims = "×".join(x.split(":")[1] for x in (m, n, kk))
    w(f"| {dims} | " + " | ".join(fmt(v, "{:.1f}") for v in vals) + f" | {fmt(odp, '{:.1f}')} | {fmt(odk, '{:.1f}')} | "
      f"**{fmt(ratio(best, odp))}** | **{fmt(ratio(best, odk))}** | {fmt(ratio(best_c, odp_c))} / {fmt(ratio(best_c, odk_c))} |")
ref = gops("gemm_s8s8s32/ref/M:1/N:4096/K:4096/real_time")
if ref:
    w("")
    w(f"Scalar reference at 1×4096×4096: {ref:.2f} Gops/s.")
w("")
w("Raw data: `reports/perf/cpu_quantize.json` (Google Benchmark JSON, every repetition and the aggregates).")
open(md_path, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
