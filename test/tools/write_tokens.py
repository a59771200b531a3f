#!/usr/bin/env python3
"""Writes an int64 tensor of a safetensors file as a flat little-endian uint16
token file (the training data format, docs/training.md).

    write_tokens.py golden.safetensors train.input_ids out.bin
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_lite  # noqa: E402

if len(sys.argv) != 4:
    sys.exit(__doc__)
_, values = safetensors_lite.read(sys.argv[1], sys.argv[2])
with open(sys.argv[3], "wb") as f:
    f.write(struct.pack(f"<{len(values)}H", *values))
print(f"{len(values)} tokens")
