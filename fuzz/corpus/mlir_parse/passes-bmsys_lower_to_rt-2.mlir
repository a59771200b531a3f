module attributes {bmsys.max_batch = 2 : i64, bmsys.max_seq = 16 : i64} {
  func.func @f(%x: tensor<?x?x4xf32>) -> tensor<?x?x4xf32> {
    // expected-error @+1 {{must be inlined before lowering (run bmsys-inline-blocks)}}
    %y = bmsys.block "b" (%x) : (tensor<?x?x4xf32>) -> tensor<?x?x4xf32> {
    ^bb0(%a: tensor<?x?x4xf32>):
      bmsys.yield %a : tensor<?x?x4xf32>
    }
    return %y : tensor<?x?x4xf32>
  }
}
