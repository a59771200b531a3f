func.func @f(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  // expected-error @+1 {{yielded types differ from the block's result types}}
  %y = bmsys.block "b" (%x) : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  ^bb0(%a: tensor<?x?x8xf32>):
    %s = bmsys.slice %a {offset = 0, size = 4} : (tensor<?x?x8xf32>) -> tensor<?x?x4xf32>
    bmsys.yield %s : tensor<?x?x4xf32>
  }
  return %y : tensor<?x?x8xf32>
}
