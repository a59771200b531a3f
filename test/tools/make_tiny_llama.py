#!/usr/bin/env python3
"""Writes a small Llama checkpoint with seeded random weights (standard library only).

    make_tiny_llama.py OUT_DIR [--layers 6] [--hidden 32] [--inter 48] [--heads 2]
                               [--kv-heads 2] [--vocab 64] [--seed 1]

For tests that need more layers than the golden models have (the memory schedule
swaps whole layers); the values are uniform in [-0.2, 0.2], norms 1.
"""
import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_lite  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--inter", type=int, default=48)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--vocab", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    hd = a.hidden // a.heads
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": a.hidden, "intermediate_size": a.inter,
        "num_hidden_layers": a.layers, "num_attention_heads": a.heads,
        "num_key_value_heads": a.kv_heads, "head_dim": hd, "vocab_size": a.vocab,
        "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False,
        "attention_bias": False, "mlp_bias": False, "dtype": "float32",
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    rng = random.Random(a.seed)
    tensors = {}

    def add(name, shape, norm=False):
        n = 1
        for d in shape:
            n *= d
        vals = [1.0] * n if norm else [rng.uniform(-0.2, 0.2) for _ in range(n)]
        tensors[name] = ("F32", shape, vals)

    add("model.embed_tokens.weight", [a.vocab, a.hidden])
    for i in range(a.layers):
        L = f"model.layers.{i}."
        add(L + "input_layernorm.weight", [a.hidden], norm=True)
        add(L + "self_attn.q_proj.weight", [a.heads * hd, a.hidden])
        add(L + "self_attn.k_proj.weight", [a.kv_heads * hd, a.hidden])
        add(L + "self_attn.v_proj.weight", [a.kv_heads * hd, a.hidden])
        add(L + "self_attn.o_proj.weight", [a.hidden, a.heads * hd])
        add(L + "post_attention_layernorm.weight", [a.hidden], norm=True)
        add(L + "mlp.gate_proj.weight", [a.inter, a.hidden])
        add(L + "mlp.up_proj.weight", [a.inter, a.hidden])
        add(L + "mlp.down_proj.weight", [a.hidden, a.inter])
    add("model.norm.weight", [a.hidden], norm=True)
    add("lm_head.weight", [a.vocab, a.hidden])
    safetensors_lite.write(os.path.join(a.out, "model.safetensors"), tensors)


if __name__ == "__main__":
    main()
