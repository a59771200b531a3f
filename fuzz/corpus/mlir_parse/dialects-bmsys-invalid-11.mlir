bmsys.kv_cache @kv {head_dim = 8 : i64, max_batch = 1 : i64, max_seq = 16 : i64, num_kv_heads = 2 : i64}
func.func @f(%q: tensor<?x?x16xf32>, %k: tensor<?x?x8xf32>) -> tensor<?x?x16xf32> {
  // expected-error @+1 {{cache 'kv' holds 2 heads of 8, attention needs 2 of 4}}
  %y = bmsys.attention %q, %k, %k cache @kv {num_heads = 4, num_kv_heads = 2, head_dim = 4, scale = 0.5 : f64} : (tensor<?x?x16xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>) -> tensor<?x?x16xf32>
  return %y : tensor<?x?x16xf32>
}
