"""Copied from ../shared/bench/peer_fsdp_train.py (which does not travel to the GPU
machine), unchanged but for this note; bench/fsdp_bench.py runs it in the same GPU run
as bmsys (PyTorch FSDP2, the ZeRO-3 equivalent, training a Llama-shaped model):

torchrun --nproc_per_node N peer_fsdp_train.py [--layers 16 --hidden 2048 ...]
Prints tokens/s per GPU, MFU against 989 TFLOP/s dense bf16, and peak memory.
"""
import argparse
import json
import os
import time

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard, MixedPrecisionPolicy
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=16)
    p.add_argument("--hidden", type=int, default=2048)
    p.add_argument("--inter", type=int, default=5504)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--mbs", type=int, default=4)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--ckpt", type=int, default=1)
    p.add_argument("--compile", type=int, default=0)
    p.add_argument("--out", default="")
    a = p.parse_args()
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    cfg = LlamaConfig(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.inter,
                      num_hidden_layers=a.layers, num_attention_heads=a.heads,
                      num_key_value_heads=a.heads, max_position_embeddings=a.seq)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg)
    nparams = sum(p.numel() for p in model.parameters())
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for i, layer in enumerate(model.model.layers):
        if a.ckpt:
            layer = checkpoint_wrapper(layer)
            model.model.layers[i] = layer
        if a.compile:
            layer.compile()
        fully_shard(layer, mp_policy=mp)
    fully_shard(model, mp_policy=mp)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    ids = torch.randint(0, a.vocab, (a.mbs, a.seq), device="cuda")

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / a.steps
    tok = a.mbs * a.seq
    # 6N per token for the dense part + attention scores/values (12 * L * h * s per token, causal halves it)
    flops_tok = 6 * nparams + 6 * a.layers * a.hidden * a.seq
    res = dict(peer="pytorch-fsdp2", world=world, params=nparams, layers=a.layers, hidden=a.hidden,
               seq=a.seq, micro_batch=a.mbs, act_ckpt=a.ckpt, compiled=a.compile,
               step_s=dt, tokens_per_s_per_gpu=tok / dt,
               mfu=flops_tok * tok / dt / 989e12,
               peak_mem_GiB=torch.cuda.max_memory_allocated() / 2**30, loss=loss.item())
    if rank == 0:
        print(json.dumps(res), flush=True)
        if a.out:
            json.dump(res, open(a.out, "w"), indent=1)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
