"""Prints bench/run's results as one Markdown table with the ratio ours/Mosquitto (and ours/best peer
when rumqttd or rmqttd ran too) per scenario
(cluster/ours for the scenarios run on a cluster of three brokers; for "rules": ours with rules over
ours without, "rules-off"), and one row per rule target."""

import json
import platform
import sys


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.0f}{unit}" if abs(v) >= 100 else f"{v:.2f}{unit}"
    return f"{v:,}{unit}"


def main(path, fd_limit):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    by = {}
    for r in rows:
        by.setdefault(r["name"], {})[r["broker"]] = r
    cpu = open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": \t")
    print(f"machine: {platform.machine()}, {cpu}, {len([l for l in open('/proc/cpuinfo') if l.startswith('processor')])} cores, fd limit {fd_limit}")
    print()
    print("| scenario | broker | rate (msg/s or conn/s) | p50 ms | p99 ms | lost | dup | CPU % | peak RSS MiB | B/idle conn | ours/mosquitto |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, brokers in by.items():
        for broker in ("ours", "mosquitto", "rumqttd", "rmqttd", "cluster", "floor"):
            r = brokers.get(broker)
            if r is None:
                continue
            if r.get("skipped"):
                print(f"| {name} | {broker} | - | - | - | - | - | - | - | - | {r['skipped']} |")
                continue
            if r.get("errors") and "delivered" not in r:
                print(f"| {name} | {broker} | failed: {r['errors'][0].strip().splitlines()[-1][:80]} |||||||||")
                continue
            rate = r.get("connects_per_s") or r.get("msgs_per_s")
            ratio = ""
            versus = {"ours": "mosquitto", "cluster": "ours"}.get(broker)
            if versus in brokers:
                other = brokers[versus]
                orate = other.get("connects_per_s") or other.get("msgs_per_s")
                if rate and orate:
                    ratio = f"{rate / orate:.2f}x" if broker == "ours" else f"cluster/ours {rate / orate:.2f}x"
            peers = {p: brokers[p] for p in ("mosquitto", "rumqttd", "rmqttd") if p in brokers and not brokers[p].get("skipped")}
            peer_rates = {p: (r.get("connects_per_s") or r.get("msgs_per_s")) for p, r in peers.items()}
            peer_rates = {p: v for p, v in peer_rates.items() if v}
            if broker == "ours" and rate and len(peer_rates) > 1:
                best = max(peer_rates, key=peer_rates.get)
                ratio += f"; {rate / peer_rates[best]:.2f}x of the best peer ({best})"
            if name == "p2p" and broker == "ours" and "ours" in by.get("p2p-trace-off", {}):
                orate = by["p2p-trace-off"]["ours"].get("msgs_per_s")
                if rate and orate:
                    ratio += f"; {rate / orate:.2f}x of trace-off"
            if name == "rules" and broker == "ours" and "ours" in by.get("rules-off", {}):
                orate = by["rules-off"]["ours"].get("msgs_per_s")
                if rate and orate:
                    ratio = f"{rate / orate:.2f}x of rules-off"
            rss = r.get("broker_peak_rss")
            print(
                f"| {name} | {broker} | {fmt(rate)} | {fmt(r.get('p50_us', 0) / 1000)} | {fmt(r.get('p99_us', 0) / 1000)} "
                f"| {fmt(r.get('lost'))} | {fmt(r.get('duplicates'))} | {fmt(r.get('broker_cpu_pct'))} "
                f"| {fmt(rss / 2**20 if rss else None)} | {fmt(r.get('bytes_per_idle_conn'))} | {ratio} |"
            )
            for t in r.get("rule_targets", []):
                print(
                    f"| {name} | {broker} to {t['name']} | {fmt(t['delivered'])} delivered | {fmt(t['p50_us'] / 1000)} "
                    f"| {fmt(t['p99_us'] / 1000)} | {fmt(t['lost'])} | {fmt(t['duplicates'])} | | | | |"
                )
            for e in r.get("errors", [])[:2]:
                print(f"|  | {broker} error: {e.strip()[:100]} ||||||||||")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "?")
