//===- BmsysPipelineOps.td - pipeline parallelism ----------*- tablegen -*-===//
//
// Pipeline parallelism: the layers are cut into consecutive stages, each on its
// own ranks. bmsys-pipeline-parallel marks every value that crosses a stage
// boundary in `forward` with bmsys.pp_boundary (before bmsys-autodiff, whose
// gradient rule turns it around for the backward pass); bmsys-pipeline-schedule
// then splits `train_step` into one function per stage and replaces each
// boundary by a point-to-point bmsys.pp_send on one side and bmsys.pp_recv on
// the other, once per micro-batch, in the order of the 1F1B schedule.
//
//===----------------------------------------------------------------------===//
#ifndef BMSYS_PIPELINE_OPS_TD
#define BMSYS_PIPELINE_OPS_TD

include "dialects/bmsys/BmsysBase.td"
include "dialects/bmsys/BmsysInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Bmsys_PpBoundaryOp : Bmsys_Op<"pp_boundary", [Pure, SameOperandsAndResultType,
    DeclareOpInterfaceMethods<Bmsys_DifferentiableOpInterface>]> {
  let summary = "a value that leaves pipeline stage `from` for stage `to`";
  let description = [{
    The identity: its operand is computed on stage `from`, its result is used
    on stage `to` (`to = from ± 1`). `bmsys-pipeline-parallel` inserts one
    for every value a later stage reads; its gradient is a boundary from `to`
    back to `from`, so the backward pass carries the marks too.
    `bmsys-pipeline-schedule` turns each into a `bmsys.pp_send` and a
    `bmsys.pp_recv`; `channel` numbers the boundaries (it tells the messages
    of one micro-batch apart).

    ```mlir
    %h1 = bmsys.pp_boundary %h {from = 0 : i64, to = 1 : i64, channel = 0 : i64} : tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$x, I64Attr:$from, I64Attr:$to, I64Attr:$channel);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Bmsys_PpSendOp : Bmsys_Op<"pp_send", [MemoryEffects<[MemRead, MemWrite]>]> {
  let summary = "send one micro-batch's activation or gradient to a neighbouring stage";
  let description = [{
    Posts the operand to stage `peer` (the next stage for an activation, the
    previous one for a gradient) of this rank's pipeline group without waiting
    for it to be received: the runtime copies it and completes every send of a
    call before the call returns (so 1F1B cannot deadlock on two stages
    sending to each other). The receiver's `bmsys.pp_recv` has the same
    `micro_batch` and `channel`. It communicates, so it is never removed or
    reordered.

    ```mlir
    bmsys.pp_send %h {peer = 1 : i64, micro_batch = 0 : i64, channel = 0 : i64} : tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$x, I64Attr:$peer, I64Attr:$micro_batch, I64Attr:$channel);
  let assemblyFormat = "$x attr-dict `:` type($x)";
  let hasVerifier = 1;
}

def Bmsys_PpRecvOp : Bmsys_Op<"pp_recv", [MemoryEffects<[MemRead, MemWrite]>]> {
  let summary = "receive one micro-batch's activation or gradient from a neighbouring stage";
  let description = [{
    Waits (at most the communicator's timeout) for the `bmsys.pp_send` of
    stage `peer` with the same `micro_batch` and `channel`. Its dynamic
    dimensions are the micro-batch's batch and sequence sizes.

    ```mlir
    %h = bmsys.pp_recv {peer = 0 : i64, micro_batch = 0 : i64, channel = 0 : i64} : tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins I64Attr:$peer, I64Attr:$micro_batch, I64Attr:$channel);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Bmsys_PpBroadcastOp : Bmsys_Op<"pp_broadcast", [MemoryEffects<[MemRead, MemWrite]>]> {
  let summary = "a value of one pipeline stage, on every stage";
  let description = [{
    The loss is computed on the last stage; every stage returns it. Stage
    `root` passes the value, the other stages none; all get it (a broadcast
    over the pipeline group).

    ```mlir
    %l = bmsys.pp_broadcast %loss {root = 1 : i64} : (tensor<f32>) -> tensor<f32>   // on stage 1
    %l = bmsys.pp_broadcast {root = 1 : i64} : () -> tensor<f32>                    // on stage 0
    ```
  }];
  let arguments = (ins Optional<AnyRankedTensor>:$x, I64Attr:$root);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "($x^)? attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Bmsys_PpMeanOp : Bmsys_Op<"pp_mean", [Pure, SameOperandsAndResultType]> {
  let summary = "divide a sum accumulated over micro-batches by their number";
  let description = [{
    Gradient accumulation: a gradient (or the loss) is summed over the
    `micro_batches` micro-batches of a step as they complete; the mean of
    the per-micro-batch means is the full batch's (the micro-batches have the
    same number of rows and scored positions).

    ```mlir
    %g = bmsys.pp_mean %sum {micro_batches = 2 : i64} : tensor<64x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$x, I64Attr:$micro_batches);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($result)";
  let hasVerifier = 1;
}

#endif // BMSYS_PIPELINE_OPS_TD
