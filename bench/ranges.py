"""Run-to-run ranges: reads several `bench/run --json` result files of the same scenarios and prints,
per scenario, each broker's rate and p99 (memory per idle connection) as min – max over the runs, and ours over the best peer as
min – max of the per-run ratios.

Usage: python3 bench/ranges.py run-1.jsonl run-2.jsonl run-3.jsonl"""

import json
import sys

BROKERS = ("ours", "mosquitto", "rumqttd", "rmqttd", "cluster", "floor")
PEERS = ("mosquitto", "rumqttd", "rmqttd")


def rate(r):
    return r.get("connects_per_s") or r.get("msgs_per_s")


def span(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)} – {fmt(hi)}"


def main(paths):
    runs = []
    for path in paths:
        by = {}
        for line in open(path):
            if line.strip():
                r = json.loads(line)
                if not r.get("skipped") and rate(r):
                    by.setdefault(r["name"], {})[r["broker"]] = r
        runs.append(by)
    names = list(dict.fromkeys(n for run in runs for n in run))
    count = lambda v: f"{v:,.0f}"
    ms = lambda v: f"{v / 1000:,.1f}"
    ratio = lambda v: f"{v:.2f}x"
    print(f"{len(runs)} runs; each cell: rate (p99 ms, or broker memory per idle connection)")
    print()
    print("| scenario | " + " | ".join(BROKERS) + " | ours / best peer |")
    print("|---|" + "---|" * (len(BROKERS) + 1))
    for name in names:
        cells = []
        for b in BROKERS:
            rs = [run[name][b] for run in runs if b in run.get(name, {})]
            if not rs:
                cells.append("")
                continue
            p99 = [r.get("p99_us") for r in rs if r.get("p99_us")]
            idle = [r.get("bytes_per_idle_conn") for r in rs if r.get("bytes_per_idle_conn")]
            extra = f" ({span(p99, ms)})" if p99 else f" ({span(idle, count)} B/conn)" if idle else ""
            cells.append(span([rate(r) for r in rs], count) + extra)
        ratios = []
        for run in runs:
            row = run.get(name, {})
            peers = [rate(row[p]) for p in PEERS if p in row]
            if "ours" in row and peers:
                ratios.append(rate(row["ours"]) / max(peers))
        print(f"| {name} | " + " | ".join(cells) + f" | {span(ratios, ratio)} |")


if __name__ == "__main__":
    main(sys.argv[1:])
