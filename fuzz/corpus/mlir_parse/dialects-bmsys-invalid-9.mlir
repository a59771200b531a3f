func.func @f(%q: tensor<?x?x12xf32>, %k: tensor<?x?x8xf32>) -> tensor<?x?x12xf32> {
  // expected-error @+1 {{num_heads (3) must be a multiple of num_kv_heads (2)}}
  %y = bmsys.attention %q, %k, %k {num_heads = 3, num_kv_heads = 2, head_dim = 4, scale = 0.5 : f64, causal} : (tensor<?x?x12xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>) -> tensor<?x?x12xf32>
  return %y : tensor<?x?x12xf32>
}
