#!/usr/bin/env python3
"""Checks a bmsys-memory-report JSON file: the rows sum to total_bytes, the
categories to the same, and the total is weights + pools + inputs + workspace;
for a pipelined module, also each stage's report (under "stages")."""
import json
import os
import sys

ok = True
reports = []
for path in sys.argv[1:]:
    r = json.load(open(path))
    reports.append((os.path.basename(path), r))
    # A pipelined module: every stage's report too.
    for s in r.get("stages", []):
        reports.append((f"{os.path.basename(path)} stage {s['pipeline_stage']}", s))
for name, r in reports:
    rows = sum(row["bytes"] for row in r["rows"])
    cats = sum(r["categories"].values())
    by = {c: 0 for c in r["categories"]}
    for row in r["rows"]:
        by[row["category"]] += row["bytes"]
    pools = r["activation_pool_bytes"] + r["state_pool_bytes"]
    plan = by["parameters"] + by["inputs"] + by["workspace"] + pools
    if rows == r["total_bytes"] == cats == plan:
        print(f"{name}: rows sum to total {rows}")
    else:
        print(f"{name}: MISMATCH rows {rows} categories {cats} total {r['total_bytes']} plan {plan}")
        ok = False
sys.exit(0 if ok else 1)
