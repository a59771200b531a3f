func.func @f() -> tensor<4xf32> {
  // expected-error @+1 {{'missing' does not name a bmsys.param}}
  %w = bmsys.weight @missing : tensor<4xf32>
  return %w : tensor<4xf32>
}
