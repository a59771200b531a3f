#!/usr/bin/env python3
"""Writes calibration batches for `bmsys-prune` (method=heads|layers).

    calib_batches.py TOKENS.bin --batch B --seq S --count N -o PREFIX [--dtype u16|u32] [--start T]

Writes PREFIX0.safetensors ... PREFIX{N-1}.safetensors, each holding `input_ids`
[B, S] int64: consecutive windows of the token file (as `bmsys-run train` reads
them), starting at token T. Each file is one input of
`bmsys-run infer MODEL --function train_step --input PREFIXk.safetensors`, whose
outputs (grad.<key>, with a train_step compiled with return-grads) are the
calibration files of the importance estimate.
"""
import argparse
import json
import struct
import sys


def write_ids(path, ids, batch, seq):
    blob = struct.pack(f"<{len(ids)}q", *ids)
    header = json.dumps({"input_ids": {"dtype": "I64", "shape": [batch, seq],
                                       "data_offsets": [0, len(blob)]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)))
        f.write(header)
        f.write(blob)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("tokens")
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--seq", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--start", type=int, default=0, help="first token (default 0)")
    p.add_argument("--dtype", choices=["u16", "u32"], default="u16")
    p.add_argument("-o", "--output", required=True, help="prefix of the files to write")
    a = p.parse_args()
    if min(a.batch, a.seq, a.count) < 1 or a.start < 0:
        sys.exit("calib_batches.py: --batch, --seq and --count must be positive, --start >= 0")
    size = 2 if a.dtype == "u16" else 4
    data = open(a.tokens, "rb").read()
    n = len(data) // size
    if n < a.seq:
        sys.exit(f"calib_batches.py: {a.tokens}: {n} tokens, fewer than --seq {a.seq}")
    tokens = struct.unpack(f"<{n}{'H' if size == 2 else 'I'}", data[: n * size])
    pos = a.start
    for k in range(a.count):
        ids = []
        for _ in range(a.batch * a.seq):
            ids.append(tokens[pos % n])
            pos += 1
        write_ids(f"{a.output}{k}.safetensors", ids, a.batch, a.seq)


if __name__ == "__main__":
    main()
