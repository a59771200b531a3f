// The runtime dialect parses and prints back.

bmsys_rt.weight @wte {dtype = f32, file = "model.safetensors", key = "wte", shape = array<i64: 16, 8>}
bmsys_rt.state @kv.k {bytes = 512 : i64, dtype = f32, offset = 0 : i64, shape = array<i64: 1, 16, 2, 4>}
bmsys_rt.func @forward {
  %ids = bmsys_rt.input "input_ids" {dtype = i64, shape = ["B", "S"]}
  %w = bmsys_rt.weight_ref @wte
  %k = bmsys_rt.state_ref @kv.k
  %e = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 8], offset = 0 : i64, bytes = 2048 : i64}
  bmsys_rt.launch "embedding" (%ids, %w) -> (%e)
  %n = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 8]}
  bmsys_rt.launch "rms_norm" (%e) -> (%n) with {eps = 1.0e-5 : f64}
  bmsys_rt.dealloc %e
  bmsys_rt.output "hidden" %n
}
