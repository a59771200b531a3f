#!/usr/bin/env python3
"""Checks pruned weights in a checkpoint: for every tensor K with a mask K.mask,
the weights are exactly zero wherever the mask is zero, and with --pattern 2:4
every group of 4 consecutive weights along the last dimension has at most 2
non-zeros; with --sparsity S each tensor has at least that fraction of zeros.

    check_sparsity.py ckpt/model.safetensors [--pattern 2:4] [--sparsity 0.5]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_lite  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("--pattern")
    parser.add_argument("--sparsity", type=float)
    args = parser.parse_args()
    header, _ = safetensors_lite.read_header(args.file)
    masked = sorted(k[: -len(".mask")] for k in header if k.endswith(".mask"))
    if not masked:
        sys.exit(f"{args.file}: no masks")
    ok = True
    for key in masked:
        shape, w = safetensors_lite.read(args.file, key)
        _, m = safetensors_lite.read(args.file, key + ".mask")
        leaks = sum(1 for a, b in zip(w, m) if b == 0 and a != 0)
        zeros = sum(1 for a in w if a == 0) / len(w)
        bad_groups = 0
        if args.pattern == "2:4":
            cols = shape[-1]
            for start in range(0, len(w), cols):
                row = w[start:start + cols]
                bad_groups += sum(1 for g in range(0, cols, 4) if sum(1 for x in row[g:g + 4] if x != 0) > 2)
        good = leaks == 0 and bad_groups == 0 and (args.sparsity is None or zeros >= args.sparsity)
        ok &= good
        print(f"{key}: zeros {zeros:.3f}, masked non-zeros {leaks}, groups over 2:4 {bad_groups} "
              f"{'ok' if good else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
