func.func @f(%x: tensor<?x?x12xf32>, %p: tensor<?x?xi64>) -> tensor<?x?x12xf32> {
  // expected-error @+1 {{head_dim must be positive and even, got 3}}
  %y = bmsys.rope %x, %p {head_dim = 3, theta = 1.0e4 : f64} : (tensor<?x?x12xf32>, tensor<?x?xi64>) -> tensor<?x?x12xf32>
  return %y : tensor<?x?x12xf32>
}
