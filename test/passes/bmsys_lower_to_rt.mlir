// RUN: bmsys-opt %s --split-input-file --verify-diagnostics --bmsys-lower-to-rt | FileCheck %s

// Parameters become weights, KV caches two states each, functions a straight
// line of allocs and launches; flags are explicit 0/1 kernel parameters.
// CHECK: module attributes {{{.*}}bmsys_rt.max_batch = 2 : i64, bmsys_rt.max_seq = 16 : i64, bmsys_rt.state_bytes = 1024 : i64}
// CHECK: bmsys_rt.weight @w {dtype = f32, file = "m.safetensors", key = "lm.w", shape = array<i64: 8, 4>}
// CHECK: bmsys_rt.state @kv.k {bytes = 512 : i64, dtype = f32, offset = 0 : i64, shape = array<i64: 2, 16, 1, 4>}
// CHECK: bmsys_rt.state @kv.v {bytes = 512 : i64, dtype = f32, offset = 512 : i64, shape = array<i64: 2, 16, 1, 4>}
// CHECK-LABEL: bmsys_rt.func @forward
// CHECK: %[[IDS:.*]] = bmsys_rt.input "input_ids" {dtype = i64, shape = ["B", "S"]}
// CHECK: %[[X:.*]] = bmsys_rt.input "x" {dtype = f32, shape = ["B", "S", 4]}
// CHECK: %[[W:.*]] = bmsys_rt.weight_ref @w
// CHECK: %[[Y:.*]] = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 8]}
// CHECK: bmsys_rt.launch "linear"(%[[X]], %[[W]]) -> (%[[Y]]) with {weight_transposed = 0 : i64}
// CHECK: %[[K:.*]] = bmsys_rt.state_ref @kv.k
// CHECK: %[[V:.*]] = bmsys_rt.state_ref @kv.v
// CHECK: %[[O:.*]] = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 8]}
// CHECK: bmsys_rt.launch "attention"(%[[Y]], %[[X]], %[[X]], %[[K]], %[[V]]) -> (%[[O]]) with {causal = 1 : i64, head_dim = 4 : i64, num_heads = 2 : i64, num_kv_heads = 1 : i64, scale = 5.000000e-01 : f64}
// CHECK: %[[L:.*]] = bmsys_rt.alloc {dtype = f32, shape = []}
// CHECK: bmsys_rt.launch "cross_entropy"(%[[O]], %[[IDS]]) -> (%[[L]]) with {shift = 1 : i64, vocab_shards = 0 : i64}
// CHECK: bmsys_rt.output "attn" %[[O]]
// CHECK: bmsys_rt.output "loss" %[[L]]
// CHECK-NOT: bmsys.
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

// -----

module attributes {bmsys.max_batch = 2 : i64, bmsys.max_seq = 16 : i64} {
  // expected-error @+1 {{argument 0 has a dynamic dimension 2; only dimensions 0 (batch) and 1 (sequence) may be dynamic}}
  func.func @f(%x: tensor<?x?x?xf32>) -> tensor<?x?x?xf32> {
    return %x : tensor<?x?x?xf32>
  }
}

// -----

module attributes {bmsys.max_batch = 2 : i64, bmsys.max_seq = 16 : i64} {
  func.func @f(%x: tensor<?x?x4xf32>) -> tensor<?x?x4xf32> {
    // expected-error @+1 {{must be inlined before lowering (run bmsys-inline-blocks)}}
    %y = bmsys.block "b" (%x) : (tensor<?x?x4xf32>) -> tensor<?x?x4xf32> {
    ^bb0(%a: tensor<?x?x4xf32>):
      bmsys.yield %a : tensor<?x?x4xf32>
    }
    return %y : tensor<?x?x4xf32>
  }
}

// -----

// rope_attention: q, k, v and the positions, then (with a cache) its two states,
// as attention's; theta is a parameter beside attention's, the cache is not.
// CHECK-LABEL: bmsys_rt.func @decode
// CHECK: %[[IDS:.*]] = bmsys_rt.input "input_ids" {dtype = i64, shape = ["B", "S"]}
// CHECK: %[[X:.*]] = bmsys_rt.input "x" {dtype = f32, shape = ["B", "S", 8]}
// CHECK: %[[P:.*]] = bmsys_rt.alloc {dtype = i64, shape = ["B", "S"]}
// CHECK: bmsys_rt.launch "positions"(%[[IDS]]) -> (%[[P]])
// CHECK: %[[K:.*]] = bmsys_rt.state_ref @kv.k
// CHECK: %[[V:.*]] = bmsys_rt.state_ref @kv.v
// CHECK: %[[O:.*]] = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 8]}
// CHECK: bmsys_rt.launch "rope_attention"(%[[X]], %[[X]], %[[X]], %[[P]], %[[K]], %[[V]]) -> (%[[O]]) with {causal = 1 : i64, head_dim = 4 : i64, num_heads = 2 : i64, num_kv_heads = 2 : i64, scale = 5.000000e-01 : f64, theta = 1.000000e+04 : f64}
// CHECK: %[[O2:.*]] = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 8]}
// CHECK: bmsys_rt.launch "rope_attention"(%[[O]], %[[X]], %[[X]], %[[P]]) -> (%[[O2]]) with {causal = 0 : i64, head_dim = 4 : i64, num_heads = 2 : i64, num_kv_heads = 2 : i64, scale = 5.000000e-01 : f64, theta = 5.000000e+05 : f64}
// CHECK: bmsys_rt.output "y" %[[O2]]
module attributes {bmsys.max_batch = 1 : i64, bmsys.max_seq = 16 : i64} {
  bmsys.kv_cache @kv {head_dim = 4 : i64, max_batch = 1 : i64, max_seq = 16 : i64, num_kv_heads = 2 : i64}
  func.func @decode(%ids: tensor<?x?xi64>, %x: tensor<?x?x8xf32> {bmsys.name = "x"}) -> (tensor<?x?x8xf32> {bmsys.name = "y"}) {
    %p = bmsys.positions %ids : (tensor<?x?xi64>) -> tensor<?x?xi64>
    %o = bmsys.rope_attention %x, %x, %x, %p cache @kv {num_heads = 2, num_kv_heads = 2, head_dim = 4, scale = 0.5 : f64, causal, theta = 1.0e4 : f64} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
    %o2 = bmsys.rope_attention %o, %x, %x, %p {num_heads = 2, num_kv_heads = 2, head_dim = 4, scale = 0.5 : f64, theta = 5.0e5 : f64} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
    return %o2 : tensor<?x?x8xf32>
  }
}
