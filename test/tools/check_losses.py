#!/usr/bin/env python3
"""Compares the losses of a metrics file (JSON lines with "step" and "loss")
with reference losses, by absolute difference.

    check_losses.py metrics.jsonl --ref golden.safetensors:train.losses --atol 1e-4
    check_losses.py metrics.jsonl --ref other.jsonl --atol 0      # bit-identical runs
    check_losses.py m.jsonl --drop-skipped --ref-prefix --ref ...  # loss-scaled run with skips

--drop-skipped leaves out the steps whose metrics say "skipped": true (dynamic loss
scaling); --ref-prefix compares with the first reference losses only.

Prints one line per step and exits 1 on any difference above --atol or a
different number of steps.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_lite  # noqa: E402


def losses_of(path, drop_skipped=False):
    if ":" in path and not path.endswith(".jsonl"):
        file, name = path.rsplit(":", 1)
        return safetensors_lite.read(file, name)[1]
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if drop_skipped:
        rows = [r for r in rows if not r.get("skipped", False)]
    return [r["loss"] for r in sorted(rows, key=lambda r: r["step"])]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("metrics", nargs="+", help="metrics files, concatenated in order")
    parser.add_argument("--ref", required=True)
    parser.add_argument("--atol", type=float, required=True)
    parser.add_argument("--drop-skipped", action="store_true")
    parser.add_argument("--ref-prefix", action="store_true")
    args = parser.parse_args()
    out = [x for m in args.metrics for x in losses_of(m, args.drop_skipped)]
    ref = losses_of(args.ref)
    if args.ref_prefix:
        ref = ref[: len(out)]
    ok = len(out) == len(ref)
    if not ok:
        print(f"{len(out)} losses, reference has {len(ref)}")
    for i, (a, b) in enumerate(zip(out, ref)):
        good = abs(a - b) <= args.atol
        ok &= good
        print(f"step {i + 1}: loss={a:.8f} ref={b:.8f} diff={abs(a - b):.2e} {'ok' if good else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
