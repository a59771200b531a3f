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
