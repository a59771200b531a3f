// EVERY: bmsys.block "b0"{{.*}}{bmsys.checkpoint}
// EVERY: bmsys.block "b1"{{.*}}{bmsys.checkpoint}
// EVERY: bmsys.block "b2"{{.*}}{bmsys.checkpoint}
// EVERYK: bmsys.block "b0"{{.*}}{bmsys.checkpoint}
// EVERYK-NOT: bmsys.block "b1"{{.*}}{bmsys.checkpoint}
// EVERYK: bmsys.block "b2"{{.*}}{bmsys.checkpoint}
// NONE-NOT: bmsys.checkpoint
// BAD: policy must be none, every or every-k, got 'sometimes'
func.func @forward(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %0 = bmsys.block "b0" (%x) : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  ^bb0(%a: tensor<?x?x8xf32>):
    %s = bmsys.silu %a : tensor<?x?x8xf32>
    bmsys.yield %s : tensor<?x?x8xf32>
  }
  %1 = bmsys.block "b1" (%0) : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  ^bb0(%a: tensor<?x?x8xf32>):
    %s = bmsys.silu %a : tensor<?x?x8xf32>
    bmsys.yield %s : tensor<?x?x8xf32>
  }
  %2 = bmsys.block "b2" (%1) : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  ^bb0(%a: tensor<?x?x8xf32>):
    %s = bmsys.silu %a : tensor<?x?x8xf32>
    bmsys.yield %s : tensor<?x?x8xf32>
  }
  return %2 : tensor<?x?x8xf32>
}
