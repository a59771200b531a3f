func.func @f(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  // expected-error @+1 {{approximate must be "tanh" or "none", got "fast"}}
  %y = bmsys.gelu %x {approximate = "fast"} : tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}
