#!/usr/bin/env bash
# Regenerates the seed corpora fuzz/corpus/<target>/ from the repository's test
# data with the compiler tools of a normal build (BMSYS_BUILD_DIR, default build/).
# Every seed is small (a few KB; the largest, the compiled tiny-model artifacts
# and IR, about 15 KB); the whole corpus stays well under 2 MB. Deterministic:
# running it twice gives the same files.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BMSYS_BUILD_DIR:-$root/build}
bin=$build/bin
corpus=$root/fuzz/corpus
data=$root/test/data
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for t in mlir_parse artifact safetensors hf_config hf_safetensors checkpoint; do
  rm -rf "${corpus:?}/$t"
  mkdir -p "$corpus/$t"
done

# --- compiled models: IR at each stage and artifacts -----------------------------
for m in llama-tiny gpt2-tiny; do
  "$bin/bmsys-import-hf" "$data/$m" -o "$tmp/$m.mlir"
  "$bin/bmsys-opt" "$tmp/$m.mlir" --bmsys-infer-pipeline="max-batch=1 max-seq=16" -o "$tmp/$m.rt.mlir"
  "$bin/bmsys-translate" --bmsys-to-artifact "$tmp/$m.rt.mlir" -o "$corpus/artifact/$m-infer.bmsys"
  cp "$tmp/$m.mlir" "$corpus/mlir_parse/$m-imported.mlir"
done
"$bin/bmsys-opt" "$tmp/llama-tiny.mlir" \
  --bmsys-train-pipeline="max-batch=1 max-seq=8 lr=1e-3 max-grad-norm=1.0" \
  | "$bin/bmsys-translate" --bmsys-to-artifact -o "$corpus/artifact/llama-tiny-train.bmsys"
# The lowered (bmsys_rt) IR of GPT-2, the smaller of the two.
cp "$tmp/gpt2-tiny.rt.mlir" "$corpus/mlir_parse/gpt2-tiny-rt.mlir"

# --- hand-written IR of the lit suite, one seed per split-input-file chunk -------
python3 - "$root" "$corpus/mlir_parse" <<'PY'
import pathlib, re, sys
root, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for f in sorted((root / "test").rglob("*.mlir")):
    if "data" in f.parts:
        continue
    chunks = re.split(r"^// -----\s*$", f.read_text(), flags=re.M)
    rel = "-".join(f.relative_to(root / "test").with_suffix("").parts)
    for i, c in enumerate(chunks):
        lines = [l for l in c.splitlines() if not l.lstrip().startswith("// RUN") and not l.lstrip().startswith("// CHECK")]
        text = "\n".join(lines).strip() + "\n"
        if text.strip():
            (out / f"{rel}-{i}.mlir").write_text(text)
PY

# --- config.json: the two real ones and variants of every branch of the reader ---
python3 - "$data" "$corpus/hf_config" <<'PY'
import json, pathlib, sys
data, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
llama = json.loads((data / "llama-tiny/config.json").read_text())
gpt2 = json.loads((data / "gpt2-tiny/config.json").read_text())
(out / "llama.json").write_text((data / "llama-tiny/config.json").read_text())
(out / "gpt2.json").write_text((data / "gpt2-tiny/config.json").read_text())
def variant(name, base, **changes):
    c = dict(base)
    for k, v in changes.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    (out / f"{name}.json").write_text(json.dumps(c, indent=1))
variant("mistral", llama, model_type="mistral")
variant("llama-gqa", llama, num_key_value_heads=1)
variant("llama-head-dim", llama, head_dim=llama["hidden_size"] // llama["num_attention_heads"])
variant("llama-rope-params", llama, rope_theta=None, rope_parameters={"rope_type": "default", "rope_theta": 500000.0})
variant("llama-rope-scaling", llama, rope_scaling={"type": "default"})
variant("llama-yarn", llama, rope_scaling={"rope_type": "yarn", "factor": 2.0})
variant("llama-tied-bias", llama, tie_word_embeddings=True, attention_bias=True, mlp_bias=True)
variant("llama-nulls", llama, num_key_value_heads=None, max_position_embeddings=None, rms_norm_eps=None)
variant("llama-gelu", llama, hidden_act="gelu")
variant("gpt2-inner", gpt2, n_inner=4 * gpt2["n_embd"])
variant("gpt2-gelu", gpt2, activation_function="gelu", scale_attn_by_inverse_layer_idx=True, scale_attn_weights=False)
variant("gpt2-untied", gpt2, tie_word_embeddings=False)
variant("bert", llama, model_type="bert")
(out / "empty-object.json").write_text("{}")
(out / "not-object.json").write_text("[1, 2, 3]")
PY

# --- safetensors: header-only copies of the tiny models (the importer target pads
# them with zeros), a truncated file, and small complete files of every dtype -----
python3 - "$data" "$corpus" <<'PY'
import json, pathlib, struct, sys
data, corpus = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
def header_only(path):
    b = path.read_bytes()
    n = struct.unpack("<Q", b[:8])[0]
    return b[:8 + n]
for m in ("llama-tiny", "gpt2-tiny"):
    h = header_only(data / m / "model.safetensors")
    (corpus / "hf_safetensors" / f"{m}-header.safetensors").write_bytes(h)
    (corpus / "safetensors" / f"{m}-header.safetensors").write_bytes(h)
(corpus / "safetensors" / "gpt2-tiny-truncated.safetensors").write_bytes(
    (data / "gpt2-tiny" / "model.safetensors").read_bytes()[:4096])

def write(path, tensors, metadata=None):
    header, blob = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in sorted(tensors.items()):
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + blob)
st = corpus / "safetensors"
write(st / "all-dtypes.safetensors", {
    "f32": ("F32", [2, 2], struct.pack("<4f", 1.0, -2.5, 0.0, 3.25)),
    "f16": ("F16", [3], struct.pack("<3H", 0x3C00, 0xC000, 0x7C00)),
    "bf16": ("BF16", [3], struct.pack("<3H", 0x3F80, 0xC000, 0x7FC0)),
    "f64": ("F64", [2], struct.pack("<2d", 1.5, -1e300)),
    "i64": ("I64", [2, 1], struct.pack("<2q", -3, 2**40)),
    "i32": ("I32", [2], struct.pack("<2i", 7, -8)),
    "i8": ("I8", [4], struct.pack("<4b", -128, -1, 0, 127)),
    "u8": ("U8", [4], bytes([0, 1, 128, 255])),
}, metadata={"format": "pt"})
write(st / "scalar-and-empty.safetensors", {
    "scalar": ("F32", [], struct.pack("<f", 42.0)),
    "empty": ("I64", [0, 5], b""),
})
write(st / "ids.safetensors", {"input_ids": ("I64", [1, 4], struct.pack("<4q", 1, 2, 3, 4))})
(st / "empty-header.safetensors").write_bytes(struct.pack("<Q", 8) + b"{}      ")
PY

# --- training checkpoints for the fixed artifact of fuzz/checkpoint_fuzzer.cpp --
python3 - "$corpus/checkpoint" <<'PY'
import json, pathlib, struct, sys
out = pathlib.Path(sys.argv[1])
SEP = b"\n--8<--\n"
def safetensors(tensors, dtype="F32"):
    header, blob = {"__metadata__": {"format": "pt"}}, b""
    for name, (shape, vals) in sorted(tensors.items()):
        raw = struct.pack("<%df" % len(vals), *vals) if dtype == "F32" else struct.pack("<%de" % len(vals), *vals)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + blob
def fnv(b):
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h
model = {"model.emb.weight": ([4, 2], [0.5 * i for i in range(8)]), "model.norm.weight": ([2], [1.0, 0.5])}
optim = {"emb.exp_avg": ([4, 2], [0.01] * 8), "emb.exp_avg_sq": ([4, 2], [0.001] * 8),
         "g.exp_avg": ([2], [0.1, 0.2]), "g.exp_avg_sq": ([2], [0.3, 0.4])}
config = b'{"model_type": "llama"}\n'
def state(files, **extra):
    s = {"format": "bmsys-trainer-state", "version": 1, "step": 3, "data_position": 96, "seed": 0,
         "token_dtype": "u16", "batch": 4, "seq": 8, "data_file": "tokens.bin", "files": files}
    s.update(extra)
    return json.dumps(s, indent=2).encode() + b"\n"
placeholders = {f: {"bytes": "@%s.bytes@" % t, "fnv1a64": "@%s.fnv@" % t}
                for f, t in (("model.safetensors", "model"), ("optimizer.safetensors", "optimizer"), ("config.json", "config"))}
def ph_state(**extra):
    # "bytes" must be a JSON number: the placeholder goes in unquoted.
    return state(placeholders, **extra).replace(b'"@model.bytes@"', b"@model.bytes@").replace(
        b'"@optimizer.bytes@"', b"@optimizer.bytes@").replace(b'"@config.bytes@"', b"@config.bytes@")
m, o = safetensors(model), safetensors(optim)
(out / "placeholders.ckpt").write_bytes(SEP.join([ph_state(), m, o, config]))
real = {"model.safetensors": {"bytes": len(m), "fnv1a64": fnv(m)},
        "optimizer.safetensors": {"bytes": len(o), "fnv1a64": fnv(o)},
        "config.json": {"bytes": len(config), "fnv1a64": fnv(config)}}
(out / "real-checksums.ckpt").write_bytes(SEP.join([state(real), m, o, config]))
(out / "f16-model.ckpt").write_bytes(SEP.join([ph_state(), safetensors(model, "F16"), o, config]))
(out / "extra-tensor.ckpt").write_bytes(SEP.join([ph_state(), safetensors(dict(model, extra=([1], [0.0]))), o, config]))
(out / "wrong-shape.ckpt").write_bytes(SEP.join([ph_state(), safetensors(dict(model, **{"model.norm.weight": ([3], [1.0, 1.0, 1.0])})), o, config]))
(out / "missing-optimizer.ckpt").write_bytes(SEP.join([ph_state(), m]))
(out / "negative-step.ckpt").write_bytes(SEP.join([ph_state(step=-1), m, o, config]))
(out / "state-only.ckpt").write_bytes(ph_state())
PY

# --- the MLIR parser dictionary is fuzz/mlir.dict (kept by hand) -----------------
du -sh "$corpus"
for t in "$corpus"/*/; do echo "$(basename "$t"): $(ls "$t" | wc -l) seeds, $(du -sk "$t" | cut -f1) KB"; done
