module attributes {bmsys.max_batch = 2 : i64, bmsys.max_seq = 16 : i64} {
  // expected-error @+1 {{argument 0 has a dynamic dimension 2; only dimensions 0 (batch) and 1 (sequence) may be dynamic}}
  func.func @f(%x: tensor<?x?x?xf32>) -> tensor<?x?x?xf32> {
    return %x : tensor<?x?x?xf32>
  }
}
