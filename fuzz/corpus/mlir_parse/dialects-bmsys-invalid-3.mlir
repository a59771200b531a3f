func.func @f(%x: tensor<?x?x8xf32>, %w: tensor<16x4xf32>) -> tensor<?x?x16xf32> {
  // expected-error @+1 {{input width 8 differs from the weight's input size 4}}
  %y = bmsys.linear %x, %w : (tensor<?x?x8xf32>, tensor<16x4xf32>) -> tensor<?x?x16xf32>
  return %y : tensor<?x?x16xf32>
}
