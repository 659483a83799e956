#!/usr/bin/env python3
# scripts/perf/gpu_summary.py — the short table of an OpenCL GPU run (reports/perf/run_opencl_gpu.sh): each kernel's
# figure, its ratio to the baseline measured in the same run, and the goal (issue 13).
#
#   gpu_summary.py bench.json [tuning_table.json]     # markdown table on stdout
#   gpu_summary.py --tuner tuning_table.json           # per tuned class: default vs chosen variant, rejections
#
# Goals: quantize and decode GEMM >= 70 % of the copy bandwidth, prefill GEMM >= 80 % of the measured dot4
# (dp4a) peak, W4A8 within 10 % of W8A8 (ratio >= 0.90). Works on an old JSON; a missing benchmark is "—".
import json, os, re, sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"(cannot read {path}: {e})", file=sys.stderr)
        return None


def sig(v, unit=""):
    return "—" if v is None else f"{v:.3g}{(' ' + unit) if unit else ''}"


def tuner_lines(table):
    bl = table.get("baselines", {})
    print(f"tuning table: {table.get('device')} (driver {table.get('driver')}), copy {sig(bl.get('copy_GBps'), 'GB/s')},"
          f" dot4 peak {sig(bl.get('dot4_peak_TOPS'), 'TOPS')} ({bl.get('dot4')}), {sig(table.get('elapsed_s'), 's')}")
    for name, e in table.get("classes", {}).items():
        tried = e.get("tried", [])
        rejected = sum(1 for t in tried if t.get("status") != "verified")
        d = tried[0] if tried else {}
        print(f"  {name:20s} default {d.get('name', '?')} {sig(d.get('figure'), e.get('unit', ''))};"
              f" chosen {e.get('name', 'none')} {sig(e.get('figure'), e.get('unit', ''))}"
              f" ({sig(e.get('ratio'))} of {e.get('baseline')}); tried {len(tried)}, rejected {rejected},"
              f" untried {e.get('untried', 0)}")
        for t in [t for t in tried if t.get("status") != "verified"][:3]:
            print(f"      {t.get('name')}: {t.get('status', '')[:160]}")


def bench_rows(bench):
    by = {re.sub(r"/manual_time$", "", b["name"]): b for b in bench.get("benchmarks", []) if b.get("run_type") != "aggregate"}

    def pick(pattern, skip=None):
        """The benchmark matching `pattern` with the largest shape (CPU dry runs register smaller shapes)."""
        best, size = None, -1
        for n, b in by.items():
            m = re.fullmatch(pattern, n)
            if not m or (skip and re.fullmatch(skip, n)):
                continue
            sz = 1
            for g in m.groups():
                sz *= int(g)
            if sz > size:
                best, size = n, sz
        return best

    def get(name, key):
        return None if name is None else by[name].get(key)

    def shape(name):
        return "" if name is None else "x".join(name.split("/")[2:])

    copy_n = pick(r"BM_CopyBuffer/(\d+)")
    peak_n = pick(r"BM_IntDotPeak/tier_dot4")
    copy, peak = get(copy_n, "GB/s"), get(peak_n, "TOPS")
    rows = [("copy, clEnqueueCopyBuffer (baseline)", sig(copy, "GB/s"), "", ""),
            ("dot4 peak, bench.cl (baseline)", sig(peak, "TOPS"), "", "" if peak_n is None else by[peak_n].get("label", ""))]

    def ratio_row(what, name, key, unit, base, goal):
        v = get(name, key)
        r = None if v is None or not base else v / base
        ok = "" if r is None else (" ✓" if r >= goal else " ✗")
        lab = "" if name is None else by[name].get("label", "")
        rows.append((f"{what} {shape(name)}", sig(v, unit), (sig(r) + ok) if r is not None else "—", f">= {goal:.2f}  {lab}"))

    ratio_row("quantize int8 sym per token, fp32", pick(r"BM_Quantize/int8_sym_token_f32/(\d+)/4096"), "GB/s", "GB/s", copy, 0.70)
    ratio_row("quantize int4 sym g128, fp32", pick(r"BM_Quantize/int4_sym_g128_f32/(\d+)/4096"), "GB/s", "GB/s", copy, 0.70)
    for m in (1, 16):
        big = rf"BM_GemmS8/decode_tuned/{m}/(\d+)/(\d+)"
        ratio_row(f"decode GEMM M={m} (tuned)", pick(big, rf"BM_GemmS8/decode_tuned/{m}/4096/4096"), "weight_GB/s", "GB/s", copy, 0.70)
        ratio_row(f"decode GEMM M={m} (untuned decode kernel)", pick(rf"BM_GemmS8/decode_tpc16/{m}/(\d+)/(\d+)", rf".*/{m}/4096/4096"),
                  "weight_GB/s", "GB/s", copy, 0.70)
        ratio_row(f"decode GEMM M={m}, L2-resident (tuned)", pick(rf"BM_GemmS8/decode_tuned/{m}/4096/4096"), "weight_GB/s", "GB/s", copy, 0.70)
    ratio_row("GEMM s8 (tuned)", pick(r"BM_GemmS8/tuned/(\d+)/(\d+)/(\d+)"), "TOPS", "TOPS", peak, 0.80)
    ratio_row("GEMM s8 (untuned large tile)", pick(r"BM_GemmS8/large/(\d+)/(\d+)/(\d+)"), "TOPS", "TOPS", peak, 0.80)
    w8n = pick(r"BM_W8A8/token_x_channel/(\d+)/(\d+)/(\d+)")
    ratio_row("W8A8 token x channel", w8n, "TOPS", "TOPS", peak, 0.80)
    ratio_row("W4A8 g128 (ratio: to W8A8)", pick(r"BM_W4A8/token_x_g128/(\d+)/(\d+)/(\d+)"), "TOPS", "TOPS", get(w8n, "TOPS"), 0.90)
    return rows


def main(argv):
    if len(argv) >= 2 and argv[0] == "--tuner":
        t = load(argv[1])
        if t:
            tuner_lines(t)
        return 0
    bench = load(argv[0]) if argv else None
    table = load(argv[1]) if len(argv) > 1 and os.path.exists(argv[1]) else None
    if bench:
        ctx = bench.get("context", {})
        print(f"OpenCL run: {ctx.get('cl_device', '?')}, driver {ctx.get('cl_driver', '?')}, GEMM tier {ctx.get('gemm_tier', '?')},"
              f" tuning table {ctx.get('tuning_table', '?')}, {ctx.get('date', '')}\n")
        print("| kernel | figure | ratio to baseline | goal, variant |")
        print("|---|---|---|---|")
        for r in bench_rows(bench):
            print("| " + " | ".join(r) + " |")
    if table:
        print()
        tuner_lines(table)
    return 0 if bench else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
