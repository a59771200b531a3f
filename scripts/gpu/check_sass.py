#!/usr/bin/env python3
"""Checks, in the SASS of a binary, that every decode GEMV kernel with 16-byte weight loads
issues its first weight loads before griddepcontrol.wait (SASS: ACQBULK), and the decode
attention its prefetch of the first cached k/v rows.

The row GEMV loads a row's first packs before waiting for the previous kernel under
programmatic dependent launch, so the weight stream starts while that kernel drains.
ptxas is free to hoist the wait above those loads (waiting earlier is always correct) and
did so silently for the row kernel's predicated loads (gemv.cu: the loads now sit in a
branch; a unified INT8 variant lost 20% of its decode speed the same way). A kernel may
also wait first, conditionally (pdl_wait_unless: where an earlier kernel of the flush
wrote the weights), so the check is that a wait follows the first early load. Needs
cuobjdump (the GPU machine has it; CI does not).

  check_sass.py BINARY   prints "sass: N ... kernels load before the wait, M wait first"
                         and each kernel that waits first; exit 1 if M > 0 or N == 0
"""
import re
import subprocess
import sys


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    sass = subprocess.run(["cuobjdump", "-sass", sys.argv[1]], capture_output=True, text=True, check=True).stdout
    # (kernel name pattern, what its early load is in SASS): gemv_kernel<T, MT, VEC, ...>
    # and gemv_int8_kernel<T, MT, VEC, ...> with 16-byte weight loads, and the tensor-core
    # gemv_int8_mma_kernel (always 16-byte loads); the decode
    # attention's L1 prefetch of its first cached k/v rows; the lab's row kernels.
    kinds = [(r"(11gemv_kernel|16gemv_int8_kernel)I.*?Li\d+ELb1E", "LDG.E.NA.128"),
             (r"20gemv_int8_mma_kernelI", "LDG.E.NA.128"),
             (r"18attn_decode_kernelI", "CCTL"),
             (r"(15gemv_row_kernel|16gemv_rowp_kernel)I", "LDG.E.NA.128")]  # bmsys-gemv-lab
    good, bad = 0, []
    for func in re.split(r"\n\s*Function : ", sass)[1:]:
        name = func.split("\n", 1)[0].strip()
        marker = next((m for pat, m in kinds if re.search(pat, name)), None)
        if marker is None:
            continue
        lines = func.splitlines()
        waits = [i for i, l in enumerate(lines) if "ACQBULK" in l]
        load = next((i for i, l in enumerate(lines) if marker in l), None)
        if not waits or load is None:
            bad.append(f"{name}: no {'ACQBULK' if not waits else marker}")
        elif waits[-1] > load:
            good += 1
        else:
            bad.append(f"{name}: every ACQBULK (last at line {waits[-1]}) before the first {marker} (line {load})")
    print(f"sass: {good} decode GEMV/attention kernels load before the wait, {len(bad)} wait first")
    for b in bad:
        print("  " + b)
    return 1 if bad or good == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
