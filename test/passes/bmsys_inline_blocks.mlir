// RUN: bmsys-opt %s --bmsys-inline-blocks | FileCheck %s

bmsys.param @g : tensor<8xf32> from "m.safetensors"["g"]

// CHECK-LABEL: func.func @f
// CHECK-SAME: (%[[X:.*]]: tensor<?x?x8xf32>)
// CHECK-NOT: bmsys.block
// CHECK: %[[G:.*]] = bmsys.weight @g
// CHECK: %[[N:.*]] = bmsys.rms_norm %[[X]], %[[G]]
// CHECK: %[[S:.*]] = bmsys.add %[[N]], %[[X]]
// CHECK: %[[N2:.*]] = bmsys.rms_norm %[[S]]
// CHECK: return %[[N2]]
func.func @f(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %y = bmsys.block "layers.0" (%x) : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  ^bb0(%a: tensor<?x?x8xf32>):
    %g = bmsys.weight @g : tensor<8xf32>
    %n = bmsys.rms_norm %a, %g {eps = 1.0e-5 : f64} : (tensor<?x?x8xf32>, tensor<8xf32>) -> tensor<?x?x8xf32>
    %s = bmsys.add %n, %a : tensor<?x?x8xf32>
    bmsys.yield %s : tensor<?x?x8xf32>
  }
  %z = bmsys.block "layers.1" (%y) : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  ^bb0(%a: tensor<?x?x8xf32>):
    %g = bmsys.weight @g : tensor<8xf32>
    %n = bmsys.rms_norm %a, %g {eps = 1.0e-5 : f64} : (tensor<?x?x8xf32>, tensor<8xf32>) -> tensor<?x?x8xf32>
    bmsys.yield %n : tensor<?x?x8xf32>
  }
  return %z : tensor<?x?x8xf32>
}
