#!/usr/bin/env python3
# scripts/models_table.py — Markdown tables of model runs from qeval reports (reports/models.md is made with it).
#
#   scripts/models_table.py reports/models/embedded-rtn.report.json [more.json ...]
#
# One table per (model, protocol): plan, bits/weight, ppl ± se, Δppl ± se (paired), KL mean ± se, KL p99,
# top-1 agreement, quantize and total wall time. The fp row comes from the runs' shared reference.
import json
import math
import sys


def label(plan):
    w = plan.get("weight")
    parts = []
    if w:
        p = w.get("params", {})
        g = p.get("group_size", 0)
        gs = f"g{g}" if g > 0 else ("per-channel" if g == 0 else "per-tensor")
        if p.get("partial_last_group"):
            gs += "+tail"
        m = "sym" if p.get("mapping", "symmetric") == "symmetric" else "asym"
        opts = "".join(f" {k}={v}" for k, v in sorted(w.get("options", {}).items()))
        parts.append(f"{w['scheme']} W{p.get('bits')} {gs} {m}{opts}")
    a = plan.get("activation")
    if a:
        p = a.get("params", {})
        parts.append(f"A{p.get('bits', '')} {a['scheme']}")
    return " + ".join(parts) if parts else "fp"


def fmt(x, nd):
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def main(paths):
    groups = {}
    for path in paths:
        rep = json.load(open(path))
        for r in rep["runs"]:
            if r.get("kind") != "model" or "metrics" not in r:
                continue
            m = r["metrics"]
            key = (m["model"]["path"], m["protocol"]["name"])
            groups.setdefault(key, []).append(r)
    for (model, proto), runs in groups.items():
        m0 = runs[0]["metrics"]
        fp = m0["fp_ppl"]
        print(f"**{model}**, protocol `{proto}` ({m0['n_windows']} windows of {m0['protocol']['n_ctx']}, "
              f"{fp['n_tokens']} scored tokens). fp: ppl {fp['ppl']:.4f} ± {fp['ppl_se']:.4f}\n")
        print("| plan | bits/weight | ppl | Δppl ± se | KL mean ± se | KL p99 | top-1 | quantize s | run s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in runs:
            m = r["metrics"]
            ppl = m["ppl"]["ppl"]
            dse = ppl * m["delta_mean_nll_se"]  # delta method: d ppl = ppl · d mean nll
            t = m.get("timings", {})
            print(f"| {label(m['plan'])} | {fmt(m.get('bits_per_weight'), 3)} | {ppl:.4f} | "
                  f"{m['delta_ppl']:+.4f} ± {dse:.4f} | {m['kl']['mean']:.5f} ± {m['kl']['se']:.5f} | "
                  f"{m['kl']['p99']:.4f} | {100 * m['top1']:.2f} % | {fmt(t.get('quantize_s'), 1)} | "
                  f"{fmt(t.get('total_s'), 1)} |")
        print()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: scripts/models_table.py REPORT.json [...]")
    main(sys.argv[1:])
