// The cost model on a hand-written plan, with the round rates of
// Inputs/machine.json (1 GFLOP/s GEMMs, 1 GB/s memory and bus bandwidth, no
// latencies). At B=2, S=4:
//   linear y[2,4,16] = x[2,4,8] · w[16,8]ᵀ: 2·128·8 = 2048 FLOP -> 2.048e-6 s
//     (its 256 + 512 + 512 bytes would take only 1.28e-6 s);
//   all_reduce of y over 2 ranks: 512 B · 2(2-1)/2 / 1 GB/s = 5.12e-7 s;
//   silu y -> s: 512 + 512 bytes -> 1.024e-6 s.
// In order (overlap false) the call takes 2.048 + 0.512 + 1.024 = 3.584 us. With
// overlap the all-reduce runs beside silu, which does not read its result:
// max(2.048 + 1.024, 2.048 + 0.512) = 3.072 us, none of it exposed.
// RUN: bmsys-opt %s --bmsys-memory-report="calibration=%S/Inputs/machine.json" -o /dev/null | FileCheck %s
// RUN: sed 's/"overlap": false/"overlap": true/' %S/Inputs/machine.json > %t.json
// RUN: bmsys-opt %s --bmsys-memory-report="calibration=%t.json" -o /dev/null | FileCheck %s --check-prefix=OVERLAP
// RUN: echo '{"format": "bmsys-calibration", "version": 1, "gemm": {"f32": [[1, 1]]}}' > %t.bad.json
// RUN: not bmsys-opt %s --bmsys-memory-report="calibration=%t.bad.json" -o /dev/null 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not bmsys-opt %s --bmsys-memory-report="calibration=%t.missing.json" -o /dev/null 2>&1 | FileCheck %s --check-prefix=MISSING

// CHECK: predicted time per call (calibration {{.*}}machine.json, B=2, S=4)
// CHECK-NEXT: forward 3.5840e-06 s  (gemm 2.0480e-06, attention 0.0000e+00, memory-bound 1.0240e-06, collectives 5.1200e-07, host 0.0000e+00, exposed communication 5.1200e-07; 3 launches, 2.0480e+03 FLOP)
// OVERLAP: forward 3.0720e-06 s  ({{.*}} exposed communication 0.0000e+00; 3 launches
// BAD: bmsys-memory-report: {{.*}}.bad.json: missing number "memory_bandwidth"
// MISSING: bmsys-memory-report: {{.*}}.missing.json: cannot read
module attributes {bmsys_rt.activation_bytes = 1536 : i64, bmsys_rt.max_batch = 2 : i64, bmsys_rt.max_seq = 4 : i64, bmsys_rt.state_bytes = 0 : i64} {
  bmsys_rt.weight @w {dtype = f32, file = "m.safetensors", key = "w", shape = array<i64: 16, 8>}
  bmsys_rt.func @forward {
    %x = bmsys_rt.input "x" {dtype = f32, shape = ["B", "S", 8]}
    %w = bmsys_rt.weight_ref @w
    %y = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 16], offset = 0 : i64, bytes = 512 : i64}
    bmsys_rt.launch "linear" (%x, %w) -> (%y) with {weight_transposed = 0 : i64}
    %z = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 16], offset = 512 : i64, bytes = 512 : i64}
    bmsys_rt.launch "all_reduce" (%y) -> (%z) with {ranks = 2 : i64, reduction = "mean"}
    %s = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 16], offset = 1024 : i64, bytes = 512 : i64}
    bmsys_rt.launch "silu" (%y) -> (%s)
    bmsys_rt.output "z" %z
    bmsys_rt.output "s" %s
  }
}
