func.func @f(%q: tensor<?x?x16xf32>, %k: tensor<?x?x4xf32>) -> tensor<?x?x16xf32> {
  // expected-error @+1 {{k must be [batch, seq, 8], got 'tensor<?x?x4xf32>'}}
  %y = bmsys.attention %q, %k, %k {num_heads = 4, num_kv_heads = 2, head_dim = 4, scale = 0.5 : f64} : (tensor<?x?x16xf32>, tensor<?x?x4xf32>, tensor<?x?x4xf32>) -> tensor<?x?x16xf32>
  return %y : tensor<?x?x16xf32>
}
