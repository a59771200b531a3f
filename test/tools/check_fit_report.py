#!/usr/bin/env python3
"""Checks a bmsys-fit report (report=FILE): the chosen candidate is the one with the
most tokens/s among those that fit, every fitting candidate's peak is within the
budget, and each candidate's peak is its memory breakdown's total."""
import json
import sys

r = json.load(open(sys.argv[1]))
cs = r["candidates"]
fit = [c for c in cs if c["fits"]]
chosen = [c for c in cs if c["chosen"]]
problems = []
if fit:
    best = max(fit, key=lambda c: c["tokens_per_s"])
    if len(chosen) != 1 or chosen[0]["tokens_per_s"] < best["tokens_per_s"]:
        problems.append("the chosen candidate is not the fastest that fits")
elif chosen:
    problems.append("a candidate is chosen although none fits")
for c in cs:
    if "error" in c:
        continue
    if c["peak_bytes"] != c["memory"]["total_bytes"]:
        problems.append(f"{c['configuration']}: peak {c['peak_bytes']} != memory total")
    if c["fits"] != (c["peak_bytes"] <= r["gpu_memory_bytes"]):
        problems.append(f"{c['configuration']}: fits={c['fits']} but peak {c['peak_bytes']}")
    if not c["step"]["total_s"] > 0:
        problems.append(f"{c['configuration']}: no step time")
if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"{len(cs)} candidates, {len(fit)} fit; chosen: the fastest that fits; "
      "peaks equal the memory report totals")
