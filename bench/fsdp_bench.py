#!/usr/bin/env python3
"""Data-parallel training benchmark on the GPU machine (2 GPUs), bmsys against PyTorch
FSDP2 in the same run (scripts/gpu/run_all.sh stage fsdp; docs/distributed.md).

The model is the Llama-shaped 0.94B of ../shared/bench/peer_fsdp_train.py (hidden 2048,
16 layers, intermediate 5504, 16 heads, vocab 32000), sequence 2048, micro-batch 4 per
GPU, bf16 compute with f32 master weights, AdamW, gradient clipping. bmsys runs the
artifacts scripts/gpu/prepare.sh compiled (build-gpu/artifacts/fsdp/*.bmsys: ZeRO-3 with
per-block checkpointing, with gathers prefetched one block ahead, without checkpointing,
ZeRO-2 and ZeRO-1; tp2-ckpt: tensor parallel 2 with checkpointing, both GPUs on
the global batch of 8 x 2048; on 4 GPUs, fsdp4/tp2z3-ckpt and fsdp4/tp4-ckpt: TP=2 x
ZeRO-3 DP=2 and TP=4; pp2-ckpt: pipeline parallel 2 with checkpointing, the global batch of
4 x 2048 per GPU as 8 micro-batches of 1 x 2048 in the 1F1B order; on 4 GPUs, fsdp4/
pp2z1-ckpt: the same with ZeRO-1 over 2 data-parallel ranks per stage) through
`bmsys-run train --nproc 2 --device cuda` with random
weights filled on the device (the model directory only has a safetensors header, from
bench/make_model.py). FSDP2 runs through torchrun with and without checkpointing.

Per run: tokens/s per GPU (median over the steps after --warmup), MFU against 989
TFLOP/s dense bf16 with the peer's FLOP count (6 N + 6 L h s per token), peak memory
per GPU: for bmsys the caching allocator's peak of bytes in use (what
torch.cuda.max_memory_allocated counts for the peer) and, for both, the most
nvidia-smi saw used on a GPU (process total: CUDA context, NCCL buffers, caches).

python3 bench/fsdp_bench.py --bin BMSYS_RUN --artifacts DIR --out fsdp.json [--steps 10]
"""
import argparse
import array
import json
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPE = dict(hidden=2048, layers=16, inter=5504, heads=16, vocab=32000)
SEQ, MBS, WORLD, PEAK_FLOPS = 2048, 4, 2, 989e12


def n_params(c):
    h, i, v, L = c["hidden"], c["inter"], c["vocab"], c["layers"]
    return 2 * v * h + L * (4 * h * h + 3 * h * i + 2 * h) + h


def flops_per_token(c):
    return 6 * n_params(c) + 6 * c["layers"] * c["hidden"] * SEQ


class GpuMemory:
    """Polls nvidia-smi; max memory.used per GPU above the idle baseline, in GiB."""

    def __init__(self):
        self.peak, self.base, self.stop = {}, self.sample(), False
        self.t = threading.Thread(target=self.loop, daemon=True)

    @staticmethod
    def sample():
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=index,memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10).stdout
            return {int(a): float(b) / 1024 for a, b in (l.split(",") for l in out.strip().splitlines())}
        except Exception:
            return {}

    def loop(self):
        while not self.stop:
            for k, v in self.sample().items():
                self.peak[k] = max(self.peak.get(k, 0), v - self.base.get(k, 0))
            time.sleep(0.2)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *a):
        self.stop = True
        self.t.join()


GIB = {"B": 1 / 2**30, "KiB": 1 / 2**20, "MiB": 1 / 2**10, "GiB": 1.0}


def allocator_peaks(log):
    # "bmsys-run: rank 0: memory: cuda memory on ...: allocator: in use X, cached Y, peak 9.63 GiB, ..."
    return [float(v) * GIB[u] for v, u in re.findall(r"allocator: .*?peak ([0-9.]+) (B|KiB|MiB|GiB)", log)]


def run_bmsys(a, name, model_dir, tokens, trace=None):
    art = os.path.join(a.artifacts, name + ".bmsys")
    work = os.path.join(a.work, name)
    os.makedirs(work, exist_ok=True)
    metrics = os.path.join(work, "metrics.jsonl")
    if os.path.exists(metrics):
        os.remove(metrics)
    cmd = [a.bin, "train", art, "--nproc", str(WORLD), "--device", "cuda", "--random-weights", "1",
           "--weights", model_dir, "--data", tokens, "--batch", str(MBS * WORLD), "--seq", str(SEQ),
           "--steps", str(a.steps), "--metrics", metrics, "--comm-timeout", "120", "--memory-report"]
    if trace:
        cmd += ["--trace", trace]
    env = dict(os.environ)
    if name.startswith("pp"):  # a hardware queue per stream (docs/distributed.md "Pipeline parallelism")
        env.setdefault("CUDA_DEVICE_MAX_CONNECTIONS", "32")
    t0 = time.time()
    with GpuMemory() as mem:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout, env=env)
    log = p.stdout + p.stderr
    open(os.path.join(work, "log.txt"), "w").write(log)
    res = dict(name=name, rc=p.returncode, wall_s=time.time() - t0)
    if p.returncode != 0:
        res["error"] = "\n".join(log.strip().splitlines()[-6:])
        return res
    rows = [json.loads(l) for l in open(metrics) if l.strip()]
    tps = [r["tokens_per_s"] for r in rows if r["step"] > a.warmup and r.get("tokens_per_s")]
    if not tps:  # a run of no more steps than the warm-up (the traced one)
        res["losses"] = [r["loss"] for r in rows]
        return res
    c = SHAPE
    tok_gpu = statistics.median(tps) / WORLD
    peaks = allocator_peaks(log)
    res.update(tokens_per_s_per_gpu=tok_gpu, mfu=tok_gpu * flops_per_token(c) / PEAK_FLOPS,
               step_s=MBS * SEQ / tok_gpu, peak_mem_GiB=max(peaks) if peaks else None,
               smi_peak_GiB=max(mem.peak.values()) if mem.peak else None,
               losses=[r["loss"] for r in rows])
    return res


def run_peer(a, ckpt):
    out = os.path.join(a.work, f"peer_ckpt{ckpt}.json")
    if os.path.exists(out):
        os.remove(out)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}", os.path.join(ROOT, "bench/peers/peer_fsdp_train.py"),
           "--ckpt", str(ckpt), "--steps", str(a.steps), "--seq", str(SEQ), "--mbs", str(MBS), "--out", out]
    with GpuMemory() as mem:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
    name = f"fsdp2-{'ckpt' if ckpt else 'none'}"
    if p.returncode != 0 or not os.path.exists(out):
        tail = [l for l in (p.stdout + p.stderr).splitlines() if "arn" not in l][-6:]
        return dict(name=name, rc=p.returncode, error="\n".join(tail))
    r = json.load(open(out))
    return dict(name=name, rc=0, tokens_per_s_per_gpu=r["tokens_per_s_per_gpu"], mfu=r["mfu"],
                step_s=r["step_s"], peak_mem_GiB=r["peak_mem_GiB"],
                smi_peak_GiB=max(mem.peak.values()) if mem.peak else None)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True, help="bmsys-run")
    p.add_argument("--artifacts", required=True, help="build-gpu/artifacts/fsdp")
    p.add_argument("--out", required=True)
    p.add_argument("--work", default="/tmp/bmsys-gpu/fsdp")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--timeout", type=int, default=420)
    p.add_argument("--variants", default="z3-ckpt-pf9,z3-ckpt,z3-none,z2-ckpt,z1-ckpt,tp2-ckpt,pp2-ckpt")
    p.add_argument("--peer", type=int, default=1,
                   help="1: FSDP2 with and without checkpointing; 2: with checkpointing only; 0: none")
    p.add_argument("--world", type=int, default=WORLD,
                   help="GPUs (the artifacts must be compiled for as many ranks; 1: no ZeRO)")
    p.add_argument("--trace", default="", help="also trace one run of the first variant (Chrome JSON)")
    a = p.parse_args()
    globals()["WORLD"] = a.world  # read by run_bmsys, run_peer and the report
    os.makedirs(a.work, exist_ok=True)
    model = os.path.join(a.work, "llama-0.94b")
    c = SHAPE
    subprocess.run([sys.executable, os.path.join(ROOT, "bench/make_model.py"), model, "--hidden", str(c["hidden"]),
                    "--layers", str(c["layers"]), "--inter", str(c["inter"]), "--heads", str(c["heads"]),
                    "--kv-heads", str(c["heads"]), "--vocab", str(c["vocab"]), "--max-pos", str(SEQ),
                    "--dtype", "F32"], check=True, capture_output=True)
    tokens = os.path.join(a.work, "tokens.bin")
    n = (a.steps + 1) * MBS * WORLD * SEQ
    rng = random.Random(0)
    with open(tokens, "wb") as f:  # random ids < vocab, little-endian u16
        array.array("H", (rng.randrange(c["vocab"]) for _ in range(n))).tofile(f)
    results = []
    for v in [x for x in a.variants.split(",") if x]:
        if not os.path.exists(os.path.join(a.artifacts, v + ".bmsys")):
            continue
        r = run_bmsys(a, v, model, tokens)
        print(json.dumps({k: x for k, x in r.items() if k != "losses"}), flush=True)
        results.append(r)
    if a.trace:
        first = [x for x in a.variants.split(",") if x][0]
        save = a.steps
        a.steps = min(a.steps, 3)
        r = run_bmsys(a, first, model, tokens, trace=a.trace)
        a.steps = save
        print(f"trace of {first} ({a.trace.replace('.json', '.rank0.json')}): rc={r['rc']}", flush=True)
    if a.peer:
        for ck in ((1, 0) if a.peer == 1 else (1,)):
            r = run_peer(a, ck)
            print(json.dumps(r), flush=True)
            results.append(r)
    json.dump(dict(model=dict(SHAPE, params=n_params(c), seq=SEQ, micro_batch=MBS, world=WORLD), runs=results),
              open(a.out, "w"), indent=1)

    by = {r["name"]: r for r in results}
    print(f"\nLlama-shaped {n_params(c)/1e9:.2f}B, seq {SEQ}, micro-batch {MBS}/GPU, {WORLD} GPUs, bf16, AdamW")
    hdr = f"{'run':<14} {'tokens/s/GPU':>12} {'MFU':>6} {'peak GiB':>9} {'smi GiB':>8} {'vs FSDP2 tok/s':>15} {'vs FSDP2 mem':>13}"
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        if r.get("rc") != 0 or "tokens_per_s_per_gpu" not in r:
            print(f"{r['name']:<14} FAILED rc={r.get('rc')}: {r.get('error', '')[-300:]}")
            continue
        peer = by.get("fsdp2-none" if r["name"].endswith("none") else "fsdp2-ckpt")
        ratio = mem_ratio = ""
        if peer and peer is not r and "tokens_per_s_per_gpu" in peer:
            ratio = f"{r['tokens_per_s_per_gpu'] / peer['tokens_per_s_per_gpu']:.2f}x"
            if r.get("peak_mem_GiB") and peer.get("peak_mem_GiB"):
                mem_ratio = f"{r['peak_mem_GiB'] / peer['peak_mem_GiB']:.2f}x"
        pm = f"{r['peak_mem_GiB']:.1f}" if r.get("peak_mem_GiB") else "?"
        sm = f"{r['smi_peak_GiB']:.1f}" if r.get("smi_peak_GiB") else "?"
        print(f"{r['name']:<14} {r['tokens_per_s_per_gpu']:>12.0f} {100 * r['mfu']:>5.1f}% {pm:>9} {sm:>8} {ratio:>15} {mem_ratio:>13}")


if __name__ == "__main__":
    main()
