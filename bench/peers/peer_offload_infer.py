"""Peer baseline: Hugging Face accelerate layer offload for a model bigger than the GPU budget
(copied from the steering repo's bench/peer_offload_infer.py; run by scripts/gpu/run_all.sh int8).

python3 peer_offload_infer.py --budget-gib 6 [--layers 32 --hidden 4096 ...]
A Llama-shaped fp16 model with random weights; the GPU may hold only budget GiB of
weights (the rest stays in CPU memory, as a small consumer GPU would force).
Prints decode tokens/s for batch 1 and the same model fully on the GPU.
"""
import argparse
import json
import time

import torch
from accelerate import dispatch_model, infer_auto_device_map
from transformers import LlamaConfig, LlamaForCausalLM


def decode_rate(model, vocab, new_tokens):
    ids = torch.randint(0, vocab, (1, 16), device="cuda")
    model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=0)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                         do_sample=False, pad_token_id=0)
    torch.cuda.synchronize()
    return (out.shape[1] - ids.shape[1]) / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--hidden", type=int, default=4096)
    p.add_argument("--inter", type=int, default=11008)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--budget-gib", type=float, default=6.0)
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--out", default="")
    a = p.parse_args()
    cfg = LlamaConfig(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.inter,
                      num_hidden_layers=a.layers, num_attention_heads=a.heads,
                      num_key_value_heads=a.heads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    model = model.to_empty(device="cpu").to(torch.float16)
    with torch.no_grad():
        for prm in model.parameters():
            prm.normal_(0, 0.02)
    model.eval()
    init_s = time.perf_counter() - t0
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    dmap = infer_auto_device_map(model, max_memory={0: f"{a.budget_gib}GiB", "cpu": "200GiB"},
                                 no_split_module_classes=["LlamaDecoderLayer"])
    on_cpu = sum(1 for v in dmap.values() if v == "cpu")
    off = dispatch_model(model, device_map=dmap)
    rate_off = decode_rate(off, a.vocab, a.tokens)
    res = dict(peer="hf-accelerate-offload", params_GB=nbytes / 1e9, budget_GiB=a.budget_gib,
               modules_on_cpu=on_cpu, decode_tok_s_offload=rate_off, init_s=init_s)
    print(json.dumps(res), flush=True)
    del off, model
    torch.cuda.empty_cache()
    with torch.device("cuda"):
        full = LlamaForCausalLM(cfg).to(torch.float16)
    full.eval()
    res["decode_tok_s_all_on_gpu"] = decode_rate(full, a.vocab, 64)
    print(json.dumps(res), flush=True)
    if a.out:
        json.dump(res, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
