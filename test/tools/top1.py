#!/usr/bin/env python3
"""Top-1 agreement of two logit tensors (argmax over the last dimension).

    top1.py OUT.safetensors REF.safetensors NAME[=REFNAME] --min 0.99

Prints the share of positions whose argmax agrees and the relative error
||out - ref|| / ||ref||; exits 1 when the agreement is below --min.
"""
import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_lite  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("ref")
    parser.add_argument("name")
    parser.add_argument("--min", type=float, required=True)
    args = parser.parse_args()
    name, _, ref_name = args.name.partition("=")
    shape, out = safetensors_lite.read(args.out, name)
    ref_shape, ref = safetensors_lite.read(args.ref, ref_name or name)
    if shape != ref_shape:
        sys.exit(f"{name}: shape {shape} differs from reference {ref_shape}")
    v = shape[-1]
    rows = len(out) // v
    agree = 0
    for r in range(rows):
        a, b = out[r * v:(r + 1) * v], ref[r * v:(r + 1) * v]
        agree += a.index(max(a)) == b.index(max(b))
    rel = math.sqrt(sum((a - b) ** 2 for a, b in zip(out, ref))) / (math.sqrt(sum(b * b for b in ref)) or 1)
    share = agree / rows
    print(f"{name}: top-1 agreement {agree}/{rows} = {share:.4f}, rel_err={rel:.3e} "
          f"{'ok' if share >= args.min else 'FAIL'}")
    sys.exit(0 if share >= args.min else 1)


if __name__ == "__main__":
    main()
