// Malformed input: a parse error with the file and line, a non-zero exit.
func.func @f(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %y = bmsys.silu %x : tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32
}
