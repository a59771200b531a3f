//===- BmsysOffloadOps.td - optimizer offload ---------------*- tablegen -*-===//
//
// bmsys-offload: the fp32 master weights and the optimizer state live in host
// memory and the optimizer step runs on the CPU. Gradients are copied device ->
// host as soon as they are complete (bmsys.to_host), the update reads and writes
// only host memory (bmsys.adamw with `offload`, on a bmsys.host_master), and the
// updated master is copied into the device parameter (bmsys.upload_master).
//
//===----------------------------------------------------------------------===//
#ifndef BMSYS_OFFLOAD_OPS_TD
#define BMSYS_OFFLOAD_OPS_TD

include "dialects/bmsys/BmsysBase.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Bmsys_HostMasterOp : Bmsys_Op<"host_master", [Symbol,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "the float32 master copy of a parameter, in host memory";
  let description = [{
    Declares the master weights of `param` that an offloaded optimizer step
    (`bmsys.adamw` with `offload`) updates on the CPU. It is loaded from the
    parameter's safetensors tensor like the parameter, and checkpoints save it
    (not the device copy) under the parameter's key. With `shard_ranks` = R
    (ZeRO stages 1-3) it holds only this rank's flat shard of R, type
    `tensor<ceil(n/R) x f32>`; otherwise the parameter's shape in float32. The
    device parameter keeps its own type (bf16 under mixed precision).

    ```mlir
    bmsys.host_master @w.master of @w : tensor<32xf32> {shard_ranks = 2 : i64}
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, FlatSymbolRefAttr:$param,
                       TypeAttrOf<AnyRankedTensor>:$type, OptionalAttr<I64Attr>:$shard_ranks);
  let assemblyFormat = "$sym_name `of` $param `:` $type attr-dict";
  let hasVerifier = 1;
}

def Bmsys_ToHostOp : Bmsys_Op<"to_host", [MemoryEffects<[MemRead, MemWrite]>,
    SameOperandsAndResultType]> {
  let summary = "copy a tensor from device memory into a host buffer";
  let description = [{
    The result is the operand's value in host memory, in the host buffer named
    `buffer` (one per copied gradient, kept across steps). `bmsys-offload`
    places it right after the gradient (or its ZeRO reduce-scatter) is
    complete, so the copy overlaps the rest of the backward pass; the CUDA
    backend runs it on a copy stream ordered by events. Not pure: it is never
    removed, merged or moved.

    ```mlir
    %gh = bmsys.to_host %g into "w.grad" : tensor<32xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$x, StrAttr:$buffer);
  let results = (outs RankedTensorOf<[F32]>:$result);
  let assemblyFormat = "$x `into` $buffer attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Bmsys_UploadMasterOp : Bmsys_Op<"upload_master", [MemoryEffects<[MemRead, MemWrite]>,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "copy an updated host master into its device parameter";
  let description = [{
    Copies `master` (a `bmsys.host_master`) host -> device into its parameter,
    converted to the parameter's element type. With `zero_ranks` = R the
    master is this rank's flat shard: it lands in this rank's slice of the
    whole parameter (ZeRO-1/2, which `bmsys.sync_param` then all-gathers), or
    is the parameter's own storage with `param_sharded` (ZeRO-3).

    ```mlir
    bmsys.upload_master @w.master {zero_ranks = 2 : i64}
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$master, OptionalAttr<I64Attr>:$zero_ranks,
                       UnitAttr:$param_sharded);
  let assemblyFormat = "$master attr-dict";
}

#endif // BMSYS_OFFLOAD_OPS_TD
