#!/usr/bin/env python3
"""Bytes each kernel moves per call of a function of a lowered module (bmsys_rt IR).

Counts, per launch, the bytes of every operand it reads and every result it writes
(a kernel that reads a tensor once and writes its result once; in-place optimizer
outputs count as writes of their state), with the symbolic dimensions bound to
--batch/--seq. This is the floor of memory traffic of a memory-bound kernel, the
measure `bmsys-fuse-elementwise` is judged by (docs/kernels.md "Fused kernels"):

  python3 bench/kernel_bytes.py model.rt.mlir --batch 4 --seq 2048 [--func train_step]

prints launches, bytes and GB per kernel, sorted by bytes, and the totals; --kernels limits
the table (and the "selected" total) to a comma-separated list of kernel names.
"""
import argparse
import re
import sys
from collections import defaultdict

DTYPE_BYTES = {"f32": 4, "bf16": 2, "f16": 2, "i64": 8, "i32": 4, "i8": 1, "f64": 8}
DECL = re.compile(r"bmsys_rt\.(weight|state) @([\w.\-]+) \{(.*)\}")
VALUE = re.compile(r"(%\d+) = bmsys_rt\.(alloc|input|weight_ref|state_ref|host_alloc)\b(.*)")
LAUNCH = re.compile(r'bmsys_rt\.launch "(\w+)"\(([^)]*)\) -> \(([^)]*)\)')


def attr(text, name):
    m = re.search(r"(?<![\w])" + name + r" = (\[[^\]]*\]|array<i64: [^>]*>|array<i64>|\w+)", text)
    return m.group(1) if m else None


def nbytes(text, B, S):
    dt, shape = attr(text, "dtype"), attr(text, "shape")
    if dt is None or shape is None:
        return 0
    dims = re.findall(r'"?(\w+)"?', shape.replace("array<i64", "").replace(">", ""))
    n = 1
    for d in dims:
        n *= B if d == "B" else S if d == "S" else int(d)
    return n * DTYPE_BYTES[dt]


def count(path, func, B, S):
    decls, sizes, per = {}, {}, defaultdict(lambda: [0, 0])
    infunc = False
    for line in open(path):
        if (m := DECL.search(line)):
            decls[m.group(2)] = m.group(3)
            continue
        if "bmsys_rt.func @" in line:
            infunc = f"@{func} " in line or line.rstrip().endswith(f"@{func} {{")
            sizes = {}
            continue
        if not infunc:
            continue
        if (m := VALUE.search(line)):
            v, kind, rest = m.groups()
            if kind in ("weight_ref", "state_ref"):
                sym = re.search(r"@([\w.\-]+)", rest).group(1)
                sizes[v] = nbytes(decls.get(sym, ""), B, S)
            else:
                sizes[v] = nbytes(rest, B, S)
        elif (m := LAUNCH.search(line)):
            k = m.group(1)
            ops = [x.strip() for x in (m.group(2) + "," + m.group(3)).split(",") if x.strip()]
            per[k][0] += 1
            per[k][1] += sum(sizes.get(o, 0) for o in ops)
    if not per:
        sys.exit(f"kernel_bytes: no launches in function @{func} of {path}")
    return per


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("module")
    p.add_argument("--func", default="train_step")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--kernels", default="", help="comma-separated kernel names to list")
    a = p.parse_args()
    per = count(a.module, a.func, a.batch, a.seq)
    want = set(filter(None, a.kernels.split(",")))
    print(f"{'kernel':28s} {'launches':>8s} {'bytes':>14s} {'GB':>9s}")
    sel = [0, 0]
    for k, (n, b) in sorted(per.items(), key=lambda kv: -kv[1][1]):
        if want and k not in want:
            continue
        sel[0] += n
        sel[1] += b
        print(f"{k:28s} {n:8d} {b:14d} {b / 1e9:9.3f}")
    tot = [sum(v[0] for v in per.values()), sum(v[1] for v in per.values())]
    if want:
        print(f"{'selected':28s} {sel[0]:8d} {sel[1]:14d} {sel[1] / 1e9:9.3f}")
    print(f"{'all kernels':28s} {tot[0]:8d} {tot[1]:14d} {tot[1] / 1e9:9.3f}")


if __name__ == "__main__":
    main()
