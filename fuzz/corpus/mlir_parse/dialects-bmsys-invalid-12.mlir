// expected-error @+1 {{max_seq must be positive, got 0}}
bmsys.kv_cache @kv {head_dim = 8 : i64, max_batch = 1 : i64, max_seq = 0 : i64, num_kv_heads = 2 : i64}
