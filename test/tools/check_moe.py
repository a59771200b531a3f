#!/usr/bin/env python3
"""Checks the expert split written by bmsys-moefy.

    check_moe.py MODEL.safetensors MOE.safetensors --layer IN_KEY=MOE_PREFIX ... --experts E [--transposed]

For each layer: every row of MOE_PREFIX.w_in must be exactly one row of the
original first FFN weight IN_KEY ([n, H]; --transposed: stored [H, n], GPT-2),
each original row used once (a permutation), in E experts of n/E rows
(balanced); the router's row e must be the mean of the expert's L2-normalized
rows; and the k-means split must group the rows at least as tightly (mean
cosine similarity to the expert's centroid) as the contiguous split of the
original order. Prints one line per layer; exits 1 on a failure.
"""
import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_lite  # noqa: E402


def rows_of(shape, values, transposed):
    r, c = shape
    if transposed:
        return [[values[i * c + j] for i in range(r)] for j in range(c)]
    return [values[i * c:(i + 1) * c] for i in range(r)]


def normalize(v):
    n = math.sqrt(sum(x * x for x in v)) + 1e-12
    return [x / n for x in v]


def cohesion(groups):
    total, count = 0.0, 0
    for g in groups:
        c = [sum(col) / len(g) for col in zip(*g)]
        cn = math.sqrt(sum(x * x for x in c)) + 1e-12
        for v in g:
            total += sum(a * b for a, b in zip(v, c)) / cn
            count += 1
    return total / count


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("moe")
    p.add_argument("--layer", action="append", required=True)
    p.add_argument("--experts", type=int, required=True)
    p.add_argument("--transposed", action="store_true")
    a = p.parse_args()
    ok = True
    for item in a.layer:
        in_key, prefix = item.split("=")
        orig = rows_of(*safetensors_lite.read(a.model, in_key), a.transposed)
        moe = rows_of(*safetensors_lite.read(a.moe, prefix + ".moe.w_in"), False)
        rshape, rvals = safetensors_lite.read(a.moe, prefix + ".moe.router")
        n, m = len(orig), len(orig) // a.experts
        index = {tuple(r): i for i, r in enumerate(orig)}
        perm = [index.get(tuple(r), -1) for r in moe]
        permutation = sorted(perm) == list(range(n))
        normed = [normalize(r) for r in orig]
        groups = [[normed[i] for i in perm[e * m:(e + 1) * m]] for e in range(a.experts)]
        router_err = 0.0
        for e, g in enumerate(groups):
            c = [sum(col) / m for col in zip(*g)]
            got = rvals[e * rshape[1]:(e + 1) * rshape[1]]
            router_err = max(router_err, max(abs(x - y) for x, y in zip(got, c)))
        kmeans = cohesion(groups)
        contiguous = cohesion([normed[e * m:(e + 1) * m] for e in range(a.experts)])
        good = permutation and n % a.experts == 0 and router_err < 1e-5 and kmeans >= contiguous
        ok &= good
        print(f"{prefix}: {a.experts} experts x {m} neurons, permutation {'ok' if permutation else 'BAD'}, "
              f"router max err {router_err:.1e}, cohesion {kmeans:.4f} vs contiguous {contiguous:.4f} "
              f"{'ok' if good else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
