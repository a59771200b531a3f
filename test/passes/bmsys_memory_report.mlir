// RUN: bmsys-opt %s --bmsys-plan-memory --bmsys-memory-report -o /dev/null | FileCheck %s
// RUN: not bmsys-opt %s --bmsys-memory-report -o /dev/null 2>&1 | FileCheck %s --check-prefix=UNPLANNED

// RUN: bmsys-opt %s --bmsys-plan-memory --bmsys-memory-report="json=%t.json workspace=1KiB" -o /dev/null | FileCheck %s --check-prefix=WS
// RUN: FileCheck %s --check-prefix=JSON < %t.json
// RUN: not bmsys-opt %s --bmsys-plan-memory --bmsys-memory-report="workspace=lots" -o /dev/null 2>&1 | FileCheck %s --check-prefix=BADWS

// Weights 16·8·4 = 512 B; the KV cache 256 B; the input x [2,4,8] f32 256 B.
// The plan puts a at 0 and b at 256; a dies once b is written and c reuses its
// memory, so the pool (512 B) peaks when b is allocated, with a and b alive:
// 512 B of activations outside any block, no fragmentation.
// CHECK: bmsys memory report (max_batch=2, max_seq=4, per rank of 1)
// CHECK-NEXT: peak of the activation pool: function 'forward', op 3 (silu)
// CHECK-NEXT: parameters        512 B {{.*}} 1 tensors
// CHECK-NEXT: gradients           0 B
// CHECK-NEXT: optimizer_state     0 B
// CHECK-NEXT: activations other 512 B
// CHECK-NEXT: communication       0 B
// CHECK-NEXT: kv_cache          256 B
// CHECK-NEXT: inputs            256 B
// CHECK-NEXT: workspace           0 B
// CHECK-NEXT: fragmentation       0 B
// CHECK-NEXT: total            1536 B {{.*}} activation pool 512 B, state pool 256 B
// WS: workspace 1024 B
// WS: total 2560 B
// JSON: "activation_pool_bytes": 512,
// JSON: "kv_cache": 256,
// JSON: "parameters": 512,
// JSON: "workspace": 1024
// JSON: "total_bytes": 2560,
// BADWS: bmsys-memory-report: workspace: 'lots' is not a size
// UNPLANNED: expects a planned bmsys_rt module
module attributes {bmsys_rt.max_batch = 2 : i64, bmsys_rt.max_seq = 4 : i64, bmsys_rt.state_bytes = 256 : i64} {
  bmsys_rt.weight @w {dtype = f32, file = "m.safetensors", key = "w", shape = array<i64: 16, 8>}
  bmsys_rt.state @kv.k {bytes = 256 : i64, dtype = f32, offset = 0 : i64, shape = array<i64: 2, 4, 1, 8>}
  bmsys_rt.func @forward {
    %x = bmsys_rt.input "x" {dtype = f32, shape = ["B", "S", 8]}
    %a = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 8]}
    bmsys_rt.launch "silu" (%x) -> (%a)
    %b = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 8]}
    bmsys_rt.launch "silu" (%a) -> (%b)
    %c = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 8]}
    bmsys_rt.launch "silu" (%b) -> (%c)
    bmsys_rt.output "c" %c
  }
}
