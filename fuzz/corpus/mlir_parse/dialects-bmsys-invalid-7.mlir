func.func @f(%x: tensor<?x?x12xf32>, %p: tensor<?x?xi64>) -> tensor<?x?x12xf32> {
  // expected-error @+1 {{width 12 is not a multiple of head_dim 8}}
  %y = bmsys.rope %x, %p {head_dim = 8, theta = 1.0e4 : f64} : (tensor<?x?x12xf32>, tensor<?x?xi64>) -> tensor<?x?x12xf32>
  return %y : tensor<?x?x12xf32>
}
