bmsys.param @g : tensor<8xf32> from "m.safetensors"["g"]

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
