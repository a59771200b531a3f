#!/usr/bin/env python3
"""Issue 6's results from the JSON files of one `scripts/gpu/run_all.sh int8` run.

python3 bench/int8_summary.py DIR [--out int8.json]

DIR holds what that run wrote (a missing file drops the results that need it):
  kernels.json  bmsys-bench-int8: INT8 GEMM / GEMVs against bf16, pinned H2D GB/s
  bf16.json     bmsys-bench, the bf16 6.7B fully resident, with the ceilings
                (device copy bandwidth)
  w8.json       bmsys-bench, the weight-only INT8 6.7B fully resident
  sched.json    bmsys-bench, INT8 + bmsys-memory-schedule for 6 GiB
  peer.json     bench/peers/peer_offload_infer.py (HF accelerate offload, 6 GiB)

Prints one JSON line per result ({"metric": ...}) and then a readable summary; --out
writes the inputs and the results ("metrics", each with its summary lines "text").
Every ratio is between numbers measured in the same run:
  - resident INT8 decode against bf16 decode (target 1.8x) and against its byte bound:
    the weight bytes a decode step reads (all weights but the embedding table, of which
    it reads a row; INT8 weights 1 byte, their scales 4) / the device copy bandwidth;
  - scheduled decode against the PCIe bound: bytes streamed per token (the schedule's
    swapped layers) / the pinned host -> device bandwidth (target 80%), and against HF
    accelerate's offload (target 40x).
"""
import argparse
import json
import os
import sys


def load(d, name):
    try:
        with open(os.path.join(d, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def gemm_metric(k):
    g = (k or {}).get("gemm_8192")
    if not g:
        return None
    return {"metric": "int8_gemm_8192", "int8_TOPs": g["int8_TOPs"], "bf16_TFLOPs": g["bf16_TFLOPs"],
            "speedup": g["int8_speedup"], "target": 1.5, "linear_speedup": g["int8_linear_speedup"],
            "text": [["INT8 GEMM 8192^3 (cuBLASLt) vs bf16",
                      f'{g["int8_TOPs"]:.0f} TOP/s vs {g["bf16_TFLOPs"]:.0f} TFLOP/s = {g["int8_speedup"]:.2f}x (target 1.5x)'],
                     ["  with quantize + rescale (linear_int8)", f'{g["int8_linear_speedup"]:.2f}x']]}


def resident_metric(bf, w8):
    if not bf or not w8 or "decode" not in bf or "decode" not in w8:
        return None
    # The decode fed on the device (bmsys-run generate's path) where both runs have it;
    # the host-synchronous loop (one round trip per token) beside it.
    fed = "decode_fed" in bf and "decode_fed" in w8
    key = "decode_fed" if fed else "decode"
    t8, tb = w8[key]["tok_s"], bf[key]["tok_s"]
    m = {"metric": "int8_resident_decode", "int8_tok_s": t8, "bf16_tok_s": tb, "speedup": t8 / tb,
         "target": 1.8, "fed_on_device": fed}
    text = [["resident decode, batch 1: INT8 weight-only vs bf16" + (" (fed on the device)" if fed else ""),
             f"{t8:.1f} vs {tb:.1f} tok/s = {t8 / tb:.2f}x (target 1.8x)"]]
    if fed:
        s8, sb = w8["decode"]["tok_s"], bf["decode"]["tok_s"]
        m.update({"sync_int8_tok_s": s8, "sync_bf16_tok_s": sb, "sync_speedup": s8 / sb})
        text.append(["  host-synchronous loop", f"{s8:.1f} vs {sb:.1f} tok/s = {s8 / sb:.2f}x"])
    copy = bf.get("ceilings", {}).get("copy_GBps")
    s8 = w8.get("streamed_weight_bytes", w8.get("weight_bytes"))
    sb = bf.get("streamed_weight_bytes", bf.get("weight_bytes"))
    if copy and s8 and sb:
        b8, bb = copy * 1e9 / s8, copy * 1e9 / sb
        m.update({"copy_GBps": copy, "int8_bytes_per_token": s8, "bf16_bytes_per_token": sb,
                  "int8_bound_tok_s": b8, "int8_share_of_bound": t8 / b8,
                  "bf16_bound_tok_s": bb, "bf16_share_of_bound": tb / bb, "byte_ratio": sb / s8})
        text += [["  INT8 byte bound = bytes read per step / copy bw",
                  f"{s8 / 1e9:.2f} GB / {copy:.0f} GB/s = {b8:.1f} tok/s -> {100 * t8 / b8:.1f}%"],
                 ["  bf16 byte bound", f"{sb / 1e9:.2f} GB -> {bb:.1f} tok/s -> {100 * tb / bb:.1f}%"],
                 ["  bytes bf16 / INT8 (the speedup bytes allow)", f"{sb / s8:.2f}x"]]
    m["text"] = text
    return m


def schedule_metric(k, sc, peer):
    if not sc or "decode" not in sc:
        return None
    t = sc.get("decode_fed", sc["decode"])["tok_s"]
    plan = sc.get("schedule", {})
    bpt = plan.get("bytes_per_token", 0)
    m = {"metric": "int8_6gib_schedule_decode", "tok_s": t, "bytes_per_token": bpt,
         "swapped_layers": len(plan.get("swapped_layers", [])), "budget_bytes": plan.get("budget"),
         "device_bytes_held": sc.get("device_bytes_held")}
    text = [["6 GiB budget: INT8 + memory schedule decode",
             f'{t:.2f} tok/s ({m["swapped_layers"]} layers swapped)']]
    h2d = (k or {}).get("pinned_h2d_GBps")
    if bpt and h2d:
        bound = h2d * 1e9 / bpt
        m.update({"pinned_h2d_GBps": h2d, "pcie_bound_tok_s": bound, "share_of_bound": t / bound,
                  "target_share": 0.8})
        text.append(["  PCIe bound = bytes per token / pinned H2D",
                     f"{bpt / 1e9:.3f} GB / {h2d:.1f} GB/s = {bound:.2f} tok/s -> {100 * t / bound:.1f}% (target 80%)"])
    elif not bpt:
        text.append(["  PCIe bound", "none: no weights move per token (at most 2 swapped layers)"])
    pe = (peer or {}).get("decode_tok_s_offload")
    if pe:
        m.update({"peer_tok_s": pe, "vs_peer": t / pe, "target_vs_peer": 40})
        text.append(["  HF accelerate offload, 6 GiB (fp16)", f"{pe:.3f} tok/s -> bmsys {t / pe:.1f}x (target 40x)"])
    if m["device_bytes_held"] is not None and m["budget_bytes"]:
        text.append(["  device memory held (without the CUDA context)",
                      f'{m["device_bytes_held"] / 2**30:.2f} GiB of the {m["budget_bytes"] / 2**30:.2f} GiB budget'])
    m["text"] = text
    return m


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--out", default="")
    a = p.parse_args()
    raw = {n: load(a.dir, n) for n in ("kernels", "bf16", "w8", "sched", "peer")}
    metrics = [m for m in (gemm_metric(raw["kernels"]), resident_metric(raw["bf16"], raw["w8"]),
                           schedule_metric(raw["kernels"], raw["sched"], raw["peer"])) if m]
    for m in metrics:
        print(json.dumps({k: v for k, v in m.items() if k != "text"}))
    rows = [r for m in metrics for r in m["text"]]
    w = max([len(r[0]) for r in rows] + [10])
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")
    missing = [n for n, v in raw.items() if v is None]
    if missing:
        print(f"  (no results from: {', '.join(n + '.json' for n in missing)})")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({**{k: v for k, v in raw.items() if v is not None}, "metrics": metrics}, f, indent=1)
    return 0 if metrics else 1


if __name__ == "__main__":
    sys.exit(main())
