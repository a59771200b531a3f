// The forward is kept; train_step returns the loss and, with return-grads,
// each parameter's gradient under its Hugging Face key.
// The backward, op by op in reverse order:
// Residual: dR flows to both the silu and the block input.
// Tied embedding: the two uses' gradients are summed.

// With checkpointing the block is recomputed from its input before its
// backward, and the gradient rules use the recomputed values.
// CKPT-LABEL: func.func @train_step
// CKPT: %[[X:.*]] = bmsys.embedding
// CKPT: bmsys.cross_entropy_grad
// CKPT: %[[N2:.*]] = bmsys.rms_norm %[[X]], %{{.*}} {bmsys.recompute
// CKPT: %[[L2:.*]] = bmsys.linear %[[N2]], %{{.*}} {bmsys.recompute}
// CKPT: bmsys.silu_grad %[[L2]]
// CKPT: bmsys.linear_grad_weight %{{.*}}, %[[N2]]
