"""Copied from ../shared/bench/peer_decode_compiled.py (which does not travel to the GPU
machine), with a prefill measurement and --skip-compiled added.

Stronger decode peer: transformers with a static KV cache and torch.compile (the
gpt-fast recipe), Llama-shaped model with random bf16 weights, batch 1, on one GPU.

python3 peer_decode_compiled.py [--layers 32 --hidden 4096 ...]
Prints decode tokens/s for eager and compiled, and the HBM bound (weight bytes / copy bw).
"""
import argparse
import json
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def rate(model, vocab, n, **kw):
    ids = torch.randint(0, vocab, (1, 16), device="cuda")
    for _ in range(2):
        model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0, **kw)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0, **kw)
    torch.cuda.synchronize()
    return (out.shape[1] - ids.shape[1]) / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--hidden", type=int, default=4096)
    p.add_argument("--inter", type=int, default=11008)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--out", default="")
    p.add_argument("--prefill", type=int, default=2048)
    p.add_argument("--skip-compiled", action="store_true")
    a = p.parse_args()
    cfg = LlamaConfig(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.inter,
                      num_hidden_layers=a.layers, num_attention_heads=a.heads,
                      num_key_value_heads=a.heads)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.eval()
    wbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    src = torch.empty(2 * 1024**3, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(10):
        dst.copy_(src)
    torch.cuda.synchronize()
    bw = 2 * src.numel() * 10 / (time.perf_counter() - t0)
    del src, dst
    res = dict(peer="hf-transformers", weights_GB=wbytes / 1e9, copy_bw_GBps=bw / 1e9,
               hbm_bound_tok_s=bw / wbytes)
    res["decode_tok_s_eager"] = rate(model, a.vocab, 32)
    print(json.dumps(res), flush=True)
    if a.prefill:
        ids = torch.randint(0, a.vocab, (1, a.prefill), device="cuda")
        with torch.no_grad():
            for _ in range(2):
                model(ids)
            torch.cuda.synchronize()
            ts = []
            for _ in range(3):
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                s.record(); model(ids); e.record(); torch.cuda.synchronize()
                ts.append(s.elapsed_time(e))
        res["prefill_ms"] = sorted(ts)[1]
        print(json.dumps(res), flush=True)
    if a.skip_compiled:
        if a.out:
            json.dump(res, open(a.out, "w"), indent=1)
        return
    # transformers compiles the decode step itself when the cache is static
    res["decode_tok_s_static_compiled"] = rate(model, a.vocab, a.tokens, cache_implementation="static")
    res["compiled_share_of_bound"] = res["decode_tok_s_static_compiled"] / res["hbm_bound_tok_s"]
    print(json.dumps(res), flush=True)
    if a.out:
        json.dump(res, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
