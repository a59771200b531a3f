// Parameters become weights, KV caches two states each, functions a straight
// line of allocs and launches; flags are explicit 0/1 kernel parameters.
module attributes {bmsys.max_batch = 2 : i64, bmsys.max_seq = 16 : i64} {
  bmsys.param @w : tensor<8x4xf32> from "m.safetensors"["lm.w"]
  bmsys.kv_cache @kv {head_dim = 4 : i64, max_batch = 2 : i64, max_seq = 16 : i64, num_kv_heads = 1 : i64}
  func.func @forward(%ids: tensor<?x?xi64>, %x: tensor<?x?x4xf32> {bmsys.name = "x"})
      -> (tensor<?x?x8xf32> {bmsys.name = "attn"}, tensor<f32> {bmsys.name = "loss"}) {
    %w = bmsys.weight @w : tensor<8x4xf32>
    %y = bmsys.linear %x, %w : (tensor<?x?x4xf32>, tensor<8x4xf32>) -> tensor<?x?x8xf32>
    %o = bmsys.attention %y, %x, %x cache @kv {num_heads = 2, num_kv_heads = 1, head_dim = 4, scale = 0.5 : f64, causal} : (tensor<?x?x8xf32>, tensor<?x?x4xf32>, tensor<?x?x4xf32>) -> tensor<?x?x8xf32>
    %l = bmsys.cross_entropy %o, %ids {shift} : (tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<f32>
    return %o, %l : tensor<?x?x8xf32>, tensor<f32>
  }
}
