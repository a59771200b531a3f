// RUN: bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-autodiff=return-grads | FileCheck %s
// RUN: bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-checkpoint --bmsys-autodiff | FileCheck %s --check-prefix=CKPT

// The forward is kept; train_step returns the loss and, with return-grads,
// each parameter's gradient under its Hugging Face key.
// CHECK: func.func @forward
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: (%[[IDS:.*]]: tensor<?x?xi64> {bmsys.name = "input_ids"}) -> (tensor<f32> {bmsys.name = "loss"}, tensor<16x8xf32> {bmsys.name = "grad.emb"}, tensor<8xf32> {bmsys.name = "grad.g"}, tensor<8x8xf32> {bmsys.name = "grad.w"})
// CHECK-NOT: bmsys.block
// CHECK: %[[EMB:.*]] = bmsys.weight @emb
// CHECK: %[[X:.*]] = bmsys.embedding %[[IDS]], %[[EMB]]
// CHECK: %[[N:.*]] = bmsys.rms_norm %[[X]], %[[G:[0-9]+]]
// CHECK: %[[L:.*]] = bmsys.linear %[[N]], %[[W:[0-9]+]]
// CHECK: %[[S:.*]] = bmsys.silu %[[L]]
// CHECK: %[[R:.*]] = bmsys.add %[[S]], %[[X]]
// CHECK: %[[LOGITS:.*]] = bmsys.linear %[[R]], %[[EMB]]
// CHECK: %[[LOSS:.*]] = bmsys.cross_entropy %[[LOGITS]], %[[IDS]] {shift}
// The backward, op by op in reverse order:
// CHECK: %[[DLOGITS:.*]] = bmsys.cross_entropy_grad %[[LOGITS]], %[[IDS]] {shift}
// CHECK: %[[DR:.*]] = bmsys.linear_grad_input %[[DLOGITS]], %[[EMB]]
// CHECK: %[[DEMB1:.*]] = bmsys.linear_grad_weight %[[DLOGITS]], %[[R]]
// Residual: dR flows to both the silu and the block input.
// CHECK: %[[DL:.*]] = bmsys.silu_grad %[[L]], %[[DR]]
// CHECK: %[[DN:.*]] = bmsys.linear_grad_input %[[DL]], %[[W]]
// CHECK: %[[DW:.*]] = bmsys.linear_grad_weight %[[DL]], %[[N]]
// CHECK: %[[DX:.*]], %[[DG:.*]] = bmsys.rms_norm_grad %[[X]], %[[G]], %[[DN]]
// CHECK: %[[DXSUM:.*]] = bmsys.add %[[DR]], %[[DX]]
// CHECK: %[[DEMB2:.*]] = bmsys.embedding_grad %[[IDS]], %[[DXSUM]]
// Tied embedding: the two uses' gradients are summed.
// CHECK: %[[DEMB:.*]] = bmsys.add %[[DEMB1]], %[[DEMB2]]
// CHECK: bmsys.grad @emb, %[[DEMB]]
// CHECK: bmsys.grad @g, %[[DG]]
// CHECK: bmsys.grad @w, %[[DW]]
// CHECK: return %[[LOSS]], %[[DEMB]], %[[DG]], %[[DW]]

// With checkpointing the block is recomputed from its input before its
// backward, and the gradient rules use the recomputed values.
// CKPT-LABEL: func.func @train_step
// CKPT: %[[X:.*]] = bmsys.embedding
// CKPT: bmsys.cross_entropy_grad
// CKPT: %[[N2:.*]] = bmsys.rms_norm %[[X]], %{{.*}} {bmsys.recompute
// CKPT: %[[L2:.*]] = bmsys.linear %[[N2]], %{{.*}} {bmsys.recompute}
// CKPT: bmsys.silu_grad %[[L2]]
// CKPT: bmsys.linear_grad_weight %{{.*}}, %[[N2]]
