// RUN: bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-mixed-precision | FileCheck %s
// RUN: bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-mixed-precision=dtype=f16 --bmsys-autodiff --bmsys-optimizer | FileCheck %s --check-prefix=F16
// RUN: bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-mixed-precision="dtype=f32 loss-scaling=dynamic" | FileCheck %s --check-prefix=F32
// RUN: not bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-mixed-precision=dtype=f8 2>&1 | FileCheck %s --check-prefix=BAD

// bf16 compute, float32 parameters read through casts, float32 results.
// CHECK: module attributes {bmsys.compute_dtype = bf16}
// CHECK: bmsys.param @emb : tensor<16x8xf32>
// CHECK-LABEL: func.func @forward
// CHECK-SAME: -> (tensor<?x?x16xf32> {bmsys.name = "logits"})
// CHECK: %[[W:.*]] = bmsys.weight @emb : tensor<16x8xf32>
// CHECK: %[[WB:.*]] = bmsys.cast %[[W]] : tensor<16x8xf32> -> tensor<16x8xbf16>
// CHECK: bmsys.embedding %{{.*}}, %[[WB]] : (tensor<?x?xi64>, tensor<16x8xbf16>) -> tensor<?x?x8xbf16>
// CHECK: ^bb0(%{{.*}}: tensor<?x?x8xbf16>)
// CHECK: bmsys.rms_norm {{.*}} -> tensor<?x?x8xbf16>
// CHECK: %[[L:.*]] = bmsys.linear {{.*}} -> tensor<?x?x16xbf16>
// CHECK: %[[LF:.*]] = bmsys.cast %[[L]] : tensor<?x?x16xbf16> -> tensor<?x?x16xf32>
// CHECK: return %[[LF]]

// f16 turns on dynamic loss scaling in the backward seed and the updates;
// the gradient of a cast is a cast back to float32.
// F16: module attributes {bmsys.compute_dtype = f16, bmsys.loss_scaling = "dynamic"}
// F16-LABEL: func.func @train_step
// F16: bmsys.cross_entropy_grad {{.*}} {loss_scaling, shift}
// F16: bmsys.cast %{{.*}} : tensor<8x8xf16> -> tensor<8x8xf32>
// F16: bmsys.adamw @emb{{.*}}loss_scaling
// BAD: dtype must be bf16, f16 or f32, got 'f8'
// F32: module attributes {bmsys.loss_scaling = "dynamic"}
// F32-NOT: bmsys.cast
