// RUN: bmsys-opt %s -split-input-file --bmsys-pipeline-parallel="stages=2" --verify-diagnostics
// RUN: not bmsys-opt %S/Inputs/pp_two_layers.mlir --bmsys-pipeline-parallel="stages=2 micro-batches=0" 2>&1 | FileCheck %s --check-prefix=MB
// RUN: not bmsys-opt %S/Inputs/pp_two_layers.mlir --bmsys-autodiff --bmsys-pipeline-parallel="stages=2" 2>&1 | FileCheck %s --check-prefix=ORDER
// RUN: not bmsys-opt %S/Inputs/pp_two_layers.mlir --bmsys-autodiff --bmsys-optimizer --bmsys-pipeline-schedule 2>&1 | FileCheck %s --check-prefix=UNCUT
// RUN: not bmsys-opt %S/Inputs/pp_two_layers.mlir --bmsys-pipeline-parallel="stages=2" --bmsys-autodiff --bmsys-optimizer --bmsys-pipeline-schedule --bmsys-zero="stage=3 ranks=2" 2>&1 | FileCheck %s --check-prefix=ZERO3

// MB: error: bmsys-pipeline-parallel: stages and micro-batches must be positive, got stages=2 micro-batches=0
// ORDER: error: bmsys-pipeline-parallel: run it before bmsys-autodiff
// UNCUT: error: bmsys-pipeline-schedule: the module is not pipelined (run bmsys-pipeline-parallel before bmsys-autodiff)
// ZERO3: error: bmsys-zero: stage 3 with pipeline parallelism is not supported (use stage 1 or 2)

// Three layers do not split into two equal stages.
module {
  bmsys.param @w : tensor<8xf32> from "m.safetensors"["w"]
  // expected-error @+1 {{bmsys-pipeline-parallel: stages=2 does not divide the 3 layers (bmsys.block) of 'forward' evenly}}
  func.func @forward(%x: tensor<?x?x8xf32>) -> (tensor<?x?x8xf32> {bmsys.name = "logits"}) {
    %a = bmsys.block "layers.0"(%x) : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
    ^bb0(%i: tensor<?x?x8xf32>):
      bmsys.yield %i : tensor<?x?x8xf32>
    }
    %b = bmsys.block "layers.1"(%a) : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
    ^bb0(%i: tensor<?x?x8xf32>):
      bmsys.yield %i : tensor<?x?x8xf32>
    }
    %c = bmsys.block "layers.2"(%b) : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
    ^bb0(%i: tensor<?x?x8xf32>):
      bmsys.yield %i : tensor<?x?x8xf32>
    }
    return %c : tensor<?x?x8xf32>
  }
}

// -----

// Tied input and output embeddings would live on the first and the last stage.
module {
  bmsys.param @wte : tensor<16x8xf32> from "m.safetensors"["wte"]
  bmsys.param @g0 : tensor<8xf32> from "m.safetensors"["g0"]
  bmsys.param @g1 : tensor<8xf32> from "m.safetensors"["g1"]
  func.func @forward(%ids: tensor<?x?xi64>) -> (tensor<?x?x16xf32> {bmsys.name = "logits"}) {
    %we = bmsys.weight @wte : tensor<16x8xf32>
    %x = bmsys.embedding %ids, %we : (tensor<?x?xi64>, tensor<16x8xf32>) -> tensor<?x?x8xf32>
    %a = bmsys.block "layers.0"(%x) : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
    ^bb0(%i: tensor<?x?x8xf32>):
      %g = bmsys.weight @g0 : tensor<8xf32>
      %n = bmsys.rms_norm %i, %g {eps = 1.0e-05 : f64} : (tensor<?x?x8xf32>, tensor<8xf32>) -> tensor<?x?x8xf32>
      bmsys.yield %n : tensor<?x?x8xf32>
    }
    %b = bmsys.block "layers.1"(%a) : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
    ^bb0(%i: tensor<?x?x8xf32>):
      %g = bmsys.weight @g1 : tensor<8xf32>
      %n = bmsys.rms_norm %i, %g {eps = 1.0e-05 : f64} : (tensor<?x?x8xf32>, tensor<8xf32>) -> tensor<?x?x8xf32>
      bmsys.yield %n : tensor<?x?x8xf32>
    }
    // expected-error @+1 {{bmsys-pipeline-parallel: parameter 'wte' is read on stages 0 and 1 (tied weights across stages are not supported)}}
    %wh = bmsys.weight @wte : tensor<16x8xf32>
    %logits = bmsys.linear %b, %wh : (tensor<?x?x8xf32>, tensor<16x8xf32>) -> tensor<?x?x16xf32>
    return %logits : tensor<?x?x16xf32>
  }
}

// -----

// Boundaries join neighbouring stages only.
func.func @f(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  // expected-error @+1 {{'bmsys.pp_boundary' op must join neighbouring stages, got from 0 to 2}}
  %y = bmsys.pp_boundary %x {from = 0 : i64, to = 2 : i64, channel = 0 : i64} : tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}

// -----

// On a stage function, a send goes to a neighbour and only the root passes the loss.
func.func @g(%x: tensor<?x?x8xf32>, %l: tensor<f32>) -> tensor<f32> attributes {bmsys.pipeline_stage = 0 : i64} {
  // expected-error @+1 {{'bmsys.pp_send' op on stage 0 can only talk to stage -1 or 1, not 2}}
  bmsys.pp_send %x {peer = 2 : i64, micro_batch = 0 : i64, channel = 0 : i64} : tensor<?x?x8xf32>
  return %l : tensor<f32>
}

// -----

func.func @h(%l: tensor<f32>) -> tensor<f32> attributes {bmsys.pipeline_stage = 0 : i64} {
  // expected-error @+1 {{'bmsys.pp_broadcast' op on stage 0 must not have an operand (root 1)}}
  %b = bmsys.pp_broadcast %l {root = 1 : i64} : (tensor<f32>) -> tensor<f32>
  return %b : tensor<f32>
}
