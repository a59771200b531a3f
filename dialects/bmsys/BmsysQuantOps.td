//===- BmsysQuantOps.td - quantized ops --------------------*- tablegen -*-===//
#ifndef BMSYS_QUANT_OPS_TD
#define BMSYS_QUANT_OPS_TD

include "dialects/bmsys/BmsysBase.td"
include "dialects/bmsys/BmsysInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Bmsys_FakeQuantOp : Bmsys_Op<"fake_quant", [Pure, SameOperandsAndResultType,
    DeclareOpInterfaceMethods<Bmsys_DifferentiableOpInterface>]> {
  let summary = "quantize and dequantize a weight (quantization-aware training)";
  let description = [{
    Rounds each output row of a weight to the symmetric INT8 grid of
    `bmsys-quantize{mode=int8}` and back: `s = max|w_row| / 127`,
    `result = clamp(round(w / s), -127, 127) · s`. Rows run along `axis`
    (0 for `[out, in]` weights, 1 for GPT-2's `[in, out]`). The gradient is
    the straight-through estimator: it passes unchanged.

    ```mlir
    %wq = bmsys.fake_quant %w {axis = 0 : i64} : tensor<176x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$x, I64Attr:$axis);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($result)";
}

def Bmsys_LinearInt8Op : Bmsys_Op<"linear_int8", [Pure]> {
  let summary = "linear op with row-wise symmetric INT8 weights";
  let description = [{
    `weight` holds INT8 values `q` of shape `[out, in]` and `scale` one
    float32 per output row, so the weight is `q[n, :] * scale[n]` (BMInf's
    row-wise quantization). With `activations = "float"` (weight-only, the
    decode path) `result = x · (q · scale)ᵀ + bias`. With `activations = "int8"`
    each row of `x` (a token) is quantized symmetrically on the fly,
    `s_x = max|x| / 127`, `x_q = round(x / s_x)`, and the product is computed
    in int32: `result = (x_q · qᵀ) · s_x · scale + bias` (the prefill path,
    INT8 GEMMs).

    ```mlir
    %y = bmsys.linear_int8 %x, %q, %s {activations = "float"} : (tensor<?x?x64xf32>, tensor<176x64xi8>, tensor<176xf32>) -> tensor<?x?x176xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$x, RankedTensorOf<[I8]>:$weight,
                       RankedTensorOf<[F32]>:$scale, Optional<AnyRankedTensor>:$bias,
                       StrAttr:$activations);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$x `,` $weight `,` $scale (`,` $bias^)? attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

#endif // BMSYS_QUANT_OPS_TD
