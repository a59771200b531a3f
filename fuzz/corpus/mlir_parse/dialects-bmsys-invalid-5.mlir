func.func @f(%x: tensor<?x?x8xf32>, %g: tensor<4xf32>) -> tensor<?x?x8xf32> {
  // expected-error @+1 {{gamma must be a vector of 8 elements}}
  %y = bmsys.rms_norm %x, %g {eps = 1.0e-5 : f64} : (tensor<?x?x8xf32>, tensor<4xf32>) -> tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}
