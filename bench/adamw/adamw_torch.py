#!/usr/bin/env python3
"""CPU AdamW: bmsys (bmsys-bench-adamw) against torch.optim.AdamW on the same cores.

Runs PyTorch's AdamW on float32 CPU tensors, in its foreach (multi-tensor) and
its for-loop (foreach=False, fused=False) implementations, and fused=True where
this PyTorch has a CPU fused AdamW, with torch.set_num_threads(T); then runs
bmsys-bench-adamw with the same parameter count and T OpenMP threads. Prints a
table of parameters/s and the ratio of bmsys (the runtime's default instruction
set) to the best PyTorch variant, and writes the numbers as JSON.

The parameters are split into --tensors tensors of equal size (PyTorch's foreach
path works over a list; one huge tensor would favour the for-loop), the same
hyperparameters as the bmsys benchmark (lr 1e-4, betas (0.9, 0.95), eps 1e-8,
weight decay 0.1). Every timing is the median of --steps steps after --warmup.

  python3 bench/adamw/adamw_torch.py --bench build/bin/bmsys-bench-adamw \
      [--params 67108864] [--tensors 64] [--threads N] [--steps 10] [--json out.json]
"""
import argparse
import json
import os
import subprocess
import sys
import time


def torch_rates(args, threads):
    import torch

    torch.set_num_threads(threads)
    per = args.params // args.tensors
    n = per * args.tensors
    variants = [("torch-foreach", dict(foreach=True)), ("torch-forloop", dict(foreach=False, fused=False))]
    # fused=True runs on the CPU from PyTorch 2.4 on.
    try:
        probe = [torch.zeros(4, requires_grad=True)]
        probe[0].grad = torch.zeros(4)
        torch.optim.AdamW(probe, fused=True).step()
        variants.append(("torch-fused", dict(fused=True)))
    except (RuntimeError, TypeError, ValueError) as e:
        print(f"adamw_torch: no CPU fused AdamW in torch {torch.__version__}: {e}", file=sys.stderr)
    out = []
    for name, kw in variants:
        gen = torch.Generator().manual_seed(0)
        params = []
        for _ in range(args.tensors):
            p = torch.empty(per).uniform_(-0.01, 0.01, generator=gen).requires_grad_()
            p.grad = torch.empty(per).uniform_(-0.001, 0.001, generator=gen)
            params.append(p)
        opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, **kw)
        with torch.no_grad():
            for _ in range(args.warmup):
                opt.step()
            times = []
            for _ in range(args.steps):
                t0 = time.perf_counter()
                opt.step()
                times.append(time.perf_counter() - t0)
        times.sort()
        med = times[len(times) // 2]
        out.append({"impl": name, "threads": threads, "params": n, "steps": args.steps,
                    "seconds_per_step": med, "params_per_s": n / med, "torch": torch.__version__})
        del opt, params
    return out


def bmsys_rates(args, threads, n):
    cmd = [args.bench, "--params", str(n), "--threads", str(threads), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--isa", "all"]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_PROC_BIND=os.environ.get("OMP_PROC_BIND", "close"))
    res = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    auto = subprocess.run(cmd[:-1] + ["auto"], check=True, capture_output=True, text=True, env=env)
    default = json.loads([l for l in auto.stdout.splitlines() if l.startswith("{")][0])["impl"]
    return rows, default


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True, help="path of bmsys-bench-adamw")
    ap.add_argument("--params", type=int, default=64 << 20)
    ap.add_argument("--tensors", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument("--no-torch", action="store_true", help="only bmsys (where PyTorch is missing)")
    args = ap.parse_args()

    rows = []
    n = args.params // args.tensors * args.tensors
    if not args.no_torch:
        rows += torch_rates(args, args.threads)
    ours, default = bmsys_rates(args, args.threads, n)
    rows += ours
    print(f"CPU AdamW, {n} float32 parameters, {args.threads} threads (median of {args.steps} steps)")
    print(f"{'impl':<16} {'s/step':>10} {'params/s':>12}")
    for r in rows:
        print(f"{r['impl']:<16} {r['seconds_per_step']:>10.4f} {r['params_per_s']:>12.4g}")
    summary = {"rows": rows, "bmsys_default": default}
    torch_rows = [r for r in rows if r["impl"].startswith("torch-")]
    if torch_rows:
        best = max(torch_rows, key=lambda r: r["params_per_s"])
        mine = next(r for r in rows if r["impl"] == default)
        ratio = mine["params_per_s"] / best["params_per_s"]
        summary.update(best_torch=best["impl"], speedup_vs_best_torch=ratio)
        for r in torch_rows:
            summary[f"speedup_vs_{r['impl']}"] = mine["params_per_s"] / r["params_per_s"]
        print(f"{default} / {best['impl']}: {ratio:.2f}x (target >= 5x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
