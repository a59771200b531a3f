// Only the functions named by the option (default: forward) get caches.
// BOTH-LABEL: func.func @other
// BOTH: bmsys.attention %{{.*}} cache @kv2
module attributes {bmsys.max_batch = 2 : i64, bmsys.max_seq = 32 : i64} {
  func.func @forward(%q: tensor<?x?x8xf32>, %k: tensor<?x?x4xf32>) -> tensor<?x?x8xf32> {
    %a = bmsys.attention %q, %k, %k {num_heads = 2, num_kv_heads = 1, head_dim = 4, scale = 0.5 : f64, causal} : (tensor<?x?x8xf32>, tensor<?x?x4xf32>, tensor<?x?x4xf32>) -> tensor<?x?x8xf32>
    %b = bmsys.attention %a, %k, %k {num_heads = 2, num_kv_heads = 1, head_dim = 4, scale = 0.5 : f64, causal} : (tensor<?x?x8xf32>, tensor<?x?x4xf32>, tensor<?x?x4xf32>) -> tensor<?x?x8xf32>
    return %b : tensor<?x?x8xf32>
  }
  func.func @other(%q: tensor<?x?x8xf32>, %k: tensor<?x?x4xf32>) -> tensor<?x?x8xf32> {
    %a = bmsys.attention %q, %k, %k {num_heads = 2, num_kv_heads = 1, head_dim = 4, scale = 0.5 : f64, causal} : (tensor<?x?x8xf32>, tensor<?x?x4xf32>, tensor<?x?x4xf32>) -> tensor<?x?x8xf32>
    return %a : tensor<?x?x8xf32>
  }
}
