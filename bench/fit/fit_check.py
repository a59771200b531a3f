#!/usr/bin/env python3
"""Runs on the GPU machine (stage `fit` of scripts/gpu/run_all.sh): measures the
configurations bench/fit/prepare_fit.sh compiled and compares them with bmsys-fit's
predictions (docs/autofit.md):

  - peak memory: the CUDA allocator's peak (`bmsys-run train --memory-report`,
    bmsys-bench's memory_report) against predicted_peak_bytes, within 10%;
  - step time: the median step of `bmsys-run train --metrics` (steps after the first)
    or bmsys-bench's decode step at position max_seq/2, within 20%;
  - the choice: bmsys-fit's pick against the fastest measured configuration of the
    same grid, within 10%.

fit_check.py --fit build-gpu/fit --bin /tmp/bmsys-gpu/bin --out $OUT/fit.json
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
         "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}


def parse_peak(text):
    """The allocator's peak from a CUDA memory report ('... peak 12.3 GiB, ...')."""
    m = re.search(r"peak ([0-9.]+) ?([KMGT]i?B|B)", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def run(cmd, timeout):
    print("+", " ".join(cmd), flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"exit {p.returncode}: {p.stderr[-2000:]}")
    return p


def measure_train(c, a, tmp):
    tokens = os.path.join(tmp, "tokens.bin")
    if not os.path.exists(tokens):  # random uint16 ids < 32000, enough for every step
        import random
        r = random.Random(1)
        with open(tokens, "wb") as f:
            f.write(b"".join(r.randrange(32000).to_bytes(2, "little") for _ in range(1 << 20)))
    model = os.path.join(tmp, "llama-0.94b")
    if not os.path.exists(model):  # the header prepare_fit.sh compiled against, data a hole
        run([sys.executable, "bench/make_model.py", model, "--hidden", "2048", "--layers", "16",
             "--inter", "5504", "--heads", "16", "--kv-heads", "16", "--vocab", "32000",
             "--max-pos", "2048"], 120)
    metrics = os.path.join(tmp, c["name"] + ".jsonl")
    batch = c["micro_batch"] * c["data_parallel"]
    cmd = [os.path.join(a.bin, "bmsys-run"), "train", os.path.join(a.fit, c["name"] + ".bmsys"),
           "--device", "cuda", "--random-weights", "1", "--weights", os.path.join(model, "model.safetensors"),
           "--data", tokens, "--batch", str(batch),
           "--seq", str(c["seq"]), "--steps", str(a.steps), "--metrics", metrics, "--memory-report"]
    if c["gpus"] > 1:
        cmd += ["--nproc", str(c["gpus"])]
    p = run(cmd, a.timeout)
    steps = [json.loads(l) for l in open(metrics)]
    times = [batch * c["seq"] / s["tokens_per_s"] for s in steps[1:] if s.get("tokens_per_s")]
    peaks = [parse_peak(l) for l in p.stderr.splitlines() if "memory" in l]
    peaks = [x for x in peaks if x]
    return statistics.median(times), max(peaks) if peaks else None


def measure_infer(c, a, tmp):
    model = os.path.join(tmp, "llama-6.7b")
    if not os.path.exists(model):
        run([sys.executable, "bench/make_model.py", model], 120)
    out = os.path.join(tmp, c["name"] + ".bench.json")
    run([os.path.join(a.bin, "bmsys-bench"), "--artifact", os.path.join(a.fit, c["name"] + ".bmsys"),
         "--weights", os.path.join(model, "model.safetensors"), "--dtype", "bf16", "--prefill", "0",
         "--prompt", str(c["seq"] // 2), "--new", "64", "--no-variants", "--skip-ceilings", "--out", out],
        a.timeout)
    r = json.load(open(out))
    return r["decode"]["step_device_ms"] / 1e3, parse_peak(r.get("memory_report", ""))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--fit", default="build-gpu/fit")
    p.add_argument("--bin", default="/tmp/bmsys-gpu/bin")
    p.add_argument("--out", default="fit.json")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--timeout", type=int, default=300)
    p.add_argument("--only", default="", help="comma-separated configuration names")
    p.add_argument("--measured", default="",
                   help="a fit.json of an earlier run: compare these predictions with its measurements "
                        "(same grid names) instead of running (a new calibration, no GPU needed)")
    a = p.parse_args()
    grid = json.load(open(os.path.join(a.fit, "grid.json")))
    if a.only:
        grid = [c for c in grid if c["name"] in a.only.split(",")]
    earlier = {r["name"]: r for r in json.load(open(a.measured))} if a.measured else None
    tmp = tempfile.mkdtemp(prefix="bmsys-fit-")
    rows = []
    for c in grid:
        row = dict(c)
        try:
            if earlier is not None:
                m = earlier.get(c["name"])
                if not m or "measured_step_s" not in m or m.get("configuration") != c["configuration"]:
                    raise RuntimeError(f"{a.measured} has no measurement of {c['name']} ({c['configuration']})")
                t, peak = m["measured_step_s"], m["measured_peak_bytes"]
            else:
                t, peak = (measure_train if c["kind"] == "train" else measure_infer)(c, a, tmp)
            row.update(measured_step_s=t, measured_peak_bytes=peak,
                       step_error=c["predicted_step_s"] / t - 1,
                       peak_error=(c["predicted_peak_bytes"] / peak - 1) if peak else None)
            tokens = (c["micro_batch"] * c["data_parallel"] * c["seq"]) if c["kind"] == "train" else c["micro_batch"]
            row["measured_tokens_per_s"] = tokens / t
        except Exception as e:  # keep going: one failing configuration is a result too
            row["error"] = str(e)[-600:]
        rows.append(row)
        json.dump(rows, open(a.out, "w"), indent=1)

    print(f"{'configuration':<62} {'peak pred/meas GiB':>20} {'err':>6} {'step pred/meas ms':>20} {'err':>6}")
    ok_mem = ok_time = 0
    for r in rows:
        if "error" in r:
            print(f"{r['name'] + ' ' + r['configuration']:<62} FAILED: {r['error'][-200:]}")
            continue
        pe = r["peak_error"]
        ok_mem += pe is not None and abs(pe) <= 0.10
        ok_time += abs(r["step_error"]) <= 0.20
        meas_peak = f"{r['measured_peak_bytes'] / 2**30:.2f}" if r["measured_peak_bytes"] else "?"
        print(f"{r['name'] + ' ' + r['configuration']:<62} {r['predicted_peak_bytes'] / 2**30:>9.2f}/{meas_peak:<9} "
              f"{(100 * pe if pe is not None else float('nan')):>5.1f}% {1e3 * r['predicted_step_s']:>9.2f}/{1e3 * r['measured_step_s']:<9.2f} "
              f"{100 * r['step_error']:>5.1f}%")
    print(f"peak memory within 10%: {ok_mem}/{len(rows)}; step time within 20%: {ok_time}/{len(rows)}")
    # The choice against the fastest measured, per fit report (same grid of choices).
    for rep in sorted({r["report"] for r in rows}):
        same = [r for r in rows if r["report"] == rep and "error" not in r]
        chosen = [r for r in same if r["chosen"]]
        if not same or not chosen:
            continue
        best = max(same, key=lambda r: r["measured_tokens_per_s"])
        gap = 1 - chosen[0]["measured_tokens_per_s"] / best["measured_tokens_per_s"]
        print(f"{rep}: bmsys-fit chose {chosen[0]['configuration']}; fastest measured {best['configuration']}; "
              f"chosen is {100 * gap:.1f}% slower ({'ok' if gap <= 0.10 else 'MISSES the 10% check'})")


if __name__ == "__main__":
    main()
