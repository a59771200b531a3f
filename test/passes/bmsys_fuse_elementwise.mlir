// RUN: bmsys-opt %s --split-input-file --bmsys-fuse-elementwise | FileCheck %s
// RUN: bmsys-opt %s --split-input-file --bmsys-fuse-elementwise="swiglu=0 residual-norm=0 loss-casts=0 rope-attention=0" | FileCheck %s --check-prefix=OFF

// The MLP of a checkpointed block as bmsys-autodiff leaves it: the recomputed
// forward silu * up and the backward (mul(dy, up), silu_grad, mul(dy, silu)).
// The backward triple becomes one swiglu_grad where its first op was, the
// forward pair one swiglu (the silu is no longer needed by the backward).
// CHECK-LABEL: func.func @mlp
// CHECK-SAME: (%[[G:.*]]: tensor<?x?x6xbf16>, %[[U:.*]]: tensor<?x?x6xbf16>, %[[DY:.*]]: tensor<?x?x6xbf16>)
// CHECK-NEXT: %[[H:.*]] = bmsys.swiglu %[[G]], %[[U]] {bmsys.recompute} : (tensor<?x?x6xbf16>, tensor<?x?x6xbf16>) -> tensor<?x?x6xbf16>
// CHECK-NEXT: %[[DG:.*]], %[[DU:.*]] = bmsys.swiglu_grad %[[G]], %[[U]], %[[DY]] : (tensor<?x?x6xbf16>, tensor<?x?x6xbf16>, tensor<?x?x6xbf16>) -> (tensor<?x?x6xbf16>, tensor<?x?x6xbf16>)
// CHECK-NEXT: return %[[H]], %[[DU]], %[[DG]]
// OFF-LABEL: func.func @mlp
// OFF: bmsys.silu
// OFF: bmsys.mul
// OFF: bmsys.silu_grad
// OFF-NOT: bmsys.swiglu
func.func @mlp(%g: tensor<?x?x6xbf16>, %u: tensor<?x?x6xbf16>, %dy: tensor<?x?x6xbf16>)
    -> (tensor<?x?x6xbf16>, tensor<?x?x6xbf16>, tensor<?x?x6xbf16>) {
  %s = bmsys.silu %g {bmsys.recompute} : tensor<?x?x6xbf16>
  %h = bmsys.mul %s, %u {bmsys.recompute} : tensor<?x?x6xbf16>
  %a = bmsys.mul %dy, %u : tensor<?x?x6xbf16>
  %b = bmsys.mul %dy, %s : tensor<?x?x6xbf16>
  %dg = bmsys.silu_grad %g, %a : (tensor<?x?x6xbf16>, tensor<?x?x6xbf16>) -> tensor<?x?x6xbf16>
  return %h, %b, %dg : tensor<?x?x6xbf16>, tensor<?x?x6xbf16>, tensor<?x?x6xbf16>
}

// -----

// A silu whose value is used elsewhere stays, and so does its mul; a
// mul(dy, up) with a second use is not folded into a swiglu_grad.
// CHECK-LABEL: func.func @kept
// CHECK: bmsys.silu
// CHECK: bmsys.mul
// CHECK: bmsys.silu_grad
// CHECK-NOT: bmsys.swiglu
func.func @kept(%g: tensor<4xf32>, %u: tensor<4xf32>, %dy: tensor<4xf32>)
    -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>) {
  %s = bmsys.silu %g : tensor<4xf32>
  %h = bmsys.mul %s, %u : tensor<4xf32>
  %a = bmsys.mul %dy, %u : tensor<4xf32>
  %dg = bmsys.silu_grad %g, %a : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return %s, %h, %a, %dg : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>
}

// -----

// Residual adds and the norms after them. %r1: gamma is ready at the add, so
// the fused op takes the add's place. %r2: gamma comes after the add (a ZeRO
// gather of the next block) and the sum has no use before the norm, so the
// fused op takes the norm's place. %r3: the sum is used between the add and
// its norm while gamma is not ready at the add: left as is.
// CHECK-LABEL: func.func @residual
// CHECK-SAME: (%[[X:.*]]: tensor<?x?x8xf32>, %[[D:.*]]: tensor<?x?x8xf32>, %[[G1:.*]]: tensor<8xf32>, %[[G2:.*]]: tensor<8xf32>)
// CHECK-NEXT: %[[S1:.*]], %[[Y1:.*]] = bmsys.add_rms_norm %[[X]], %[[D]], %[[G1]] {eps = 1.000000e-05 : f64}
// CHECK-NEXT: %[[G2C:.*]] = bmsys.mul %[[G2]], %[[G2]]
// CHECK-NEXT: %[[S2:.*]], %[[Y2:.*]] = bmsys.add_rms_norm %[[S1]], %[[Y1]], %[[G2C]] {eps = 1.000000e-05 : f64}
// CHECK-NEXT: %[[S3:.*]] = bmsys.add %[[S2]], %[[Y2]]
// CHECK-NEXT: %[[M:.*]] = bmsys.mul %[[S3]], %[[S3]]
// CHECK-NEXT: %[[G3:.*]] = bmsys.mul %[[G1]], %[[G1]]
// CHECK-NEXT: %[[Y3:.*]] = bmsys.rms_norm %[[S3]], %[[G3]]
// CHECK-NEXT: return %[[Y3]], %[[M]], %[[S2]]
// OFF-LABEL: func.func @residual
// OFF-NOT: add_rms_norm
func.func @residual(%x: tensor<?x?x8xf32>, %d: tensor<?x?x8xf32>, %g1: tensor<8xf32>, %g2: tensor<8xf32>)
    -> (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>) {
  %r1 = bmsys.add %x, %d : tensor<?x?x8xf32>
  %n1 = bmsys.rms_norm %r1, %g1 {eps = 1.0e-05 : f64} : (tensor<?x?x8xf32>, tensor<8xf32>) -> tensor<?x?x8xf32>
  %r2 = bmsys.add %r1, %n1 : tensor<?x?x8xf32>
  %g2c = bmsys.mul %g2, %g2 : tensor<8xf32>
  %n2 = bmsys.rms_norm %r2, %g2c {eps = 1.0e-05 : f64} : (tensor<?x?x8xf32>, tensor<8xf32>) -> tensor<?x?x8xf32>
  %r3 = bmsys.add %r2, %n2 : tensor<?x?x8xf32>
  %m = bmsys.mul %r3, %r3 : tensor<?x?x8xf32>
  %g3 = bmsys.mul %g1, %g1 : tensor<8xf32>
  %n3 = bmsys.rms_norm %r3, %g3 {eps = 1.0e-05 : f64} : (tensor<?x?x8xf32>, tensor<8xf32>) -> tensor<?x?x8xf32>
  return %n3, %m, %r2 : tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>
}

// -----

// The backward of a pre-norm block: the residual gradient %res is added to the
// norm's dx. Fused where the norm gradient was; dgamma keeps its users.
// CHECK-LABEL: func.func @norm_grad
// CHECK-SAME: (%[[X:.*]]: tensor<?x?x8xf32>, %[[G:.*]]: tensor<8xf32>, %[[DY:.*]]: tensor<?x?x8xf32>, %[[RES:.*]]: tensor<?x?x8xf32>)
// CHECK-NEXT: %[[DX:.*]], %[[DG:.*]] = bmsys.rms_norm_grad_add %[[X]], %[[G]], %[[DY]], %[[RES]] {eps = 1.000000e-05 : f64}
// CHECK-NEXT: %[[C:.*]] = bmsys.mul %[[DG]], %[[DG]]
// CHECK-NEXT: return %[[DX]], %[[C]]
func.func @norm_grad(%x: tensor<?x?x8xf32>, %g: tensor<8xf32>, %dy: tensor<?x?x8xf32>, %res: tensor<?x?x8xf32>)
    -> (tensor<?x?x8xf32>, tensor<8xf32>) {
  %dx, %dg = bmsys.rms_norm_grad %x, %g, %dy {eps = 1.0e-05 : f64} : (tensor<?x?x8xf32>, tensor<8xf32>, tensor<?x?x8xf32>) -> (tensor<?x?x8xf32>, tensor<8xf32>)
  %c = bmsys.mul %dg, %dg : tensor<8xf32>
  %sum = bmsys.add %res, %dx : tensor<?x?x8xf32>
  return %sum, %c : tensor<?x?x8xf32>, tensor<8xf32>
}

// -----

// Mixed precision's loss: bf16 logits cast to f32 for cross_entropy and its
// gradient, the gradient cast back. The kernels read bf16 and write the bf16
// gradient: both casts (3.1 GB per step at the 0.94B benchmark's shape) go.
// CHECK-LABEL: func.func @loss
// CHECK-SAME: (%[[L:.*]]: tensor<?x?x32xbf16>, %[[IDS:.*]]: tensor<?x?xi64>)
// CHECK-NEXT: %[[LOSS:.*]] = bmsys.cross_entropy %[[L]], %[[IDS]] {shift} : (tensor<?x?x32xbf16>, tensor<?x?xi64>) -> tensor<f32>
// CHECK-NEXT: %[[DL:.*]] = bmsys.cross_entropy_grad %[[L]], %[[IDS]] {shift} : (tensor<?x?x32xbf16>, tensor<?x?xi64>) -> tensor<?x?x32xbf16>
// CHECK-NEXT: return %[[LOSS]], %[[DL]]
// OFF-LABEL: func.func @loss
// OFF-COUNT-2: bmsys.cast
func.func @loss(%l: tensor<?x?x32xbf16>, %ids: tensor<?x?xi64>) -> (tensor<f32>, tensor<?x?x32xbf16>) {
  %c = bmsys.cast %l : tensor<?x?x32xbf16> -> tensor<?x?x32xf32>
  %loss = bmsys.cross_entropy %c, %ids {shift} : (tensor<?x?x32xf32>, tensor<?x?xi64>) -> tensor<f32>
  %dl = bmsys.cross_entropy_grad %c, %ids {shift} : (tensor<?x?x32xf32>, tensor<?x?xi64>) -> tensor<?x?x32xf32>
  %db = bmsys.cast %dl : tensor<?x?x32xf32> -> tensor<?x?x32xbf16>
  return %loss, %db : tensor<f32>, tensor<?x?x32xbf16>
}

// -----

// The f32 gradient is also returned: the gradient stays f32 (its cast stays),
// only the forward reads the bf16 logits.
// CHECK-LABEL: func.func @loss_kept
// CHECK: %[[C:.*]] = bmsys.cast
// CHECK: bmsys.cross_entropy %{{.*}}, %{{.*}} {shift} : (tensor<?x?x32xbf16>
// CHECK: bmsys.cross_entropy_grad %[[C]], %{{.*}} {shift} : (tensor<?x?x32xf32>
func.func @loss_kept(%l: tensor<?x?x32xbf16>, %ids: tensor<?x?xi64>) -> (tensor<f32>, tensor<?x?x32xf32>, tensor<?x?x32xbf16>) {
  %c = bmsys.cast %l : tensor<?x?x32xbf16> -> tensor<?x?x32xf32>
  %loss = bmsys.cross_entropy %c, %ids {shift} : (tensor<?x?x32xf32>, tensor<?x?xi64>) -> tensor<f32>
  %dl = bmsys.cross_entropy_grad %c, %ids {shift} : (tensor<?x?x32xf32>, tensor<?x?xi64>) -> tensor<?x?x32xf32>
  %db = bmsys.cast %dl : tensor<?x?x32xf32> -> tensor<?x?x32xbf16>
  return %loss, %dl, %db : tensor<f32>, tensor<?x?x32xf32>, tensor<?x?x32xbf16>
}

// -----

// Rope into attention. A decode step's attention with its KV cache: the ropes of
// q and k (same positions, theta and head_dim, no other use) become one
// rope_attention at the attention, which keeps the cache (it receives the
// rotated keys) and every attribute.
// CHECK: bmsys.kv_cache @kv
// CHECK-LABEL: func.func @decode
// CHECK-SAME: (%[[Q:.*]]: tensor<?x?x16xf32>, %[[K:.*]]: tensor<?x?x8xf32>, %[[V:.*]]: tensor<?x?x8xf32>, %[[P:.*]]: tensor<?x?xi64>)
// CHECK-NEXT: %[[O:.*]] = bmsys.rope_attention %[[Q]], %[[K]], %[[V]], %[[P]] cache @kv {causal, head_dim = 4 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 5.000000e-01 : f64, theta = 5.000000e+05 : f64} : (tensor<?x?x16xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x16xf32>
// CHECK-NEXT: return %[[O]]
// OFF-LABEL: func.func @decode
// OFF-COUNT-2: bmsys.rope
// OFF: bmsys.attention
// OFF-NOT: rope_attention
module attributes {bmsys.max_batch = 1 : i64, bmsys.max_seq = 16 : i64} {
  bmsys.kv_cache @kv {head_dim = 4 : i64, max_batch = 1 : i64, max_seq = 16 : i64, num_kv_heads = 2 : i64}
  func.func @decode(%q: tensor<?x?x16xf32>, %k: tensor<?x?x8xf32>, %v: tensor<?x?x8xf32>, %p: tensor<?x?xi64>) -> tensor<?x?x16xf32> {
    %qr = bmsys.rope %q, %p {head_dim = 4, theta = 5.0e5 : f64} : (tensor<?x?x16xf32>, tensor<?x?xi64>) -> tensor<?x?x16xf32>
    %kr = bmsys.rope %k, %p {head_dim = 4, theta = 5.0e5 : f64} : (tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
    %o = bmsys.attention %qr, %kr, %v cache @kv {num_heads = 4, num_kv_heads = 2, head_dim = 4, scale = 0.5 : f64, causal} : (tensor<?x?x16xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>) -> tensor<?x?x16xf32>
    return %o : tensor<?x?x16xf32>
  }
}

// -----

// Without a cache (the forward of a checkpointed block in train_step, whose
// backward reads a recomputed copy), non-causal, bf16, the positions defined
// between the ropes: fused the same way, where the attention was; a recomputed
// attention's rope_attention keeps the bmsys.recompute marker.
// CHECK-LABEL: func.func @prefill
// CHECK-SAME: (%[[IDS:.*]]: tensor<?x?xi64>, %[[Q:.*]]: tensor<?x?x8xbf16>, %[[K:.*]]: tensor<?x?x8xbf16>, %[[V:.*]]: tensor<?x?x8xbf16>)
// CHECK-NEXT: %[[P:.*]] = bmsys.positions %[[IDS]]
// CHECK-NEXT: %[[S:.*]] = bmsys.silu %[[V]]
// CHECK-NEXT: %[[O:.*]] = bmsys.rope_attention %[[Q]], %[[K]], %[[S]], %[[P]] {bmsys.recompute, head_dim = 4 : i64, num_heads = 2 : i64, num_kv_heads = 2 : i64, scale = 2.500000e-01 : f64, theta = 1.000000e+04 : f64} : (tensor<?x?x8xbf16>, tensor<?x?x8xbf16>, tensor<?x?x8xbf16>, tensor<?x?xi64>) -> tensor<?x?x8xbf16>
// CHECK-NEXT: return %[[O]]
func.func @prefill(%ids: tensor<?x?xi64>, %q: tensor<?x?x8xbf16>, %k: tensor<?x?x8xbf16>, %v: tensor<?x?x8xbf16>) -> tensor<?x?x8xbf16> {
  %p = bmsys.positions %ids : (tensor<?x?xi64>) -> tensor<?x?xi64>
  %kr = bmsys.rope %k, %p {bmsys.recompute, head_dim = 4, theta = 1.0e4 : f64} : (tensor<?x?x8xbf16>, tensor<?x?xi64>) -> tensor<?x?x8xbf16>
  %s = bmsys.silu %v : tensor<?x?x8xbf16>
  %qr = bmsys.rope %q, %p {bmsys.recompute, head_dim = 4, theta = 1.0e4 : f64} : (tensor<?x?x8xbf16>, tensor<?x?xi64>) -> tensor<?x?x8xbf16>
  %o = bmsys.attention %qr, %kr, %s {bmsys.recompute, num_heads = 2, num_kv_heads = 2, head_dim = 4, scale = 0.25 : f64} : (tensor<?x?x8xbf16>, tensor<?x?x8xbf16>, tensor<?x?x8xbf16>) -> tensor<?x?x8xbf16>
  return %o : tensor<?x?x8xbf16>
}

// -----

// Left as they are: ropes of different positions (@positions), of different
// theta (@theta), in heads of another head_dim than the attention's (@head_dim),
// a rotated query used elsewhere too (@other_use), one rope for both q and k
// (@same_rope), and the forward of train_step without checkpointing, where
// attention_grad reads the rotated q and k (@train_step).
// CHECK-LABEL: func.func @positions
// CHECK-COUNT-2: bmsys.rope
// CHECK: bmsys.attention
// CHECK-LABEL: func.func @theta
// CHECK-COUNT-2: bmsys.rope
// CHECK: bmsys.attention
// CHECK-LABEL: func.func @head_dim
// CHECK-COUNT-2: bmsys.rope
// CHECK: bmsys.attention
// CHECK-LABEL: func.func @other_use
// CHECK-COUNT-2: bmsys.rope
// CHECK: bmsys.attention
// CHECK-LABEL: func.func @same_rope
// CHECK: bmsys.rope
// CHECK: bmsys.attention
// CHECK-LABEL: func.func @train_step
// CHECK-COUNT-2: bmsys.rope
// CHECK: bmsys.attention
// CHECK: bmsys.attention_grad
// CHECK-NOT: rope_attention
func.func @positions(%q: tensor<?x?x8xf32>, %k: tensor<?x?x8xf32>, %p: tensor<?x?xi64>, %p2: tensor<?x?xi64>) -> tensor<?x?x8xf32> {
  %qr = bmsys.rope %q, %p {head_dim = 4, theta = 1.0e4 : f64} : (tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %kr = bmsys.rope %k, %p2 {head_dim = 4, theta = 1.0e4 : f64} : (tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %o = bmsys.attention %qr, %kr, %k {num_heads = 2, num_kv_heads = 2, head_dim = 4, scale = 0.5 : f64, causal} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  return %o : tensor<?x?x8xf32>
}
func.func @theta(%q: tensor<?x?x8xf32>, %k: tensor<?x?x8xf32>, %p: tensor<?x?xi64>) -> tensor<?x?x8xf32> {
  %qr = bmsys.rope %q, %p {head_dim = 4, theta = 1.0e4 : f64} : (tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %kr = bmsys.rope %k, %p {head_dim = 4, theta = 5.0e5 : f64} : (tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %o = bmsys.attention %qr, %kr, %k {num_heads = 2, num_kv_heads = 2, head_dim = 4, scale = 0.5 : f64, causal} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  return %o : tensor<?x?x8xf32>
}
func.func @head_dim(%q: tensor<?x?x8xf32>, %k: tensor<?x?x8xf32>, %p: tensor<?x?xi64>) -> tensor<?x?x8xf32> {
  %qr = bmsys.rope %q, %p {head_dim = 8, theta = 1.0e4 : f64} : (tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %kr = bmsys.rope %k, %p {head_dim = 8, theta = 1.0e4 : f64} : (tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %o = bmsys.attention %qr, %kr, %k {num_heads = 2, num_kv_heads = 2, head_dim = 4, scale = 0.5 : f64, causal} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  return %o : tensor<?x?x8xf32>
}
func.func @other_use(%q: tensor<?x?x8xf32>, %k: tensor<?x?x8xf32>, %p: tensor<?x?xi64>) -> (tensor<?x?x8xf32>, tensor<?x?x8xf32>) {
  %qr = bmsys.rope %q, %p {head_dim = 4, theta = 1.0e4 : f64} : (tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %kr = bmsys.rope %k, %p {head_dim = 4, theta = 1.0e4 : f64} : (tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %o = bmsys.attention %qr, %kr, %k {num_heads = 2, num_kv_heads = 2, head_dim = 4, scale = 0.5 : f64, causal} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  return %o, %qr : tensor<?x?x8xf32>, tensor<?x?x8xf32>
}
func.func @same_rope(%q: tensor<?x?x8xf32>, %p: tensor<?x?xi64>) -> tensor<?x?x8xf32> {
  %qr = bmsys.rope %q, %p {head_dim = 4, theta = 1.0e4 : f64} : (tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %o = bmsys.attention %qr, %qr, %q {num_heads = 2, num_kv_heads = 2, head_dim = 4, scale = 0.5 : f64, causal} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  return %o : tensor<?x?x8xf32>
}
func.func @train_step(%q: tensor<?x?x8xf32>, %k: tensor<?x?x8xf32>, %v: tensor<?x?x8xf32>, %p: tensor<?x?xi64>, %dy: tensor<?x?x8xf32>)
    -> (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>) {
  %qr = bmsys.rope %q, %p {head_dim = 4, theta = 1.0e4 : f64} : (tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %kr = bmsys.rope %k, %p {head_dim = 4, theta = 1.0e4 : f64} : (tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  %o = bmsys.attention %qr, %kr, %v {num_heads = 2, num_kv_heads = 2, head_dim = 4, scale = 0.5 : f64, causal} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  %dq, %dk, %dv = bmsys.attention_grad %qr, %kr, %v, %dy {num_heads = 2, num_kv_heads = 2, head_dim = 4, scale = 0.5 : f64, causal}
      : (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>) -> (tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>)
  return %o, %dq, %dk, %dv : tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>
}
