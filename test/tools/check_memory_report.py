#!/usr/bin/env python3
"""Checks a bmsys-memory-report JSON file: the rows sum to total_bytes, the
categories to the same, and the total is weights + pools + inputs + workspace."""
import json
import os
import sys

ok = True
for path in sys.argv[1:]:
    r = json.load(open(path))
    rows = sum(row["bytes"] for row in r["rows"])
    cats = sum(r["categories"].values())
    by = {c: 0 for c in r["categories"]}
    for row in r["rows"]:
        by[row["category"]] += row["bytes"]
    pools = r["activation_pool_bytes"] + r["state_pool_bytes"]
    plan = by["parameters"] + by["inputs"] + by["workspace"] + pools
    name = os.path.basename(path)
    if rows == r["total_bytes"] == cats == plan:
        print(f"{name}: rows sum to total {rows}")
    else:
        print(f"{name}: MISMATCH rows {rows} categories {cats} total {r['total_bytes']} plan {plan}")
        ok = False
sys.exit(0 if ok else 1)
