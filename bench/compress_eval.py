#!/usr/bin/env python3
"""BMCook-style evaluation of bmsys's compression passes (docs/compression.md).

    bench/compress_eval.py [--build build] [--out build/compress-eval] [--steps 300]
                           [--compress-steps 150] [--threads 1]

Trains the bundled byte-level model (test/data/llama-tiny) on the main job's corpus
(/usr/share/common-licenses, as scripts/main-job.sh does; GFDL-1.3 is held out), then
compresses it stage by stage and measures each stage on the held-out text:

  dense                      the trained model
  2:4 pruned + distilled     bmsys-prune{2:4} on the layers' linears, then training
                             with bmsys-distill (teacher: the dense model; soft CE at
                             T=2 plus hidden-state MSE of both layers)
  + QAT INT8                 the same again with bmsys-quantize{mode=qat}, exported as
                             real INT8 weights (bmsys-quantize{mode=int8}, weight-only)
  + MoEfication (8, top-2)   bmsys-moefy{experts=8 top-k=2} of that model's FFNs (the
                             FFN experts run in float32: moe_ffn has no INT8 path), the
                             other linears INT8

Columns: held-out loss (mean next-token cross-entropy over 4 batches of 8 x 64
tokens), perplexity relative to dense (exp of the loss difference), model bytes
(the weights the inference artifact reads), and speed relative to dense: greedy
decoding on one CPU thread, tokens per second measured as the time difference of
generating 200 and 20 tokens, fastest of five runs each (process start and loading
cancel out).
Writes OUT/table.md and OUT/results.json and prints the table.
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "tools"))
import safetensors_lite  # noqa: E402

LICENSES = "/usr/share/common-licenses"


def run(*cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


class Eval:
    def __init__(self, args):
        self.a = args
        self.bin = os.path.join(os.path.abspath(args.build), "bin")
        self.out = os.path.abspath(args.out)
        os.makedirs(self.out, exist_ok=True)

    def p(self, name):
        return os.path.join(self.out, name)

    def tool(self, name):
        return os.path.join(self.bin, name)

    def opt(self, src, dst, *passes):
        run(self.tool("bmsys-opt"), src, *passes, "-o", dst)

    def compile(self, mlir, pipeline, artifact):
        rt = artifact + ".rt.mlir"
        self.opt(mlir, rt, pipeline)
        run(self.tool("bmsys-translate"), "--bmsys-to-artifact", rt, "-o", artifact)

    def train(self, artifact, steps, save):
        run(self.tool("bmsys-run"), "train", artifact, "--data", self.p("train.bin"), "--batch", 16,
            "--seq", 64, "--steps", steps, "--save", save, "--threads", self.a.threads,
            "--metrics", save + ".metrics.jsonl")

    # --- measurements ---------------------------------------------------------------
    def heldout_loss(self, artifact, weights=None):
        total, count = 0.0, 0
        for k in range(4):
            inp, outp = self.p(f"held{k}.safetensors"), self.p("logits.safetensors")
            cmd = [self.tool("bmsys-run"), "infer", artifact, "--input", inp, "--output", outp,
                   "--threads", self.a.threads]
            if weights:
                cmd += ["--weights", weights]
            run(*cmd)
            (B, S, V), logits = safetensors_lite.read(outp, "logits")
            _, ids = safetensors_lite.read(inp, "input_ids")
            for b in range(B):
                for s in range(S - 1):
                    row = logits[(b * S + s) * V:(b * S + s + 1) * V]
                    m = max(row)
                    lse = m + math.log(sum(math.exp(x - m) for x in row))
                    total += lse - row[ids[b * S + s + 1]]
                    count += 1
        return total / count

    def model_bytes(self, rt_mlir):
        # Weight buffers of the lowered module: bmsys_rt.weight ... : shape and dtype.
        text = open(rt_mlir).read()
        sizes = {"f32": 4, "bf16": 2, "f16": 2, "i8": 1}
        total = 0
        for m in re.finditer(r"bmsys_rt\.weight @\S+ \{dtype = (\w+),.*?shape = array<i64: ([^>]*)>", text):
            n = 1
            for d in m.group(2).split(","):
                n *= int(d.strip())
            total += n * sizes[m.group(1)]
        return total

    def decode_speed(self, artifact, weights=None):
        def once(tokens):
            cmd = [self.tool("bmsys-run"), "generate", artifact, "--prompt-ids", "84,104,105,115,32",
                   "--max-new-tokens", tokens, "--threads", self.a.threads]
            if weights:
                cmd += ["--weights", weights]
            t = time.perf_counter()
            subprocess.run([str(c) for c in cmd], check=True, stdout=subprocess.DEVNULL)
            return time.perf_counter() - t
        # Fastest of five runs each (the least disturbed on a shared machine); None when
        # the difference is lost in the noise.
        long = min(once(200) for _ in range(5))
        short = min(once(20) for _ in range(5))
        return 180 / (long - short) if long > short * 1.05 else None

    def measure(self, name, mlir, weights=None, extra=()):
        artifact = self.p(name + ".bmsys")
        self.compile(mlir, '--bmsys-infer-pipeline=max-batch=8 max-seq=256' + "".join(extra), artifact)
        r = {"name": name, "loss": self.heldout_loss(artifact, weights),
             "bytes": self.model_bytes(artifact + ".rt.mlir"),
             "tokens_per_s": self.decode_speed(artifact, weights)}
        print(json.dumps(r), flush=True)
        return r

    # --- stages ---------------------------------------------------------------------
    def main(self):
        bmrun = self.tool("bmsys-run")
        train_files = [os.path.join(LICENSES, f) for f in ("GPL-3", "Apache-2.0", "MPL-2.0", "LGPL-2.1")]
        run(bmrun, "tokenize", *train_files, "-o", self.p("train.bin"))
        run(bmrun, "tokenize", os.path.join(LICENSES, "GFDL-1.3"), "-o", self.p("heldout.bin"))
        run(sys.executable, os.path.join(ROOT, "scripts", "calib_batches.py"), self.p("heldout.bin"),
            "--batch", 8, "--seq", 64, "--count", 4, "-o", self.p("held"))

        # Dense: as the main job trains it.
        run(self.tool("bmsys-import-hf"), os.path.join(ROOT, "test", "data", "llama-tiny"), "-o", self.p("model.mlir"))
        steps = self.a.steps
        train = (f"--bmsys-train-pipeline=max-batch=16 max-seq=64 lr=3e-3 beta2=0.95 weight-decay=0.01 "
                 f"max-grad-norm=1.0 schedule=cosine warmup-steps=20 total-steps={steps} min-lr=3e-4")
        self.compile(self.p("model.mlir"), train, self.p("dense-train.bmsys"))
        self.train(self.p("dense-train.bmsys"), steps, self.p("dense"))
        run(self.tool("bmsys-import-hf"), self.p("dense"), "-o", self.p("dense.mlir"))
        rows = [self.measure("dense", self.p("dense.mlir"))]

        # 2:4 pruned + distilled from the dense model.
        cs = self.a.compress_steps
        ctrain = (f"--bmsys-train-pipeline=max-batch=16 max-seq=64 lr=2e-3 beta2=0.95 max-grad-norm=1.0 "
                  f"schedule=cosine warmup-steps=10 total-steps={cs} min-lr=2e-4")
        distill = (f"--bmsys-distill=teacher={self.p('dense.mlir')} temperature=2 layer-map=0:0,1:1 "
                   f"hidden-scale=1 teacher-output={self.p('teacher.safetensors')}")
        prune = "--bmsys-prune=method=2:4 params=model[.]layers[.].* output={}"
        self.opt(self.p("dense.mlir"), self.p("p24.mlir"), prune.format(self.p("p24.safetensors")))
        self.opt(self.p("p24.mlir"), self.p("p24-distill.mlir"), distill)
        self.compile(self.p("p24-distill.mlir"), ctrain, self.p("p24-train.bmsys"))
        self.train(self.p("p24-train.bmsys"), cs, self.p("p24"))
        run(self.tool("bmsys-import-hf"), self.p("p24"), "-o", self.p("p24-trained.mlir"))
        rows.append(self.measure("2:4 pruned + distilled", self.p("p24-trained.mlir")))

        # + QAT: the pruned, distilled weights trained on with fake-quantized INT8 linears
        # (masks re-derived: the pruned weights are exactly the zeros), then INT8.
        self.opt(self.p("p24-trained.mlir"), self.p("qat.mlir"), prune.format(self.p("qat-p24.safetensors")),
                 distill.replace("teacher.safetensors", "teacher-qat.safetensors"), "--bmsys-quantize=mode=qat")
        self.compile(self.p("qat.mlir"), ctrain, self.p("qat-train.bmsys"))
        self.train(self.p("qat-train.bmsys"), cs, self.p("qat"))
        run(self.tool("bmsys-import-hf"), self.p("qat"), "-o", self.p("qat-trained.mlir"))
        rows.append(self.measure("+ QAT INT8", self.p("qat-trained.mlir"),
                                 extra=[f" quantize=int8 quantize-output={self.p('int8.safetensors')}"]))

        # + MoEfication of the QAT-trained model's FFNs; the other linears INT8.
        self.opt(self.p("qat-trained.mlir"), self.p("moe.mlir"),
                 f"--bmsys-moefy=experts=8 top-k=2 output={self.p('moe.safetensors')} report")
        rows.append(self.measure("+ MoEfication (8 experts, top-2)", self.p("moe.mlir"),
                                 extra=[f" quantize=int8 quantize-output={self.p('moe-int8.safetensors')}"]))

        dense = rows[0]
        lines = ["| model | held-out loss | perplexity vs dense | model bytes | decode speed vs dense |",
                 "|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['name']} | {r['loss']:.4f} | {math.exp(r['loss'] - dense['loss']):.3f}x | "
                         f"{r['bytes']:,} ({r['bytes'] / dense['bytes']:.2f}x) | " +
                         (f"{r['tokens_per_s'] / dense['tokens_per_s']:.2f}x ({r['tokens_per_s']:.0f} tok/s) |"
                          if r["tokens_per_s"] and dense["tokens_per_s"] else "not measurable (noise) |"))
        table = "\n".join(lines)
        open(self.p("table.md"), "w").write(table + "\n")
        json.dump(rows, open(self.p("results.json"), "w"), indent=1)
        print(table)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--out")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--compress-steps", type=int, default=150)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    a.out = a.out or os.path.join(a.build, "compress-eval")
    Eval(a).main()
