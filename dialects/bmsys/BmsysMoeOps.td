//===- BmsysMoeOps.td - mixture-of-experts FFN -------------*- tablegen -*-===//
#ifndef BMSYS_MOE_OPS_TD
#define BMSYS_MOE_OPS_TD

include "dialects/bmsys/BmsysBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Bmsys_MoeFFNOp : Bmsys_Op<"moe_ffn", [Pure]> {
  let summary = "a feed-forward layer split into experts, of which each token runs top_k";
  let description = [{
    MoEfication (Zhang et al., 2022), made by `bmsys-moefy`. The FFN's `n`
    neurons are grouped into `experts` experts of `n / experts` consecutive
    neurons each. `weights` are `w_in`, then `w_up` with `gated` (Llama's
    `act(x·gateᵀ) · (x·upᵀ)`), then `w_out`, all `[n, hidden]` (`w_out` is
    the down projection transposed, so an expert's rows are contiguous), then
    with `bias` `b_in` `[n]` and `b_out` `[hidden]`; `router` is
    `[experts, hidden]`. For each token, the expert scores are
    `x · routerᵀ`; the `top_k` highest (ties: the lower index) run:

    `y = Σ_{e ∈ top_k} act(x·w_in[e]ᵀ + b_in[e]) (· x·w_up[e]ᵀ) · w_out[e] + b_out`

    With `top_k = experts` this is the dense FFN. `activation` is `silu`,
    `gelu_tanh` or `gelu`. No gradient: MoEfication is applied to a trained
    model for inference.

    ```mlir
    %y = bmsys.moe_ffn %x, %router [%w_in, %w_up, %w_out] {activation = "silu", experts = 8 : i64, gated, top_k = 2 : i64}
         : (tensor<?x?x64xf32>, tensor<8x64xf32>, tensor<176x64xf32>, tensor<176x64xf32>, tensor<176x64xf32>) -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$x, AnyRankedTensor:$router,
                       Variadic<AnyRankedTensor>:$weights, I64Attr:$experts, I64Attr:$top_k,
                       StrAttr:$activation, UnitAttr:$gated, UnitAttr:$bias);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $x `,` $router ` ` `[` $weights `]` attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

#endif // BMSYS_MOE_OPS_TD
