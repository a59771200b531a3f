//===- BmsysGradOps.td - gradient ops of bmsys -------------*- tablegen -*-===//
//
// The ops that the gradient rules of BmsysOps.td emit. They are the backward
// kernels of docs/kernels.md and are not themselves differentiated.
//
//===----------------------------------------------------------------------===//
#ifndef BMSYS_GRAD_OPS_TD
#define BMSYS_GRAD_OPS_TD

include "dialects/bmsys/BmsysBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

class Bmsys_GradOp<string mnemonic, string summaryText, string descr, list<Trait> traits = []>
    : Bmsys_Op<mnemonic, !listconcat([Pure], traits)> {
  let summary = summaryText;
  let description = descr;
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
}

def Bmsys_EmbeddingGradOp : Bmsys_GradOp<"embedding_grad", "gradient of an embedding table", [{
    `result = 0; result[ids[b, s], :] += dy[b, s, :]`: the rows of the table that
    the tokens selected receive their gradient, summed over repeats.
    With `vocab_shards`, the table is this rank's rows of the vocabulary (see
    `bmsys.embedding`) and tokens outside them contribute nothing.

    ```mlir
    %dt = bmsys.embedding_grad %ids, %dy : (tensor<?x?xi64>, tensor<?x?x64xf32>) -> tensor<256x64xf32>
    ```
  }]> {
  let arguments = (ins RankedTensorOf<[I64]>:$ids, AnyRankedTensor:$dy,
                       OptionalAttr<I64Attr>:$vocab_shards);
  let results = (outs AnyRankedTensor:$result);
}

def Bmsys_LinearGradInputOp : Bmsys_GradOp<"linear_grad_input",
    "gradient of a linear op's input", [{
    `dx = dy · W` (W is `[out, in]`), or `dy · Wᵀ` with `weight_transposed`.

    ```mlir
    %dx = bmsys.linear_grad_input %dy, %w : (tensor<?x?x176xf32>, tensor<176x64xf32>) -> tensor<?x?x64xf32>
    ```
  }]> {
  let arguments = (ins AnyRankedTensor:$dy, AnyRankedTensor:$weight, UnitAttr:$weight_transposed);
  let results = (outs AnyRankedTensor:$result);
}

def Bmsys_LinearGradWeightOp : Bmsys_GradOp<"linear_grad_weight",
    "gradient of a linear op's weight", [{
    `dW = dyᵀ · x` over all leading positions (`[out, in]`), or `xᵀ · dy`
    (`[in, out]`) with `weight_transposed`.

    ```mlir
    %dw = bmsys.linear_grad_weight %dy, %x : (tensor<?x?x176xf32>, tensor<?x?x64xf32>) -> tensor<176x64xf32>
    ```
  }]> {
  let arguments = (ins AnyRankedTensor:$dy, AnyRankedTensor:$x, UnitAttr:$weight_transposed);
  let results = (outs AnyRankedTensor:$result);
}

def Bmsys_SumRowsOp : Bmsys_GradOp<"sum_rows", "sum over every leading dimension", [{
    `result[n] = Σ dy[..., n]`: the gradient of a bias.

    ```mlir
    %db = bmsys.sum_rows %dy : (tensor<?x?x192xf32>) -> tensor<192xf32>
    ```
  }]> {
  let arguments = (ins AnyRankedTensor:$dy);
  let results = (outs AnyRankedTensor:$result);
}

def Bmsys_SliceGradOp : Bmsys_GradOp<"slice_grad", "gradient of a slice", [{
    Places `dy` at `offset` of a zero tensor whose last dimension is `width`.

    ```mlir
    %dqkv = bmsys.slice_grad %dq {offset = 0, width = 192} : (tensor<?x?x64xf32>) -> tensor<?x?x192xf32>
    ```
  }]> {
  let arguments = (ins AnyRankedTensor:$dy, I64Attr:$offset, I64Attr:$width);
  let results = (outs AnyRankedTensor:$result);
}

def Bmsys_LayerNormGradOp : Bmsys_GradOp<"layer_norm_grad", "gradients of layer_norm", [{
    Gradients of `layer_norm` with respect to x, gamma and beta.

    ```mlir
    %dx, %dg, %db = bmsys.layer_norm_grad %x, %g, %dy {eps = 1.0e-05 : f64}
        : (tensor<?x?x64xf32>, tensor<64xf32>, tensor<?x?x64xf32>) -> (tensor<?x?x64xf32>, tensor<64xf32>, tensor<64xf32>)
    ```
  }]> {
  let arguments = (ins AnyRankedTensor:$x, AnyRankedTensor:$gamma, AnyRankedTensor:$dy,
                       F64Attr:$eps);
  let results = (outs AnyRankedTensor:$dx, AnyRankedTensor:$dgamma, AnyRankedTensor:$dbeta);
}

def Bmsys_RMSNormGradOp : Bmsys_GradOp<"rms_norm_grad", "gradients of rms_norm", [{
    Gradients of `rms_norm` with respect to x and gamma.

    ```mlir
    %dx, %dg = bmsys.rms_norm_grad %x, %g, %dy {eps = 1.0e-05 : f64}
        : (tensor<?x?x64xf32>, tensor<64xf32>, tensor<?x?x64xf32>) -> (tensor<?x?x64xf32>, tensor<64xf32>)
    ```
  }]> {
  let arguments = (ins AnyRankedTensor:$x, AnyRankedTensor:$gamma, AnyRankedTensor:$dy,
                       F64Attr:$eps);
  let results = (outs AnyRankedTensor:$dx, AnyRankedTensor:$dgamma);
}

def Bmsys_RopeGradOp : Bmsys_GradOp<"rope_grad", "gradient of rope", [{
    The rotation is orthogonal, so its gradient is the inverse rotation of `dy`.

    ```mlir
    %dx = bmsys.rope_grad %dy, %pos {head_dim = 16, theta = 1.0e+04 : f64} : (tensor<?x?x64xf32>, tensor<?x?xi64>) -> tensor<?x?x64xf32>
    ```
  }]> {
  let arguments = (ins AnyRankedTensor:$dy, RankedTensorOf<[I64]>:$positions, I64Attr:$head_dim,
                       F64Attr:$theta);
  let results = (outs AnyRankedTensor:$result);
}

def Bmsys_AttentionGradOp : Bmsys_GradOp<"attention_grad", "gradients of attention", [{
    Gradients of `attention` (without a cache) with respect to q, k and v; the
    softmax is recomputed. For grouped-query attention dk and dv sum the
    contributions of every query head of a group.

    ```mlir
    %dq, %dk, %dv = bmsys.attention_grad %q, %k, %v, %dy {num_heads = 4, num_kv_heads = 2, head_dim = 16, scale = 0.25 : f64, causal}
        : (tensor<?x?x64xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x64xf32>) -> (tensor<?x?x64xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>)
    ```
  }]> {
  let arguments = (ins AnyRankedTensor:$q, AnyRankedTensor:$k, AnyRankedTensor:$v,
                       AnyRankedTensor:$dy, I64Attr:$num_heads, I64Attr:$num_kv_heads,
                       I64Attr:$head_dim, F64Attr:$scale, UnitAttr:$causal);
  let results = (outs AnyRankedTensor:$dq, AnyRankedTensor:$dk, AnyRankedTensor:$dv);
}

def Bmsys_GeluGradOp : Bmsys_GradOp<"gelu_grad", "gradient of gelu", [{
    `dx = dy · gelu'(x)` for the same `approximate` as the forward op.

    ```mlir
    %dx = bmsys.gelu_grad %x, %dy {approximate = "tanh"} : (tensor<?x?x256xf32>, tensor<?x?x256xf32>) -> tensor<?x?x256xf32>
    ```
  }]> {
  let arguments = (ins AnyRankedTensor:$x, AnyRankedTensor:$dy, StrAttr:$approximate);
  let results = (outs AnyRankedTensor:$result);
}

def Bmsys_SiluGradOp : Bmsys_GradOp<"silu_grad", "gradient of silu", [{
    `dx = dy · σ(x) (1 + x (1 − σ(x)))`.

    ```mlir
    %dx = bmsys.silu_grad %x, %dy : (tensor<?x?x176xf32>, tensor<?x?x176xf32>) -> tensor<?x?x176xf32>
    ```
  }]> {
  let arguments = (ins AnyRankedTensor:$x, AnyRankedTensor:$dy);
  let results = (outs AnyRankedTensor:$result);
}

def Bmsys_CrossEntropyGradOp : Bmsys_GradOp<"cross_entropy_grad",
    "gradient of the mean cross-entropy with respect to the logits", [{
    `(softmax(logits) − onehot(label)) / count` at the scored positions, zero
    elsewhere: the seed of the backward pass (d loss / d loss = 1). With
    `loss_scaling`, multiplied by the runtime's loss scale (fp16 training).
    With `vocab_shards`, the logits are this rank's vocabulary columns (see
    `bmsys.cross_entropy`); the softmax is normalized over the whole vocabulary.

    ```mlir
    %dl = bmsys.cross_entropy_grad %logits, %ids {shift} : (tensor<?x?x256xf32>, tensor<?x?xi64>) -> tensor<?x?x256xf32>
    ```
  }]> {
  let arguments = (ins AnyRankedTensor:$logits, RankedTensorOf<[I64]>:$labels, UnitAttr:$shift,
                       UnitAttr:$loss_scaling, OptionalAttr<I64Attr>:$vocab_shards);
  let results = (outs AnyRankedTensor:$result);
}

#endif // BMSYS_GRAD_OPS_TD
