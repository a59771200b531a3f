func.func @f(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  // expected-error @+1 {{custom op 'bmsys.nonsense' is unknown}}
  %y = bmsys.nonsense %x : tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}
