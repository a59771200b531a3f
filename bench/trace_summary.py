#!/usr/bin/env python3
"""Summarizes a `bmsys-run --trace` Chrome trace-event file: time per kernel name.

    python3 bench/trace_summary.py TRACE.json [--top N] [--steps K]

Prints, per track (compute stream, copy stream, collective stream), the total
wall time covered by its slices and the N slice names with the largest total
duration (count, total ms, mean us, share of the track). With --steps K the
totals are divided by K (a trace of K training steps gives per-step numbers).
Use it to find where a step's time goes before optimizing (docs/cuda.md, "Tracing").
"""
import argparse
import collections
import json


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trace")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--steps", type=int, default=1)
    a = p.parse_args()
    with open(a.trace) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    names = {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            names[e.get("tid")] = e.get("args", {}).get("name", str(e.get("tid")))
    per_track = collections.defaultdict(lambda: collections.defaultdict(lambda: [0, 0.0]))
    for e in events:
        if e.get("ph") != "X":
            continue
        row = per_track[e.get("tid")][e.get("name", "?")]
        row[0] += 1
        row[1] += float(e.get("dur", 0.0))
    for tid in sorted(per_track, key=lambda t: str(t)):
        rows = per_track[tid]
        total = sum(r[1] for r in rows.values())
        print(f"track {names.get(tid, tid)}: {total / 1e3 / a.steps:.2f} ms per step in {sum(r[0] for r in rows.values())} slices")
        print(f"  {'name':<48} {'count':>7} {'ms/step':>9} {'mean us':>9} {'share':>6}")
        for name, (count, dur) in sorted(rows.items(), key=lambda kv: -kv[1][1])[: a.top]:
            print(f"  {name[:48]:<48} {count // a.steps:>7} {dur / 1e3 / a.steps:>9.2f} {dur / count:>9.1f} {dur / total:>6.1%}")


if __name__ == "__main__":
    main()
