func.func @f(%x: tensor<?x?x8xf32>, %w: tensor<8x16xf32>, %b: tensor<8xf32>) -> tensor<?x?x16xf32> {
  // expected-error @+1 {{bias must be a vector of 16 elements}}
  %y = bmsys.linear %x, %w, %b {weight_transposed} : (tensor<?x?x8xf32>, tensor<8x16xf32>, tensor<8xf32>) -> tensor<?x?x16xf32>
  return %y : tensor<?x?x16xf32>
}
