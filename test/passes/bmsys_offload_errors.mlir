// bmsys-offload refuses what it cannot offload, naming the op or option.
// RUN: bmsys-opt %s --split-input-file --bmsys-offload -verify-diagnostics -o /dev/null
// RUN: not bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-autodiff --bmsys-optimizer --bmsys-offload=param-dtype=f8 2>&1 | FileCheck %s --check-prefix=DTYPE
// RUN: not bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-autodiff --bmsys-optimizer --bmsys-offload=param-dtype=bf16 2>&1 | FileCheck %s --check-prefix=NARROW
// RUN: not bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-autodiff --bmsys-optimizer --bmsys-offload --bmsys-zero="stage=1 ranks=2" 2>&1 | FileCheck %s --check-prefix=ORDER
// DTYPE: bmsys-offload: param-dtype must be auto, f32, bf16 or f16, got 'f8'
// bf16 device parameters need every read to be a cast (bmsys-mixed-precision).
// NARROW: error: 'bmsys.{{.*}}' op reads parameter '{{.*}}' as float32, but bmsys-offload keeps it on the device as 'bf16' (param-dtype)
// ORDER: error: 'bmsys.adamw' op is offloaded: run bmsys-zero before bmsys-offload

// SGD has no CPU step.
module {
  bmsys.param @w : tensor<4xf32> from "m.safetensors"["w"]
  bmsys.optimizer_state @w.momentum_buffer : tensor<4xf32>
  func.func @train_step(%g: tensor<4xf32>) -> tensor<f32> {
    %n = bmsys.global_norm %g : tensor<4xf32> -> tensor<f32>
    // expected-error @+1 {{'bmsys.sgd' op of 'w' has no CPU implementation: bmsys-offload offloads adamw only}}
    bmsys.sgd @w, %g, %n state [@w.momentum_buffer] {lr = 0.1 : f64, momentum = 0.9 : f64, weight_decay = 0.0 : f64, max_norm = 0.0 : f64, schedule = "constant", warmup_steps = 0 : i64, total_steps = 0 : i64, min_lr = 0.0 : f64} : tensor<4xf32>, tensor<f32>
    return %n : tensor<f32>
  }
}

// -----

// Nothing to offload before bmsys-optimizer.
// expected-error @+1 {{bmsys-offload: no 'train_step' (run bmsys-autodiff and bmsys-optimizer first)}}
module {
  bmsys.param @w : tensor<4xf32> from "m.safetensors"["w"]
}

// -----

// Offloaded twice.
module {
  bmsys.param @w : tensor<4xf32> from "m.safetensors"["w"]
  bmsys.optimizer_state @w.exp_avg : tensor<4xf32>
  bmsys.optimizer_state @w.exp_avg_sq : tensor<4xf32>
  bmsys.host_master @w.master of @w : tensor<4xf32>
  func.func @train_step(%g: tensor<4xf32>) -> tensor<f32> {
    %n = bmsys.global_norm %g : tensor<4xf32> -> tensor<f32>
    // expected-error @+1 {{is offloaded already (bmsys-offload runs once)}}
    bmsys.adamw @w.master, %g, %n state [@w.exp_avg, @w.exp_avg_sq] {lr = 1.0e-03 : f64, beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, weight_decay = 0.1 : f64, max_norm = 1.0 : f64, schedule = "constant", warmup_steps = 0 : i64, total_steps = 0 : i64, min_lr = 0.0 : f64, offload} : tensor<4xf32>, tensor<f32>
    return %n : tensor<f32>
  }
}

// -----

// The ops' verifiers: a master of the wrong type, an upload of something else.
module {
  bmsys.param @w : tensor<8x8xf32> from "m.safetensors"["w"]
  // expected-error @+1 {{has type 'tensor<64xf32>', the master of 'w' sharded over 2 ranks is 'tensor<32xf32>'}}
  bmsys.host_master @w.master of @w : tensor<64xf32> {shard_ranks = 2 : i64}
}

// -----

module {
  bmsys.param @w : tensor<8x8xf32> from "m.safetensors"["w"]
  func.func @train_step() {
    // expected-error @+1 {{'w' does not name a bmsys.host_master}}
    bmsys.upload_master @w
    return
  }
}
