// The cost model's decode and steady-state terms, with the round rates of
// Inputs/machine-graphs.json (1 TFLOP/s GEMMs, 1 GB/s memory and bus bandwidth,
// GEMV table [[1000 B, 1e8 B/s], [1e6 B, 1e9 B/s]], eager launch 1e-6 s, a kernel in
// a replayed graph 1e-7 s, overlap on). At B=1, S=1:
//  @decode (no collective: replayed from a CUDA graph, 1e-7 s per kernel):
//   linear of one row streams w[16,8] f32 (512 B) at the GEMV rate; below the table's
//     smallest point the time stays that point's, 1000 B / 1e8 B/s = 1e-5 s;
//   silu: 64 + 64 B -> 1.28e-7 s, plus the stream ramp: the table's mean excess over
//     bytes / bandwidth, ((1e-5 - 1e-6) + 0) / 2 = 4.5e-6 s, times 128 / 1000 (a kernel
//     below the table's smallest point pays in proportion) = 5.76e-7 s;
//   total 1e-5 + 1e-7 + 1.28e-7 + 5.76e-7 + 1e-7 = 1.0904e-5 s.
//  @step (a collective: eager launches, 1e-6 s each):
//   linear 1e-5 + 1e-6, silu 1.28e-7 + 5.76e-7 + 1e-6, then all_gather of s over 2
//   ranks: 64 B / 2 / 1 GB/s = 3.2e-8 s (+ 1e-6). The gather is the step's tail: in
//   steady state it overlaps the next step's compute, so the step takes the compute
//   stream's 1.2704e-5 s (not 1.2704e-5 + 1.032e-6).
// RUN: bmsys-opt %s --bmsys-memory-report="calibration=%S/Inputs/machine-graphs.json" -o /dev/null | FileCheck %s

// CHECK: predicted time per call (calibration {{.*}}machine-graphs.json, B=1, S=1)
// CHECK-DAG: decode 1.0904e-05 s  (gemm 1.0000e-05, {{.*}}; 2 launches
// CHECK-DAG: step 1.2704e-05 s  (gemm 1.0000e-05, {{.*}} collectives 3.2000e-08, {{.*}} exposed communication 0.0000e+00; 3 launches
module attributes {bmsys_rt.activation_bytes = 1536 : i64, bmsys_rt.max_batch = 1 : i64, bmsys_rt.max_seq = 1 : i64, bmsys_rt.state_bytes = 0 : i64} {
  bmsys_rt.weight @w {dtype = f32, file = "m.safetensors", key = "w", shape = array<i64: 16, 8>}
  bmsys_rt.func @decode {
    %x = bmsys_rt.input "x" {dtype = f32, shape = ["B", "S", 8]}
    %w = bmsys_rt.weight_ref @w
    %y = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 16], offset = 0 : i64, bytes = 64 : i64}
    bmsys_rt.launch "linear" (%x, %w) -> (%y) with {weight_transposed = 0 : i64}
    %s = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 16], offset = 64 : i64, bytes = 64 : i64}
    bmsys_rt.launch "silu" (%y) -> (%s)
    bmsys_rt.output "s" %s
  }
  bmsys_rt.func @step {
    %x = bmsys_rt.input "x" {dtype = f32, shape = ["B", "S", 8]}
    %w = bmsys_rt.weight_ref @w
    %y = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 16], offset = 0 : i64, bytes = 64 : i64}
    bmsys_rt.launch "linear" (%x, %w) -> (%y) with {weight_transposed = 0 : i64}
    %s = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 16], offset = 64 : i64, bytes = 64 : i64}
    bmsys_rt.launch "silu" (%y) -> (%s)
    %g = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 16], offset = 128 : i64, bytes = 64 : i64}
    bmsys_rt.launch "all_gather" (%s) -> (%g) with {ranks = 2 : i64}
    bmsys_rt.output "g" %g
  }
}
