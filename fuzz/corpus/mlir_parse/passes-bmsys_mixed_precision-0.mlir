// bf16 compute, float32 parameters read through casts, float32 results.

// f16 turns on dynamic loss scaling in the backward seed and the updates;
// the gradient of a cast is a cast back to float32.
// F16: module attributes {bmsys.compute_dtype = f16, bmsys.loss_scaling = "dynamic"}
// F16-LABEL: func.func @train_step
// F16: bmsys.cross_entropy_grad {{.*}} {loss_scaling, shift}
// F16: bmsys.cast %{{.*}} : tensor<8x8xf16> -> tensor<8x8xf32>
// F16: bmsys.adamw @emb{{.*}}loss_scaling
// BAD: dtype must be bf16 or f16, got 'f8'
