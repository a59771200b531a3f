//===- BmsysCollectiveOps.td - data-parallel collectives ---*- tablegen -*-===//
//
// Communication among the ranks of the data-parallel group, written by
// bmsys-zero. Shards are flat: a tensor of N elements split over R ranks is
// padded with zeros to R * ceil(N / R) elements and rank r holds elements
// [r * S, (r + 1) * S) with S = ceil(N / R).
//
//===----------------------------------------------------------------------===//
#ifndef BMSYS_COLLECTIVE_OPS_TD
#define BMSYS_COLLECTIVE_OPS_TD

include "dialects/bmsys/BmsysBase.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Bmsys_AllReduceOp : Bmsys_Op<"all_reduce", [MemoryEffects<[MemRead, MemWrite]>,
    SameOperandsAndResultType]> {
  let summary = "sum or mean of a tensor over the data-parallel ranks";
  let description = [{
    Every rank gets the elementwise `sum` (or `mean`) of the operand over all
    `ranks` ranks. Plain data parallelism (ZeRO stage 0) averages gradients
    with it. Collectives communicate, so they are not pure: they are never
    removed, merged or reordered.

    ```mlir
    %g = bmsys.all_reduce %grad {ranks = 2, reduction = "mean"} : tensor<64x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$x, I64Attr:$ranks, StrAttr:$reduction);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Bmsys_ReduceScatterOp : Bmsys_Op<"reduce_scatter", [MemoryEffects<[MemRead, MemWrite]>]> {
  let summary = "reduce a tensor over the ranks and keep this rank's flat shard";
  let description = [{
    The elementwise `sum` or `mean` over the ranks, of which each rank keeps
    its shard (see the file comment for the layout): ZeRO's gradient
    reduction.

    ```mlir
    %gs = bmsys.reduce_scatter %grad {ranks = 2, reduction = "mean"} : tensor<64x64xf32> -> tensor<2048xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$x, I64Attr:$ranks, StrAttr:$reduction);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($x) `->` type($result)";
  let hasVerifier = 1;
}

def Bmsys_AllGatherOp : Bmsys_Op<"all_gather", [MemoryEffects<[MemRead, MemWrite]>]> {
  let summary = "reassemble a tensor from the flat shards of all ranks";
  let description = [{
    The inverse of the shard layout: concatenates the ranks' shards, drops the
    padding and reshapes to the result type. ZeRO-3 gathers each parameter
    before its use in the forward pass and again before the backward pass.

    ```mlir
    %w = bmsys.all_gather %ws {ranks = 2} : tensor<2048xf32> -> tensor<64x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$shard, I64Attr:$ranks);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$shard attr-dict `:` type($shard) `->` type($result)";
  let hasVerifier = 1;
}

def Bmsys_WeightShardOp : Bmsys_Op<"weight_shard", [Pure,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "this rank's shard of a parameter stored sharded (ZeRO-3)";
  let description = [{
    Reads the local flat shard of a parameter declared with `zero_shards`.

    ```mlir
    %ws = bmsys.weight_shard @w : tensor<2048xf32>
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$param);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$param attr-dict `:` type($result)";
}

def Bmsys_SyncParamOp : Bmsys_Op<"sync_param", [MemoryEffects<[MemRead, MemWrite]>,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "all-gather the updated shards of a replicated parameter, in place";
  let description = [{
    After a sharded update (ZeRO-1/2) each rank has updated only its shard of
    the parameter; this all-gather makes every rank's copy whole again.

    ```mlir
    bmsys.sync_param @w {ranks = 2}
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$param, I64Attr:$ranks);
  let assemblyFormat = "$param attr-dict";
}

#endif // BMSYS_COLLECTIVE_OPS_TD
