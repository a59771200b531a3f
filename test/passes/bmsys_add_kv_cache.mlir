// RUN: bmsys-opt %s --split-input-file --verify-diagnostics --bmsys-add-kv-cache | FileCheck %s
// RUN: bmsys-opt %s --split-input-file --verify-diagnostics --bmsys-add-kv-cache=functions=forward,other | FileCheck %s --check-prefix=BOTH

// CHECK: bmsys.kv_cache @kv0 {head_dim = 4 : i64, max_batch = 2 : i64, max_seq = 32 : i64, num_kv_heads = 1 : i64}
// CHECK: bmsys.kv_cache @kv1 {head_dim = 4 : i64, max_batch = 2 : i64, max_seq = 32 : i64, num_kv_heads = 1 : i64}
// CHECK-LABEL: func.func @forward
// CHECK: bmsys.attention %{{.*}} cache @kv0
// CHECK: bmsys.attention %{{.*}} cache @kv1
// Only the functions named by the option (default: forward) get caches.
// CHECK-LABEL: func.func @other
// CHECK-NOT: cache
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

// -----

// expected-error @+1 {{bmsys-add-kv-cache: the module has no shape bounds; run bmsys-bound-shapes first}}
module {
}
