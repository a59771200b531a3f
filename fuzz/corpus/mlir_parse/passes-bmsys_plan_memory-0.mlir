// A chain a -> b -> c -> d: a dies after b is written, so c reuses a's memory;
// d reuses b's. The output d lives to the end. Sizes at B=2, S=4: 2*4*8*4 = 256 B.

// The scalar reuses c's memory, which dies at the launch that writes d.
// ALIGN64: %{{.*}} = bmsys_rt.alloc {bytes = 4 : i64, dtype = f32, offset = 0 : i64, shape = []}
// BADALIGN: alignment must be a power of two, got 48
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
