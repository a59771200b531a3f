//===- BmsysFusedOps.td - fused elementwise ops of bmsys ---*- tablegen -*-===//
//
// The ops bmsys-fuse-elementwise rewrites chains of memory-bound ops into: each is
// one kernel launch (docs/kernels.md "Fused kernels") that reads its operands once
// and writes its results once, where the ops it replaces each made a pass over
// memory (bmsys.rope_attention folds the memory-bound ropes of the queries and keys
// into the attention that reads them). They appear after bmsys-autodiff and are
// not differentiated.
//
//===----------------------------------------------------------------------===//
#ifndef BMSYS_FUSED_OPS_TD
#define BMSYS_FUSED_OPS_TD

include "dialects/bmsys/BmsysBase.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

class Bmsys_FusedOp<string mnemonic, string summaryText, string descr, list<Trait> traits = []>
    : Bmsys_Op<mnemonic, !listconcat([Pure], traits)> {
  let summary = summaryText;
  let description = descr;
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
}

def Bmsys_SwiGluOp : Bmsys_FusedOp<"swiglu", "silu(gate) · up in one pass",
    [{
    `result = silu(gate) · up`, the gated activation of Llama's MLP: replaces
    `bmsys.silu` followed by `bmsys.mul` (5 tensor passes: read gate, write and
    read silu, read up, write the product) by 3 (read gate and up, write the
    product).

    ```mlir
    %h = bmsys.swiglu %gate, %up : (tensor<?x?x176xbf16>, tensor<?x?x176xbf16>) -> tensor<?x?x176xbf16>
    ```
  }], [AllTypesMatch<["gate", "up", "result"]>]> {
  let arguments = (ins RankedTensorOf<[AnyFloat]>:$gate, RankedTensorOf<[AnyFloat]>:$up);
  let results = (outs RankedTensorOf<[AnyFloat]>:$result);
}

def Bmsys_SwiGluGradOp : Bmsys_FusedOp<"swiglu_grad",
    "both gradients of silu(gate) · up in one pass", [{
    `dup = dy · silu(gate)`, `dgate = dy · up · silu'(gate)`: replaces the
    backward of `silu` + `mul` (`mul(dy, up)`, `silu_grad`, `mul(dy, silu(gate))`:
    9 tensor passes) by one kernel reading gate, up and dy and writing both
    gradients (5 passes); `silu(gate)` is recomputed in registers, so the forward
    activation need not be kept for the backward.

    ```mlir
    %dgate, %dup = bmsys.swiglu_grad %gate, %up, %dy
        : (tensor<?x?x176xbf16>, tensor<?x?x176xbf16>, tensor<?x?x176xbf16>) -> (tensor<?x?x176xbf16>, tensor<?x?x176xbf16>)
    ```
  }], [AllTypesMatch<["gate", "up", "dy", "dgate", "dup"]>]> {
  let arguments = (ins RankedTensorOf<[AnyFloat]>:$gate, RankedTensorOf<[AnyFloat]>:$up,
                       RankedTensorOf<[AnyFloat]>:$dy);
  let results = (outs RankedTensorOf<[AnyFloat]>:$dgate, RankedTensorOf<[AnyFloat]>:$dup);
}

def Bmsys_AddRmsNormOp : Bmsys_FusedOp<"add_rms_norm",
    "residual sum and the RMS norm of it in one pass", [{
    `sum = a + b`, `y = rms_norm(sum, gamma)` (over the last dimension, as
    `bmsys.rms_norm`): a residual connection and the norm that reads it. The
    norm is taken of the sum as stored (rounded to the element type), exactly
    as `bmsys.add` then `bmsys.rms_norm` compute it; `sum` stays available to
    the ops that used the add's result.

    ```mlir
    %sum, %y = bmsys.add_rms_norm %a, %b, %g {eps = 1.0e-05 : f64}
        : (tensor<?x?x64xbf16>, tensor<?x?x64xbf16>, tensor<64xbf16>) -> (tensor<?x?x64xbf16>, tensor<?x?x64xbf16>)
    ```
  }], [AllTypesMatch<["a", "b", "sum", "y"]>]> {
  let arguments = (ins RankedTensorOf<[AnyFloat]>:$a, RankedTensorOf<[AnyFloat]>:$b,
                       RankedTensorOf<[AnyFloat]>:$gamma, F64Attr:$eps);
  let results = (outs RankedTensorOf<[AnyFloat]>:$sum, RankedTensorOf<[AnyFloat]>:$y);
  let hasVerifier = 1;
}

def Bmsys_RmsNormGradAddOp : Bmsys_FusedOp<"rms_norm_grad_add",
    "rms_norm_grad with the residual gradient added", [{
    `dx = residual + d rms_norm(x, gamma) / dx · dy`, `dgamma` as
    `bmsys.rms_norm_grad`: the backward of a pre-norm residual block, where the
    gradient reaching the block input is the sum of the residual path's and the
    norm's. Replaces `bmsys.rms_norm_grad` and the `bmsys.add` of its `dx`
    (6 tensor passes) by 4.

    ```mlir
    %dx, %dg = bmsys.rms_norm_grad_add %x, %g, %dy, %res {eps = 1.0e-05 : f64}
        : (tensor<?x?x64xbf16>, tensor<64xbf16>, tensor<?x?x64xbf16>, tensor<?x?x64xbf16>) -> (tensor<?x?x64xbf16>, tensor<64xbf16>)
    ```
  }], [AllTypesMatch<["x", "dy", "residual", "dx"]>, AllTypesMatch<["gamma", "dgamma"]>]> {
  let arguments = (ins RankedTensorOf<[AnyFloat]>:$x, RankedTensorOf<[AnyFloat]>:$gamma,
                       RankedTensorOf<[AnyFloat]>:$dy, RankedTensorOf<[AnyFloat]>:$residual,
                       F64Attr:$eps);
  let results = (outs RankedTensorOf<[AnyFloat]>:$dx, RankedTensorOf<[AnyFloat]>:$dgamma);
  let hasVerifier = 1;
}

def Bmsys_RopeAttentionOp : Bmsys_Op<"rope_attention", [
    DeclareOpInterfaceMethods<SymbolUserOpInterface>,
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>]> {
  let summary = "attention of rotary-embedded queries and keys in one kernel";
  let description = [{
    `attention(rope(q, positions), rope(k, positions), v)`: `bmsys.rope` of the
    queries and of the keys (with `head_dim` and `theta`), then `bmsys.attention`
    with the same attributes, as one kernel. The rotated queries and keys are
    never stored: a decode step saves the two rope launches and their round trip
    through memory (docs/kernels.md "Fused kernels"). With `cache @sym` the
    rotated keys (and `v`) are written to the `bmsys.kv_cache` first, exactly as
    the unfused attention writes them, so the op is not pure.

    Operands as `bmsys.attention`'s, then `positions` `[batch, seq]` (i64);
    `head_dim` is even.

    ```mlir
    %o = bmsys.rope_attention %q, %k, %v, %pos cache @layers.0.kv
         {num_heads = 4, num_kv_heads = 2, head_dim = 16, scale = 0.25 : f64, causal, theta = 1.0e+04 : f64}
         : (tensor<?x?x64xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?xi64>) -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[AnyFloat]>:$q, RankedTensorOf<[AnyFloat]>:$k,
                       RankedTensorOf<[AnyFloat]>:$v, RankedTensorOf<[I64]>:$positions,
                       I64Attr:$num_heads, I64Attr:$num_kv_heads, I64Attr:$head_dim,
                       F64Attr:$scale, UnitAttr:$causal, F64Attr:$theta,
                       OptionalAttr<FlatSymbolRefAttr>:$cache);
  let results = (outs RankedTensorOf<[AnyFloat]>:$result);
  let assemblyFormat = [{
    $q `,` $k `,` $v `,` $positions (`cache` $cache^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

#endif // BMSYS_FUSED_OPS_TD
