// RUN: bmsys-opt %s --bmsys-plan-memory | FileCheck %s
// RUN: bmsys-opt %s --bmsys-plan-memory="alignment=64" | FileCheck %s --check-prefix=ALIGN64
// RUN: not bmsys-opt %s --bmsys-plan-memory="alignment=48" 2>&1 | FileCheck %s --check-prefix=BADALIGN
// RUN: not bmsys-opt %s --bmsys-plan-memory="alignment=2097152" 2>&1 | FileCheck %s --check-prefix=HUGEALIGN

// A chain a -> b -> c -> d: a dies after b is written, so c reuses a's memory;
// d reuses b's. The output d lives to the end. Sizes at B=2, S=4: 2*4*8*4 = 256 B.
// CHECK: module attributes {bmsys_rt.activation_bytes = 512 : i64
// CHECK: %[[A:.*]] = bmsys_rt.alloc {bytes = 256 : i64, dtype = f32, offset = 0 : i64
// CHECK: %[[B:.*]] = bmsys_rt.alloc {bytes = 256 : i64, dtype = f32, offset = 256 : i64
// CHECK: bmsys_rt.launch "silu"(%[[A]]) -> (%[[B]])
// CHECK-NEXT: bmsys_rt.dealloc %[[A]]
// CHECK: %[[C:.*]] = bmsys_rt.alloc {bytes = 256 : i64, dtype = f32, offset = 0 : i64
// CHECK: bmsys_rt.launch "silu"(%[[B]]) -> (%[[C]])
// CHECK-NEXT: bmsys_rt.dealloc %[[B]]
// CHECK: %[[D:.*]] = bmsys_rt.alloc {bytes = 256 : i64, dtype = f32, offset = 256 : i64
// CHECK: bmsys_rt.launch "silu"(%[[C]]) -> (%[[D]])
// CHECK-NEXT: bmsys_rt.dealloc %[[C]]
// CHECK-NOT: bmsys_rt.dealloc %[[D]]
// CHECK: bmsys_rt.output "d" %[[D]]

// The scalar reuses c's memory, which dies at the launch that writes d.
// ALIGN64: %{{.*}} = bmsys_rt.alloc {bytes = 4 : i64, dtype = f32, offset = 0 : i64, shape = []}
// BADALIGN: alignment must be a power of two of at most 1048576 (1 MiB), got 48
// HUGEALIGN: alignment must be a power of two of at most 1048576 (1 MiB), got 2097152
module attributes {bmsys_rt.max_batch = 2 : i64, bmsys_rt.max_seq = 4 : i64} {
  bmsys_rt.func @forward {
    %x = bmsys_rt.input "x" {dtype = f32, shape = ["B", "S", 8]}
    %a = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 8]}
    bmsys_rt.launch "silu" (%x) -> (%a)
    %b = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 8]}
    bmsys_rt.launch "silu" (%a) -> (%b)
    %c = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 8]}
    bmsys_rt.launch "silu" (%b) -> (%c)
    %d = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 8]}
    bmsys_rt.launch "silu" (%c) -> (%d)
    %s = bmsys_rt.alloc {dtype = f32, shape = []}
    bmsys_rt.launch "cross_entropy" (%d, %x) -> (%s)
    bmsys_rt.output "d" %d
    bmsys_rt.output "s" %s
  }
}
