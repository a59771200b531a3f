#!/usr/bin/env python3
"""Makes broken inputs for negative tests from good ones.

    corrupt.py checkpoint KIND SRC_DIR DST_DIR   # a broken Hugging Face checkpoint
    corrupt.py file KIND SRC DST                 # a broken copy of one file

Checkpoint kinds: unknown-model-type, missing-tensor, wrong-shape, bad-dtype,
missing-config-key, bad-json, sharded (a valid two-file sharded checkpoint),
unsupported-rope.
File kinds: truncate (drop the last half), flip (flip bytes in the middle),
header-too-long (header length beyond the file), bad-version (artifact format
version + 1), bad-identifier, huge-tensor (a tensor claiming 2^60 bytes),
overlap (two tensors sharing bytes), bad-offsets.
"""
import json
import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_lite  # noqa: E402


def rewrite_header(path, edit):
    header, base = safetensors_lite.read_header(path)
    with open(path, "rb") as f:
        f.seek(base)
        data = f.read()
    edit(header)
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(data)


def checkpoint(kind, src, dst):
    shutil.copytree(src, dst, dirs_exist_ok=True)
    config_path = os.path.join(dst, "config.json")
    model_path = os.path.join(dst, "model.safetensors")
    with open(config_path) as f:
        config = json.load(f)
    if kind == "unknown-model-type":
        config["model_type"] = "bert"
    elif kind == "missing-config-key":
        config.pop("hidden_size", None)
        config.pop("n_embd", None)
    elif kind == "unsupported-rope":
        config["rope_parameters"] = {"rope_theta": 10000.0, "rope_type": "yarn"}
    elif kind == "bad-json":
        with open(config_path, "w") as f:
            f.write("{ not json")
        return
    elif kind == "missing-tensor":
        rewrite_header(model_path, lambda h: h.pop(sorted(k for k in h if "layers.1" in k or "h.1." in k)[0]))
    elif kind == "wrong-shape":
        def edit(h):
            key = next(k for k in sorted(h) if k.endswith("norm.weight") or k.endswith("ln_f.weight"))
            h[key]["shape"] = [h[key]["shape"][0] // 2, 2]
        rewrite_header(model_path, edit)
    elif kind == "bad-dtype":
        def edit(h):
            key = next(k for k in sorted(h) if k != "__metadata__")
            h[key]["dtype"] = "I32"
        rewrite_header(model_path, edit)
    elif kind == "sharded":
        header, base = safetensors_lite.read_header(model_path)
        names = sorted(k for k in header if k != "__metadata__")
        with open(model_path, "rb") as f:
            f.seek(base)
            data = f.read()
        os.remove(model_path)
        weight_map = {}
        for i, part in enumerate((names[: len(names) // 2], names[len(names) // 2:])):
            shard = f"model-0000{i + 1}-of-00002.safetensors"
            out_header, blobs, offset = {}, [], 0
            for name in part:
                begin, end = header[name]["data_offsets"]
                out_header[name] = dict(header[name], data_offsets=[offset, offset + end - begin])
                blobs.append(data[begin:end])
                offset += end - begin
                weight_map[name] = shard
            text = json.dumps(out_header).encode()
            with open(os.path.join(dst, shard), "wb") as f:
                f.write(struct.pack("<Q", len(text)))
                f.write(text)
                f.write(b"".join(blobs))
        with open(os.path.join(dst, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": weight_map}, f)
        return
    else:
        sys.exit(f"unknown checkpoint kind {kind}")
    with open(config_path, "w") as f:
        json.dump(config, f)


def one_file(kind, src, dst):
    shutil.copyfile(src, dst)
    with open(dst, "rb") as f:
        data = bytearray(f.read())
    if kind == "truncate":
        data = data[: len(data) // 2]
    elif kind == "flip":
        for i in range(len(data) // 3, len(data) // 3 + 64):
            data[i] ^= 0xFF
    elif kind == "header-too-long":
        data[0:8] = struct.pack("<Q", len(data) * 2)
    elif kind == "bad-identifier":
        data[4:8] = b"XXXX"
    elif kind == "bad-version":
        # format_version is the first field of the root table: find it through
        # the root offset and the vtable (FlatBuffers layout).
        (root,) = struct.unpack_from("<I", data, 0)
        (vtable_delta,) = struct.unpack_from("<i", data, root)
        vtable = root - vtable_delta
        (field_offset,) = struct.unpack_from("<H", data, vtable + 4)
        (version,) = struct.unpack_from("<I", data, root + field_offset)
        struct.pack_into("<I", data, root + field_offset, version + 1)
    elif kind in ("huge-tensor", "overlap", "bad-offsets"):
        with open(dst, "wb") as f:
            f.write(data)

        def edit(h):
            names = sorted(k for k in h if k != "__metadata__")
            if kind == "huge-tensor":
                h[names[0]]["shape"] = [1 << 30, 1 << 28]
            elif kind == "overlap":
                h[names[1]]["data_offsets"] = h[names[0]]["data_offsets"]
            else:
                h[names[0]]["data_offsets"] = [0, 1 << 40]
        rewrite_header(dst, edit)
        return
    else:
        sys.exit(f"unknown file kind {kind}")
    with open(dst, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] not in ("checkpoint", "file"):
        sys.exit(__doc__)
    (checkpoint if sys.argv[1] == "checkpoint" else one_file)(*sys.argv[2:])
