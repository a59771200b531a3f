//===- BmsysTrainOps.td - gradients and optimizers ---------*- tablegen -*-===//
#ifndef BMSYS_TRAIN_OPS_TD
#define BMSYS_TRAIN_OPS_TD

include "dialects/bmsys/BmsysBase.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Bmsys_OptimizerStateOp : Bmsys_Op<"optimizer_state", [Symbol]> {
  let summary = "optimizer state of one parameter, kept across steps and saved in checkpoints";
  let description = [{
    Float32 state with the shape of a parameter (AdamW's `exp_avg` and
    `exp_avg_sq`, SGD's `momentum_buffer`), zero at the first step. Declared by
    `bmsys-optimizer`; checkpoints save it under its symbol name.

    ```mlir
    bmsys.optimizer_state @model.norm.weight.exp_avg : tensor<64xf32>
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, TypeAttrOf<AnyRankedTensor>:$type);
  let assemblyFormat = "$sym_name `:` $type attr-dict";
}

def Bmsys_GradOp : Bmsys_Op<"grad", [MemoryEffects<[MemWrite]>]> {
  let summary = "the gradient of a parameter";
  let description = [{
    Marks `grad` as the gradient of the loss with respect to `param`. Written by
    `bmsys-autodiff`; consumed by `bmsys-optimizer`, which turns each marker
    into an update.

    ```mlir
    bmsys.grad @model.norm.weight, %g : tensor<64xf32>
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$param, AnyRankedTensor:$grad);
  let assemblyFormat = "$param `,` $grad attr-dict `:` type($grad)";
}

def Bmsys_GlobalNormOp : Bmsys_Op<"global_norm", [Pure]> {
  let summary = "the L2 norm of all gradients together";
  let description = [{
    `sqrt(Σ_i Σ g_i²)` over every element of every operand: the norm that
    global-norm clipping compares with `max_norm`. With `ranks`, the operands
    are shards and the sum of squares is summed over the ranks first. With
    `tp_sharded` (tensor parallelism: one 0/1 flag per operand), the squares of
    the flagged operands (the gradients of tensor-parallel shards) are first
    summed over the tensor-parallel group; the others are replicated there.
    With `pp_stages` (pipeline parallelism), the operands are this stage's
    gradients and the sum of squares is then summed over the pipeline group.

    ```mlir
    %n = bmsys.global_norm %g0, %g1 : tensor<64xf32>, tensor<256x64xf32> -> tensor<f32>
    ```
  }];
  let arguments = (ins Variadic<AnyRankedTensor>:$grads, OptionalAttr<I64Attr>:$ranks,
                       OptionalAttr<I64ArrayAttr>:$tp_sharded,
                       OptionalAttr<I64Attr>:$pp_stages);
  let results = (outs RankedTensorOf<[F32]>:$result);
  let assemblyFormat = "$grads attr-dict `:` type($grads) `->` type($result)";
}

def Bmsys_AdamWOp : Bmsys_Op<"adamw", [MemoryEffects<[MemRead, MemWrite]>,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "one AdamW step on a parameter, in place";
  let description = [{
    PyTorch's AdamW (decoupled weight decay) with global-norm clipping: the
    gradient is scaled by `min(1, max_norm / (norm + 1e-6))` when `max_norm`
    is positive; the learning rate follows `schedule` (`constant`, `cosine`,
    `linear`) with `warmup_steps` of linear warm-up over `total_steps`, down
    to `min_lr`. Updates `param`, `exp_avg` and `exp_avg_sq` in place; the step
    number comes from the runtime (docs/kernels.md). With `loss_scaling`, the
    gradient and the norm are first divided by the runtime's loss scale, and a
    non-finite norm skips the update (dynamic loss scaling for fp16).

    With `zero_ranks` (ZeRO, `bmsys-zero`), the gradient and the states are
    this rank's flat shards and the update touches only this rank's shard of
    the parameter; with `param_sharded` (ZeRO-3) the parameter's storage is
    itself that shard.

    With `offload` (`bmsys-offload`), `param` names a `bmsys.host_master`:
    the gradient and the norm are host copies (`bmsys.to_host`), the states
    live in host memory, and the step runs on the CPU on the master (which
    with `zero_ranks` is this rank's flat shard, hence `param_sharded`).

    ```mlir
    bmsys.adamw @w, %g, %norm state [@w.exp_avg, @w.exp_avg_sq] {lr = 1.0e-03 : f64, beta1 = 0.9 : f64, beta2 = 0.95 : f64,
      eps = 1.0e-08 : f64, weight_decay = 0.1 : f64, max_norm = 1.0 : f64, schedule = "constant",
      warmup_steps = 0 : i64, total_steps = 0 : i64, min_lr = 0.0 : f64} : tensor<64xf32>, tensor<f32>
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$param, AnyRankedTensor:$grad, RankedTensorOf<[F32]>:$norm,
                       SymbolRefArrayAttr:$state, F64Attr:$lr, F64Attr:$beta1, F64Attr:$beta2,
                       F64Attr:$eps, F64Attr:$weight_decay, F64Attr:$max_norm,
                       StrAttr:$schedule, I64Attr:$warmup_steps, I64Attr:$total_steps,
                       F64Attr:$min_lr, UnitAttr:$loss_scaling,
                       OptionalAttr<I64Attr>:$zero_ranks, UnitAttr:$param_sharded,
                       UnitAttr:$offload);
  let assemblyFormat = [{
    $param `,` $grad `,` $norm `state` $state attr-dict `:` type($grad) `,` type($norm)
  }];
  let hasVerifier = 1;
}

def Bmsys_SGDOp : Bmsys_Op<"sgd", [MemoryEffects<[MemRead, MemWrite]>,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "one SGD (with momentum) step on a parameter, in place";
  let description = [{
    PyTorch's SGD: `g = clip · grad + weight_decay · param`, the momentum
    buffer `buf = momentum · buf + g` (`g` at the first step), `param -= lr · buf`;
    clipping and the schedule as for `bmsys.adamw`.

    ```mlir
    bmsys.sgd @w, %g, %norm state [@w.momentum_buffer] {lr = 0.1 : f64, momentum = 0.9 : f64, weight_decay = 0.0 : f64,
      max_norm = 0.0 : f64, schedule = "constant", warmup_steps = 0 : i64, total_steps = 0 : i64, min_lr = 0.0 : f64} : tensor<64xf32>, tensor<f32>
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$param, AnyRankedTensor:$grad, RankedTensorOf<[F32]>:$norm,
                       SymbolRefArrayAttr:$state, F64Attr:$lr, F64Attr:$momentum,
                       F64Attr:$weight_decay, F64Attr:$max_norm, StrAttr:$schedule,
                       I64Attr:$warmup_steps, I64Attr:$total_steps, F64Attr:$min_lr,
                       UnitAttr:$loss_scaling, OptionalAttr<I64Attr>:$zero_ranks,
                       UnitAttr:$param_sharded);
  let assemblyFormat = [{
    $param `,` $grad `,` $norm `state` $state attr-dict `:` type($grad) `,` type($norm)
  }];
  let hasVerifier = 1;
}

#endif // BMSYS_TRAIN_OPS_TD
