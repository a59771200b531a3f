// The cost model prices rope_attention as the rope + rope + attention it replaces,
// less two launch latencies (docs/autofit.md), with the round rates of
// Inputs/machine.json (1 GFLOP/s, 1 GB/s, no latencies). At B=2, S=4, P=0, 2 query
// heads and 1 kv head of D=4 (q [2,4,8], k and v [2,4,4] f32, positions [2,4] i64):
//   rope(q): 256 + 64 read, 256 written -> 5.76e-7 s; rope(k): 128 + 64 + 128 -> 3.2e-7 s;
//   attention: 4·2·2·4·(0 + 5/2)·4 = 640 FLOP -> 6.4e-7 s, against its bytes (q 256,
//     k 128, v 128, the result 256 and the 2·2·4·4·4 = 256 cached bytes read) -> 1.024e-6 s.
// Both functions: 1.92e-6 s, 1.024e-6 of it attention and 8.96e-7 memory-bound; with a
// launch latency of 1 us the unfused function's three launches cost 2 us more.
// RUN: bmsys-opt %s --bmsys-lower-to-rt --bmsys-plan-memory --bmsys-memory-report="calibration=%S/Inputs/machine.json" -o /dev/null | FileCheck %s
// RUN: sed 's/"launch_latency_s": 0/"launch_latency_s": 1.0e-6/' %S/Inputs/machine.json > %t.json
// RUN: bmsys-opt %s --bmsys-lower-to-rt --bmsys-plan-memory --bmsys-memory-report="calibration=%t.json" -o /dev/null | FileCheck %s --check-prefix=LATENCY

// CHECK: predicted time per call (calibration {{.*}}machine.json, B=2, S=4)
// CHECK-NEXT: unfused 1.9200e-06 s  (gemm 0.0000e+00, attention 1.0240e-06, memory-bound 8.9600e-07, collectives 0.0000e+00, host 0.0000e+00, exposed communication 0.0000e+00; 3 launches, 6.4000e+02 FLOP)
// CHECK-NEXT: fused 1.9200e-06 s  (gemm 0.0000e+00, attention 1.0240e-06, memory-bound 8.9600e-07, collectives 0.0000e+00, host 0.0000e+00, exposed communication 0.0000e+00; 1 launches, 6.4000e+02 FLOP)
// LATENCY: unfused 4.9200e-06 s
// LATENCY-NEXT: fused 2.9200e-06 s
module attributes {bmsys.max_batch = 2 : i64, bmsys.max_seq = 4 : i64} {
  bmsys.kv_cache @kv0 {head_dim = 4 : i64, max_batch = 2 : i64, max_seq = 4 : i64, num_kv_heads = 1 : i64}
  bmsys.kv_cache @kv1 {head_dim = 4 : i64, max_batch = 2 : i64, max_seq = 4 : i64, num_kv_heads = 1 : i64}
  func.func @unfused(%q: tensor<?x?x8xf32>, %k: tensor<?x?x4xf32>, %v: tensor<?x?x4xf32>, %p: tensor<?x?xi64>) -> tensor<?x?x8xf32> {
    %qr = bmsys.rope %q, %p {head_dim = 4, theta = 1.0e4 : f64} : (tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
    %kr = bmsys.rope %k, %p {head_dim = 4, theta = 1.0e4 : f64} : (tensor<?x?x4xf32>, tensor<?x?xi64>) -> tensor<?x?x4xf32>
    %o = bmsys.attention %qr, %kr, %v cache @kv0 {num_heads = 2, num_kv_heads = 1, head_dim = 4, scale = 0.5 : f64, causal} : (tensor<?x?x8xf32>, tensor<?x?x4xf32>, tensor<?x?x4xf32>) -> tensor<?x?x8xf32>
    return %o : tensor<?x?x8xf32>
  }
  func.func @fused(%q: tensor<?x?x8xf32>, %k: tensor<?x?x4xf32>, %v: tensor<?x?x4xf32>, %p: tensor<?x?xi64>) -> tensor<?x?x8xf32> {
    %o = bmsys.rope_attention %q, %k, %v, %p cache @kv1 {num_heads = 2, num_kv_heads = 1, head_dim = 4, scale = 0.5 : f64, causal, theta = 1.0e4 : f64} : (tensor<?x?x8xf32>, tensor<?x?x4xf32>, tensor<?x?x4xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
    return %o : tensor<?x?x8xf32>
  }
}
