#!/usr/bin/env python3
"""Checks a distillation run.

    check_distill.py BEFORE.safetensors AFTER.safetensors CKPT_MODEL.safetensors TEACHER.safetensors

BEFORE/AFTER are outputs of `bmsys-run infer --function distill_forward` with the
initial and the trained weights: `distill.soft_ce` must be lower after training.
Every `teacher.*` tensor of the trained checkpoint must equal (bit for bit) the
tensor the pass wrote: the teacher is frozen. Exits 1 otherwise.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_lite  # noqa: E402


def main():
    before, after, ckpt, teacher = sys.argv[1:5]
    b = safetensors_lite.read(before, "distill.soft_ce")[1][0]
    a = safetensors_lite.read(after, "distill.soft_ce")[1][0]
    ok = a < b
    print(f"soft_ce {b:.5f} -> {a:.5f} {'lower' if ok else 'NOT LOWER'}")
    header, _ = safetensors_lite.read_header(teacher)
    keys = [k for k in header if k.startswith("teacher.")]
    same = all(safetensors_lite.read(ckpt, k) == safetensors_lite.read(teacher, k) for k in keys)
    print(f"teacher weights {'unchanged' if same else 'CHANGED'}: {len(keys)} tensors")
    sys.exit(0 if ok and same and keys else 1)


if __name__ == "__main__":
    main()
