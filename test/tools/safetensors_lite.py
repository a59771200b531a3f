"""Minimal safetensors reading and writing with the Python standard library.

The test suite runs where numpy may be absent; these helpers read the few
dtypes the tests need (F32, I64) into flat Python lists.
"""
import json
import struct

_FORMATS = {"F32": "f", "F64": "d", "I64": "q", "I32": "i"}


def read_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)), 8 + n


def read(path, name):
    """Returns (shape, flat list of values) of tensor `name` in `path`."""
    header, base = read_header(path)
    if name not in header:
        raise KeyError(f"{path}: no tensor '{name}' (has {sorted(k for k in header if k != '__metadata__')})")
    entry = header[name]
    fmt = _FORMATS[entry["dtype"]]
    begin, end = entry["data_offsets"]
    with open(path, "rb") as f:
        f.seek(base + begin)
        data = f.read(end - begin)
    count = (end - begin) // struct.calcsize(fmt)
    return entry["shape"], list(struct.unpack(f"<{count}{fmt}", data))


def write(path, tensors):
    """Writes {name: (dtype, shape, flat values)} as a safetensors file."""
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, values) in tensors.items():
        blob = struct.pack(f"<{len(values)}{_FORMATS[dtype]}", *values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
