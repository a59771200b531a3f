// RUN: bmsys-opt %s --split-input-file --verify-diagnostics --bmsys-add-kv-cache | FileCheck %s

// CHECK: bmsys.kv_cache @kv0 {head_dim = 4 : i64, max_batch = 2 : i64, max_seq = 32 : i64, num_kv_heads = 1 : i64}
// CHECK: bmsys.kv_cache @kv1 {head_dim = 4 : i64, max_batch = 2 : i64, max_seq = 32 : i64, num_kv_heads = 1 : i64}
// CHECK-LABEL: func.func @f
// CHECK: bmsys.attention %{{.*}} cache @kv0
// CHECK: bmsys.attention %{{.*}} cache @kv1
module attributes {bmsys.max_batch = 2 : i64, bmsys.max_seq = 32 : i64} {
  func.func @f(%q: tensor<?x?x8xf32>, %k: tensor<?x?x4xf32>) -> tensor<?x?x8xf32> {
    %a = bmsys.attention %q, %k, %k {num_heads = 2, num_kv_heads = 1, head_dim = 4, scale = 0.5 : f64, causal} : (tensor<?x?x8xf32>, tensor<?x?x4xf32>, tensor<?x?x4xf32>) -> tensor<?x?x8xf32>
    %b = bmsys.attention %a, %k, %k {num_heads = 2, num_kv_heads = 1, head_dim = 4, scale = 0.5 : f64, causal} : (tensor<?x?x8xf32>, tensor<?x?x4xf32>, tensor<?x?x4xf32>) -> tensor<?x?x8xf32>
    return %b : tensor<?x?x8xf32>
  }
}

// -----

// expected-error @+1 {{bmsys-add-kv-cache: the module has no shape bounds; run bmsys-bound-shapes first}}
module {
}
