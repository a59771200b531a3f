//===- BmsysParallelOps.td - tensor-parallel communication -*- tablegen -*-===//
//
// Megatron-style tensor parallelism, written by bmsys-tensor-parallel before
// bmsys-autodiff. A column-parallel linear reads its input through
// bmsys.tp_copy (identity forward, all-reduce of the gradient backward); a
// row-parallel linear's partial output goes through bmsys.tp_all_reduce (sum
// forward, identity backward). Both act on the tensor-parallel group of this
// rank, not on the data-parallel group of bmsys-zero's collectives.
//
//===----------------------------------------------------------------------===//
#ifndef BMSYS_PARALLEL_OPS_TD
#define BMSYS_PARALLEL_OPS_TD

include "dialects/bmsys/BmsysBase.td"
include "dialects/bmsys/BmsysInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Bmsys_TpCopyOp : Bmsys_Op<"tp_copy", [Pure, SameOperandsAndResultType,
    DeclareOpInterfaceMethods<Bmsys_DifferentiableOpInterface>]> {
  let summary = "enter a tensor-parallel region: identity forward, all-reduced gradient";
  let description = [{
    Megatron's `f`: the input of the column-parallel linears of a layer is
    replicated on the `ranks` tensor-parallel ranks, and each rank's gradient
    with respect to it covers only its columns, so the backward pass sums it
    over the group (`bmsys.tp_all_reduce`). In the forward pass it is the
    identity: bmsys-lower-to-rt emits no kernel for it.

    ```mlir
    %xr = bmsys.tp_copy %x {ranks = 2} : tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$x, I64Attr:$ranks);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Bmsys_TpAllReduceOp : Bmsys_Op<"tp_all_reduce", [MemoryEffects<[MemRead, MemWrite]>,
    SameOperandsAndResultType, DeclareOpInterfaceMethods<Bmsys_DifferentiableOpInterface>]> {
  let summary = "sum partial results over the tensor-parallel group";
  let description = [{
    Megatron's `g`: the output of a row-parallel linear (and of a
    vocab-parallel embedding) is a partial sum on each of the `ranks`
    tensor-parallel ranks; every rank gets the elementwise sum. Its gradient is
    the identity. It communicates, so it is never removed or reordered.

    ```mlir
    %y = bmsys.tp_all_reduce %partial {ranks = 2} : tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$x, I64Attr:$ranks);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($result)";
  let hasVerifier = 1;
}

#endif // BMSYS_PARALLEL_OPS_TD
