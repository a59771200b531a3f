#!/usr/bin/env python3
"""Compares tensors of two safetensors files by relative error.

    compare.py OUT.safetensors REF.safetensors NAME[=REFNAME] ... --rtol 1e-4
    compare.py OUT.safetensors REF.safetensors --prefix REFPREFIX[=OUTPREFIX] --rtol 1e-4

For each pair prints `NAME: rel_err=...` where rel_err = ||out - ref|| / ||ref||,
and exits 1 if any exceeds --rtol or the shapes differ. With --atol, the largest
absolute elementwise difference (max_abs) must not exceed it either. --prefix compares every
reference tensor named REFPREFIX<x> with the output tensor OUTPREFIX<x>
(for example `--prefix train.final.` against a checkpoint's weights).
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
    parser.add_argument("names", nargs="*")
    parser.add_argument("--prefix")
    parser.add_argument("--rtol", type=float)
    parser.add_argument("--atol", type=float, help="also bound the largest absolute difference")
    args = parser.parse_args()
    if args.rtol is None and args.atol is None:
        sys.exit("compare.py: give --rtol and/or --atol")
    specs = list(args.names)
    if args.prefix is not None:
        ref_prefix, _, out_prefix = args.prefix.partition("=")
        header, _ = safetensors_lite.read_header(args.ref)
        specs += [out_prefix + k[len(ref_prefix):] + "=" + k
                  for k in sorted(header) if k.startswith(ref_prefix) and k != "__metadata__"]
    if not specs:
        sys.exit("compare.py: nothing to compare")
    ok = True
    for spec in specs:
        name, _, ref_name = spec.partition("=")
        ref_name = ref_name or name
        out_shape, out = safetensors_lite.read(args.out, name)
        ref_shape, ref = safetensors_lite.read(args.ref, ref_name)
        scalars = {(), (1,)}  # a 0-d tensor and a one-element vector hold the same scalar
        if out_shape != ref_shape and not {tuple(out_shape), tuple(ref_shape)} <= scalars:
            print(f"{name}: shape {out_shape} differs from reference {ref_shape}")
            ok = False
            continue
        diff = math.sqrt(sum((a - b) ** 2 for a, b in zip(out, ref)))
        norm = math.sqrt(sum(b * b for b in ref)) or 1.0
        rel = diff / norm
        good = args.rtol is None or rel <= args.rtol
        line = f"{name}: rel_err={rel:.3e}"
        if args.atol is not None:
            max_abs = max((abs(a - b) for a, b in zip(out, ref)), default=0.0)
            good &= max_abs <= args.atol
            line += f" max_abs={max_abs:.3e}"
        limits = " ".join(f"{k} {v:g}" for k, v in (("rtol", args.rtol), ("atol", args.atol)) if v is not None)
        print(f"{line} {'ok' if good else f'FAIL ({limits})'}")
        ok &= good
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
