#!/usr/bin/env python3
"""Checks calibration files written by `bmsys-run calibrate`: the format, and that
every rate the cost model reads is present and positive."""
import json
import os
import sys

ok = True
for path in sys.argv[1:]:
    j = json.load(open(path))
    bad = []
    if j.get("format") != "bmsys-calibration" or j.get("version") != 1:
        bad.append("format/version")
    gemm = j.get("gemm", {})
    for dtype, pts in gemm.items():
        if not pts or any(len(p) != 2 or p[0] <= 0 or p[1] <= 0 for p in pts):
            bad.append(f"gemm {dtype}")
    for k in ("memory_bandwidth", "h2d_bandwidth", "d2h_bandwidth", "launch_latency_s"):
        if not j.get(k, 0) > 0:
            bad.append(k)
    if not all(v > 0 for v in j.get("attention", {"?": 0}).values()):
        bad.append("attention")
    what = [f"gemm {d} {len(p)} sizes" for d, p in gemm.items()]
    what += ["attention", "memory", "host copies", "launch latency"]
    c = j.get("collectives")
    if c:
        if not all(c.get(k, 0) > 0 for k in ("all_reduce", "reduce_scatter", "all_gather", "latency_s")):
            bad.append("collectives")
        what.append(f"collectives over {c['ranks']} ranks")
    name = os.path.basename(path)
    if bad:
        ok = False
        print(f"{name}: BAD {', '.join(bad)}")
    else:
        print(f"{name}: ok ({', '.join(what)})")
sys.exit(0 if ok else 1)
