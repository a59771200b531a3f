#!/usr/bin/env python3
"""Writes a Llama-shaped Hugging Face checkpoint directory whose weights are a hole.

config.json is real; model.safetensors has a real header (names, shapes, dtype,
offsets) and a data region made by truncate(), a sparse file that takes no disk
space. bmsys-import-hf reads only the header, and `bmsys-run --random-weights SEED`
fills the weights on the device without reading the data region, so a 6.7B model
travels as a few kilobytes.

python3 bench/make_model.py OUT_DIR [--hidden 4096 --layers 32 --inter 11008
                                     --heads 32 --kv-heads 32 --vocab 32000 --dtype BF16]
                                    [--int8]

--int8 also writes model.int8.safetensors the same way: for every linear weight W
[out, in] the tensors bmsys-quantize{mode=int8} writes, `W_int8` (I8 [out, in]) and
`W_scale` (F32 [out]), so an artifact compiled with quantize=int8 finds its INT8
weights on the GPU machine too.
"""
import argparse
import json
import os
import struct


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--hidden", type=int, default=4096)
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--inter", type=int, default=11008)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--kv-heads", type=int, default=32)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--max-pos", type=int, default=4096)
    p.add_argument("--dtype", default="BF16", choices=["BF16", "F16", "F32"])
    p.add_argument("--int8", action="store_true", help="also write model.int8.safetensors")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    hd = a.hidden // a.heads
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": a.hidden, "intermediate_size": a.inter,
        "num_hidden_layers": a.layers, "num_attention_heads": a.heads,
        "num_key_value_heads": a.kv_heads, "head_dim": hd, "vocab_size": a.vocab,
        "max_position_embeddings": a.max_pos, "rms_norm_eps": 1e-5,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False,
        "attention_bias": False, "mlp_bias": False,
        "dtype": {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}[a.dtype],
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    shapes = [("model.embed_tokens.weight", [a.vocab, a.hidden])]
    for i in range(a.layers):
        L = f"model.layers.{i}."
        shapes += [
            (L + "input_layernorm.weight", [a.hidden]),
            (L + "self_attn.q_proj.weight", [a.heads * hd, a.hidden]),
            (L + "self_attn.k_proj.weight", [a.kv_heads * hd, a.hidden]),
            (L + "self_attn.v_proj.weight", [a.kv_heads * hd, a.hidden]),
            (L + "self_attn.o_proj.weight", [a.hidden, a.heads * hd]),
            (L + "post_attention_layernorm.weight", [a.hidden]),
            (L + "mlp.gate_proj.weight", [a.inter, a.hidden]),
            (L + "mlp.up_proj.weight", [a.inter, a.hidden]),
            (L + "mlp.down_proj.weight", [a.hidden, a.inter]),
        ]
    shapes += [("model.norm.weight", [a.hidden]), ("lm_head.weight", [a.vocab, a.hidden])]
    es = {"BF16": 2, "F16": 2, "F32": 4}[a.dtype]
    off = write_sparse(os.path.join(a.out, "model.safetensors"), [(n, s, a.dtype) for n, s in shapes])
    if a.int8:
        q = []
        for name, shape in shapes:
            if name.endswith("proj.weight") or name == "lm_head.weight":
                q += [(name + "_int8", shape, "I8"), (name + "_scale", shape[:1], "F32")]
        write_sparse(os.path.join(a.out, "model.int8.safetensors"), q)
    print(json.dumps({"dir": a.out, "params": off // es, "weight_bytes": off}))


def write_sparse(path, tensors):
    """A safetensors file with a real header over a data region that is a hole."""
    size = {"BF16": 2, "F16": 2, "F32": 4, "I8": 1}
    header, off = {}, 0
    for name, shape, dtype in tensors:
        n = 1
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n * size[dtype]]}
        off += n * size[dtype]
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        f.truncate(8 + len(hb) + off)  # sparse: the data region is a hole
    return off


if __name__ == "__main__":
    main()
