#!/usr/bin/env python3
"""scripts/fuzz_summary.py — one Markdown table row per libFuzzer log (scripts/fuzz.sh's build-fuzz/fuzz-logs/*.log).

Usage: scripts/fuzz_summary.py LOG... (plain or .gz). Columns: driver, executions, seconds, exec/s, coverage and
features at the seeds (INITED) and at the end, final corpus, peak RSS, and the result (clean, or the first
sanitizer/libFuzzer error line).
"""
import gzip
import os
import re
import sys


def read(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", errors="replace") as f:
        return f.read()


def last(pattern, text, group=1, default="?"):
    found = re.findall(pattern, text, re.M)
    if not found:
        return default
    v = found[-1]
    return v if isinstance(v, str) else v[group - 1]


def row(path):
    t = read(path)
    name = os.path.basename(path).split(".")[0]
    runs = last(r"^Done (\d+) runs in \d+ second", t)
    secs = last(r"^Done \d+ runs in (\d+) second", t)
    eps = last(r"^stat::average_exec_per_sec:\s+(\d+)", t)
    init = re.search(r"^#\d+\s+INITED cov: (\d+) ft: (\d+)", t, re.M)
    end = re.findall(r"^#\d+\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)", t, re.M)
    rss = last(r"^stat::peak_rss_mb:\s+(\d+)", t)
    err = re.search(r"^(==\d+==ERROR.*|SUMMARY: .*|.*runtime error:.*|.*deadly signal.*)$", t, re.M)
    result = "clean" if runs != "?" and not err else (err.group(1).strip() if err else "incomplete")
    cov0 = f"{init.group(1)} / {init.group(2)}" if init else "?"
    cov1 = f"{end[-1][0]} / {end[-1][1]}" if end else "?"
    corp = f"{end[-1][2]} ({end[-1][3]})" if end else "?"
    return f"| {name} | {runs} | {secs} | {eps} | {cov0} | {cov1} | {corp} | {rss} | {result} |"


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    print("| driver | executions | seconds | exec/s | cov / ft at seeds | cov / ft at end | corpus | peak RSS MB | result |")
    print("|---|---|---|---|---|---|---|---|---|")
    for p in argv[1:]:
        print(row(p))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
