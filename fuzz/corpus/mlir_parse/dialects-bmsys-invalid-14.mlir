func.func @f(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  // expected-error @+1 {{range [4, 12) is outside the last dimension of size 8}}
  %y = bmsys.slice %x {offset = 4, size = 8} : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}
