// RUN: bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-autodiff --bmsys-optimizer="lr=1e-3 beta2=0.95 weight-decay=0.1 max-grad-norm=1.0" | FileCheck %s
// RUN: bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-autodiff --bmsys-optimizer="optimizer=sgd lr=0.1 momentum=0.9 schedule=cosine warmup-steps=10 total-steps=100" | FileCheck %s --check-prefix=SGD
// RUN: not bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-autodiff --bmsys-optimizer="optimizer=lamb" 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-autodiff --bmsys-optimizer="schedule=cosine total-steps=0" 2>&1 | FileCheck %s --check-prefix=BADSCHED
// RUN: not bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-autodiff --bmsys-inline-blocks --bmsys-bound-shapes=max-seq=8 --bmsys-lower-to-rt 2>&1 | FileCheck %s --check-prefix=NOOPT

// Optimizer state sits next to its parameter, under PyTorch's names.
// CHECK: bmsys.param @emb
// CHECK-NEXT: bmsys.optimizer_state @emb.exp_avg : tensor<16x8xf32>
// CHECK-NEXT: bmsys.optimizer_state @emb.exp_avg_sq : tensor<16x8xf32>
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: -> (tensor<f32> {bmsys.name = "loss"}, tensor<f32> {bmsys.name = "grad_norm"})
// CHECK: %[[NORM:.*]] = bmsys.global_norm %[[GE:.*]], %[[GG:.*]], %[[GW:.*]] : tensor<16x8xf32>, tensor<8xf32>, tensor<8x8xf32> -> tensor<f32>
// CHECK: bmsys.adamw @emb, %[[GE]], %[[NORM]] state [@emb.exp_avg, @emb.exp_avg_sq] {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64, lr = 1.000000e-03 : f64, max_norm = 1.000000e+00 : f64, min_lr = 0.000000e+00 : f64, schedule = "constant", total_steps = 0 : i64, warmup_steps = 0 : i64, weight_decay = 1.000000e-01 : f64}
// CHECK: bmsys.adamw @g, %[[GG]], %[[NORM]]
// CHECK: bmsys.adamw @w, %[[GW]], %[[NORM]]
// CHECK-NOT: bmsys.grad
// CHECK: return %{{.*}}, %[[NORM]]

// SGD: bmsys.sgd @w, %{{.*}}, %{{.*}} state [@w.momentum_buffer] {lr = 1.000000e-01 : f64, max_norm = 0.000000e+00 : f64, min_lr = 0.000000e+00 : f64, momentum = 9.000000e-01 : f64, schedule = "cosine", total_steps = 100 : i64, warmup_steps = 10 : i64, weight_decay = 0.000000e+00 : f64}
// BAD: optimizer must be adamw or sgd, got 'lamb'
// BADSCHED: a cosine schedule needs total_steps (0) > warmup_steps (0)
// NOOPT: error: 'bmsys.grad' op the gradient of 'emb' is never used: add bmsys-optimizer
