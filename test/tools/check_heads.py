#!/usr/bin/env python3
"""Checks bmsys-prune{method=heads} against an independent computation.

    check_heads.py PRUNED.mlir WEIGHTS.safetensors GRADS.safetensors... --heads H --kv-heads KV --count N

For every layer's output projection `model.layers.<i>.self_attn.o_proj.weight`
([hidden, H*D]) computes the importance of head h as the mean over the
calibration files of |sum over the head's columns of W * grad.W|, and checks
that the IR's `bmsys.head_importance` equals it (relative 1e-5) and that
`bmsys.pruned_heads` are the N/KV least important heads of each key/value group
(N least important overall when H == KV). Prints one line per layer.
"""
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_lite  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mlir")
    p.add_argument("weights")
    p.add_argument("grads", nargs="+")
    p.add_argument("--heads", type=int, required=True)
    p.add_argument("--kv-heads", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    a = p.parse_args()
    text = open(a.mlir).read()
    found = re.findall(r"bmsys\.attention .*?bmsys\.head_importance = array<f64: ([^>]*)>, "
                       r"bmsys\.pruned_heads = array<i64: ([^>]*)>", text)
    header, _ = safetensors_lite.read_header(a.weights)
    layers = sorted(int(m.group(1)) for k in header
                    if (m := re.fullmatch(r"model\.layers\.(\d+)\.self_attn\.o_proj\.weight", k)))
    if len(found) != len(layers):
        sys.exit(f"{len(found)} attention ops with importance, {len(layers)} layers")
    ok = True
    group = a.heads // a.kv_heads
    for layer, (imp_text, pruned_text) in zip(layers, found):
        key = f"model.layers.{layer}.self_attn.o_proj.weight"
        shape, w = safetensors_lite.read(a.weights, key)
        rows, cols = shape
        dim = cols // a.heads
        imp = [0.0] * a.heads
        for g in a.grads:
            _, gw = safetensors_lite.read(g, "grad." + key)
            for h in range(a.heads):
                s = sum(w[r * cols + c] * gw[r * cols + c]
                        for r in range(rows) for c in range(h * dim, (h + 1) * dim))
                imp[h] += abs(s) / len(a.grads)
        got = [float(x) for x in imp_text.split(",")]
        pruned = [int(x) for x in pruned_text.split(",")]
        if group > 1:
            want = []
            for g in range(a.kv_heads):
                members = list(range(g * group, (g + 1) * group))
                want += sorted(members, key=lambda h: imp[h])[: a.count // a.kv_heads]
        else:
            want = sorted(range(a.heads), key=lambda h: imp[h])[: a.count]
        want.sort()
        err = max(abs(x - y) / max(abs(y), 1e-30) for x, y in zip(got, imp))
        good = err < 1e-5 and pruned == want
        ok &= good
        print(f"layer {layer}: importance rel_err {err:.2e}, pruned {pruned}, expected {want}"
              f" {'ok' if good else 'MISMATCH'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
