//===- BmsysOps.td - bmsys operations ----------------------*- tablegen -*-===//
#ifndef BMSYS_OPS_TD
#define BMSYS_OPS_TD

include "dialects/bmsys/BmsysBase.td"
include "dialects/bmsys/BmsysInterfaces.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/IR/RegionKindInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/IR/OpBase.td"

def Bmsys_FloatTensor : RankedTensorOf<[AnyFloat]>;
def Bmsys_IdTensor : RankedTensorOf<[I64]>;

//===----------------------------------------------------------------------===//
// Module-level state: parameters and KV caches
//===----------------------------------------------------------------------===//

def Bmsys_ParamOp : Bmsys_Op<"param", [Symbol]> {
  let summary = "a model parameter loaded from a safetensors file";
  let description = [{
    Declares a parameter of the model as a module-level symbol with its shape and
    element type, and the safetensors file (relative to the model directory) and
    tensor key it is read from. The importer keeps Hugging Face names as keys, so
    checkpoints map back to them.

    ```mlir
    bmsys.param @model.norm.weight : tensor<64xf32> from "model.safetensors"["model.norm.weight"]
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, TypeAttrOf<AnyRankedTensor>:$type,
                       StrAttr:$file, StrAttr:$key);
  let assemblyFormat = "$sym_name `:` $type `from` $file `[` $key `]` attr-dict";
  let hasVerifier = 1;
}

def Bmsys_KVCacheOp : Bmsys_Op<"kv_cache", [Symbol]> {
  let summary = "a key/value cache for one attention op, kept across calls";
  let description = [{
    State that persists between calls of a function: the keys and values of the
    tokens seen so far, `[max_batch, max_seq, num_kv_heads, head_dim]` each.
    Created by `bmsys-add-kv-cache`; referenced by `bmsys.attention ... cache @sym`.

    ```mlir
    bmsys.kv_cache @layers.0.kv {max_batch = 1, max_seq = 64, num_kv_heads = 2, head_dim = 16}
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, I64Attr:$max_batch, I64Attr:$max_seq,
                       I64Attr:$num_kv_heads, I64Attr:$head_dim);
  let assemblyFormat = "$sym_name attr-dict";
  let hasVerifier = 1;
}

def Bmsys_WeightOp : Bmsys_Op<"weight", [Pure, DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "the value of a parameter";
  let description = [{
    Reads the parameter named by `param`. The result type must equal the
    parameter's type.

    ```mlir
    %w = bmsys.weight @model.norm.weight : tensor<64xf32>
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$param);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$param attr-dict `:` type($result)";
}

//===----------------------------------------------------------------------===//
// Structure
//===----------------------------------------------------------------------===//

def Bmsys_BlockOp : Bmsys_Op<"block", [IsolatedFromAbove,
    SingleBlockImplicitTerminator<"YieldOp">]> {
  let summary = "a transformer layer: the unit of checkpointing, sharding and scheduling";
  let description = [{
    Groups the ops of one transformer layer. The body is isolated from above:
    its inputs are the block arguments and it reads parameters by symbol, so
    passes can recompute, shard or move a block as a whole. `name` is the layer's
    name in the source model.

    ```mlir
    %h = bmsys.block "layers.0" (%x, %pos) : (tensor<?x?x64xf32>, tensor<?x?xi64>) -> tensor<?x?x64xf32> {
    ^bb0(%a: tensor<?x?x64xf32>, %p: tensor<?x?xi64>):
      ...
      bmsys.yield %y : tensor<?x?x64xf32>
    }
    ```
  }];
  let arguments = (ins StrAttr:$name, Variadic<AnyRankedTensor>:$inputs);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    $name `(` $inputs `)` attr-dict `:` functional-type($inputs, $results) $body
  }];
  let hasVerifier = 1;
  let skipDefaultBuilders = 1;
  let builders = [OpBuilder<(ins "llvm::StringRef":$name, "mlir::ValueRange":$inputs,
                                 "mlir::TypeRange":$resultTypes)>];
}

def Bmsys_YieldOp : Bmsys_Op<"yield", [Pure, Terminator, ReturnLike,
    HasParent<"BlockOp">]> {
  let summary = "returns the results of a bmsys.block";
  let description = [{
    Terminates a `bmsys.block`; its operands become the block's results.

    ```mlir
    bmsys.yield %y : tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins Variadic<AnyRankedTensor>:$values);
  let builders = [OpBuilder<(ins), [{ /* empty yield */ }]>];
  let assemblyFormat = "($values^ `:` type($values))? attr-dict";
}

//===----------------------------------------------------------------------===//
// Transformer ops
//===----------------------------------------------------------------------===//

def Bmsys_PositionsOp : Bmsys_Op<"positions", [Pure]> {
  let summary = "absolute positions of the tokens of this call";
  let description = [{
    `result[b, s] = start_pos + s`, where `start_pos` is 0 for a full forward
    and the number of cached tokens in a decode step.

    ```mlir
    %pos = bmsys.positions %ids : (tensor<?x?xi64>) -> tensor<?x?xi64>
    ```
  }];
  let arguments = (ins Bmsys_IdTensor:$ids);
  let results = (outs Bmsys_IdTensor:$result);
  let assemblyFormat = "$ids attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Bmsys_EmbeddingOp : Bmsys_Op<"embedding", [DeclareOpInterfaceMethods<Bmsys_DifferentiableOpInterface>, Pure]> {
  let summary = "row lookup in an embedding table";
  let description = [{
    `result[b, s, :] = table[ids[b, s], :]`.

    With `vocab_shards = R` (vocab-parallel, bmsys-tensor-parallel) the table
    is rank r's rows `[r·V, (r+1)·V)` of the whole vocabulary: a token outside
    them gives a zero row, and a `bmsys.tp_all_reduce` sums the ranks' results.

    ```mlir
    %e = bmsys.embedding %ids, %wte : (tensor<?x?xi64>, tensor<256x64xf32>) -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins Bmsys_IdTensor:$ids, Bmsys_FloatTensor:$table,
                       OptionalAttr<I64Attr>:$vocab_shards);
  let results = (outs Bmsys_FloatTensor:$result);
  // The importer's lookup: the whole vocabulary.
  let builders = [OpBuilder<(ins "mlir::Type":$result, "mlir::Value":$ids, "mlir::Value":$table), [{
    build($_builder, $_state, result, ids, table, /*vocab_shards=*/mlir::IntegerAttr());
  }]>];
  let assemblyFormat = "$ids `,` $table attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Bmsys_LinearOp : Bmsys_Op<"linear", [DeclareOpInterfaceMethods<Bmsys_DifferentiableOpInterface>, Pure]> {
  let summary = "matrix product with a weight, plus an optional bias";
  let description = [{
    `result = x · Wᵀ + bias` with `W` of shape `[out, in]` (PyTorch `nn.Linear`),
    or `result = x · W + bias` with `W` of shape `[in, out]` when
    `weight_transposed` is set (GPT-2's `Conv1D`). Leading dimensions of `x`
    are kept.

    ```mlir
    %y = bmsys.linear %x, %w : (tensor<?x?x64xf32>, tensor<176x64xf32>) -> tensor<?x?x176xf32>
    %z = bmsys.linear %x, %w2, %b {weight_transposed} : (tensor<?x?x64xf32>, tensor<64x192xf32>, tensor<192xf32>) -> tensor<?x?x192xf32>
    ```
  }];
  let arguments = (ins Bmsys_FloatTensor:$x, Bmsys_FloatTensor:$weight,
                       Optional<Bmsys_FloatTensor>:$bias, UnitAttr:$weight_transposed);
  let results = (outs Bmsys_FloatTensor:$result);
  let assemblyFormat = "$x `,` $weight (`,` $bias^)? attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Bmsys_SliceOp : Bmsys_Op<"slice", [DeclareOpInterfaceMethods<Bmsys_DifferentiableOpInterface>, Pure]> {
  let summary = "a contiguous range of the last dimension";
  let description = [{
    `result = x[..., offset : offset + size]`, for example to split GPT-2's fused
    query/key/value projection.

    ```mlir
    %q = bmsys.slice %qkv {offset = 0, size = 64} : (tensor<?x?x192xf32>) -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins Bmsys_FloatTensor:$x, I64Attr:$offset, I64Attr:$size);
  let results = (outs Bmsys_FloatTensor:$result);
  let assemblyFormat = "$x attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Bmsys_LayerNormOp : Bmsys_Op<"layer_norm", [DeclareOpInterfaceMethods<Bmsys_DifferentiableOpInterface>, Pure, SameOperandsAndResultElementType]> {
  let summary = "layer normalization over the last dimension";
  let description = [{
    `result = (x - mean) / sqrt(var + eps) * gamma + beta`, with the biased
    variance over the last dimension.

    ```mlir
    %y = bmsys.layer_norm %x, %g, %b {eps = 1.0e-05 : f64} : (tensor<?x?x64xf32>, tensor<64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins Bmsys_FloatTensor:$x, Bmsys_FloatTensor:$gamma,
                       Bmsys_FloatTensor:$beta, F64Attr:$eps);
  let results = (outs Bmsys_FloatTensor:$result);
  let assemblyFormat = "$x `,` $gamma `,` $beta attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Bmsys_RMSNormOp : Bmsys_Op<"rms_norm", [DeclareOpInterfaceMethods<Bmsys_DifferentiableOpInterface>, Pure, SameOperandsAndResultElementType]> {
  let summary = "root-mean-square normalization over the last dimension";
  let description = [{
    `result = x / sqrt(mean(x^2) + eps) * gamma`, as Llama's `LlamaRMSNorm`.

    ```mlir
    %y = bmsys.rms_norm %x, %g {eps = 1.0e-05 : f64} : (tensor<?x?x64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins Bmsys_FloatTensor:$x, Bmsys_FloatTensor:$gamma, F64Attr:$eps);
  let results = (outs Bmsys_FloatTensor:$result);
  let assemblyFormat = "$x `,` $gamma attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Bmsys_RopeOp : Bmsys_Op<"rope", [DeclareOpInterfaceMethods<Bmsys_DifferentiableOpInterface>, Pure]> {
  let summary = "rotary position embedding";
  let description = [{
    Rotates each `head_dim`-wide head of `x` (`[batch, seq, heads * head_dim]`) by
    angles `pos * theta^(-2i/head_dim)`, in the `rotate_half` layout of Hugging
    Face Llama.

    ```mlir
    %r = bmsys.rope %q, %pos {head_dim = 16, theta = 1.0e+04 : f64} : (tensor<?x?x64xf32>, tensor<?x?xi64>) -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins Bmsys_FloatTensor:$x, Bmsys_IdTensor:$positions,
                       I64Attr:$head_dim, F64Attr:$theta);
  let results = (outs Bmsys_FloatTensor:$result);
  let assemblyFormat = "$x `,` $positions attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Bmsys_AttentionOp : Bmsys_Op<"attention", [DeclareOpInterfaceMethods<Bmsys_DifferentiableOpInterface>,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>,
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>]> {
  let summary = "scaled dot-product attention, grouped-query, optionally with a KV cache";
  let description = [{
    `softmax(q kᵀ · scale) v` per head. `q` is `[batch, seq, num_heads * head_dim]`,
    `k` and `v` are `[batch, seq, num_kv_heads * head_dim]`; query head `h` uses
    key/value head `h / (num_heads / num_kv_heads)`. With `causal`, the token at
    position `i` attends to positions `<= i`.

    With `cache @sym`, this call's keys and values are first stored in the
    `bmsys.kv_cache` at positions `start_pos ...`, and the queries attend over
    every cached position: this is how decoding reuses earlier tokens. The op
    then writes the cache, so it is not pure.

    ```mlir
    %o = bmsys.attention %q, %k, %v {num_heads = 4, num_kv_heads = 2, head_dim = 16, scale = 0.25 : f64, causal}
         : (tensor<?x?x64xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>) -> tensor<?x?x64xf32>
    %c = bmsys.attention %q, %k, %v cache @layers.0.kv {num_heads = 4, num_kv_heads = 2, head_dim = 16, scale = 0.25 : f64, causal}
         : (tensor<?x?x64xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>) -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins Bmsys_FloatTensor:$q, Bmsys_FloatTensor:$k, Bmsys_FloatTensor:$v,
                       I64Attr:$num_heads, I64Attr:$num_kv_heads, I64Attr:$head_dim,
                       F64Attr:$scale, UnitAttr:$causal,
                       OptionalAttr<FlatSymbolRefAttr>:$cache);
  let results = (outs Bmsys_FloatTensor:$result);
  let assemblyFormat = [{
    $q `,` $k `,` $v (`cache` $cache^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

class Bmsys_UnaryOp<string mnemonic, string summaryText, string descr>
    : Bmsys_Op<mnemonic, [Pure, SameOperandsAndResultType, DeclareOpInterfaceMethods<Bmsys_DifferentiableOpInterface>]> {
  let summary = summaryText;
  let description = descr;
  let arguments = (ins Bmsys_FloatTensor:$x);
  let results = (outs Bmsys_FloatTensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($result)";
}

def Bmsys_GeluOp : Bmsys_Op<"gelu", [DeclareOpInterfaceMethods<Bmsys_DifferentiableOpInterface>, Pure, SameOperandsAndResultType]> {
  let summary = "Gaussian error linear unit";
  let description = [{
    `approximate = "tanh"` computes `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`
    (GPT-2's `gelu_new`); `approximate = "none"` computes `0.5 x (1 + erf(x / sqrt 2))`.

    ```mlir
    %y = bmsys.gelu %x {approximate = "tanh"} : tensor<?x?x256xf32>
    ```
  }];
  let arguments = (ins Bmsys_FloatTensor:$x, StrAttr:$approximate);
  let results = (outs Bmsys_FloatTensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Bmsys_SiluOp : Bmsys_UnaryOp<"silu", "sigmoid linear unit", [{
    `result = x * sigmoid(x)`, Llama's activation.

    ```mlir
    %y = bmsys.silu %x : tensor<?x?x176xf32>
    ```
  }]>;

class Bmsys_BinaryOp<string mnemonic, string summaryText, string descr>
    : Bmsys_Op<mnemonic, [Pure, SameOperandsAndResultType, DeclareOpInterfaceMethods<Bmsys_DifferentiableOpInterface>]> {
  let summary = summaryText;
  let description = descr;
  let arguments = (ins Bmsys_FloatTensor:$lhs, Bmsys_FloatTensor:$rhs);
  let results = (outs Bmsys_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
}

def Bmsys_AddOp : Bmsys_BinaryOp<"add", "elementwise sum", [{
    `result = lhs + rhs`; both operands have the result's type (residual connections).

    ```mlir
    %y = bmsys.add %a, %b : tensor<?x?x64xf32>
    ```
  }]>;

def Bmsys_MulOp : Bmsys_BinaryOp<"mul", "elementwise product", [{
    `result = lhs * rhs`; both operands have the result's type (gated FFNs).

    ```mlir
    %y = bmsys.mul %a, %b : tensor<?x?x176xf32>
    ```
  }]>;

def Bmsys_CastOp : Bmsys_Op<"cast", [Pure, DeclareOpInterfaceMethods<Bmsys_DifferentiableOpInterface>]> {
  let summary = "element type conversion (float32, bfloat16, float16)";
  let description = [{
    Converts each element to the result's element type (round to nearest
    even). `bmsys-mixed-precision` casts float32 parameters to the compute
    type where they are used and results back to float32; the gradient of a
    cast is the cast back.

    ```mlir
    %wb = bmsys.cast %w : tensor<64x64xf32> -> tensor<64x64xbf16>
    ```
  }];
  let arguments = (ins Bmsys_FloatTensor:$x);
  let results = (outs Bmsys_FloatTensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($x) `->` type($result)";
  let hasVerifier = 1;
}

def Bmsys_CrossEntropyOp : Bmsys_Op<"cross_entropy", [Pure]> {
  let summary = "mean softmax cross-entropy of logits against token labels";
  let description = [{
    The mean over tokens of `logsumexp(logits) - logits[label]`. With `shift`,
    `logits[:, :-1]` are scored against `labels[:, 1:]`: the causal language
    modelling loss that transformers computes with `labels = input_ids`.

    With `vocab_shards = R` (vocab-parallel cross-entropy) the logits are rank
    r's columns `[r·V, (r+1)·V)`; the maximum, the sum of exponentials and the
    label's logit are all-reduced over the tensor-parallel group, so every rank
    gets the loss over the whole vocabulary.

    ```mlir
    %loss = bmsys.cross_entropy %logits, %ids {shift} : (tensor<?x?x256xf32>, tensor<?x?xi64>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Bmsys_FloatTensor:$logits, Bmsys_IdTensor:$labels, UnitAttr:$shift,
                       OptionalAttr<I64Attr>:$vocab_shards);
  let results = (outs RankedTensorOf<[F32]>:$result);
  let assemblyFormat = "$logits `,` $labels attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

include "dialects/bmsys/BmsysGradOps.td"
include "dialects/bmsys/BmsysTrainOps.td"
include "dialects/bmsys/BmsysCollectiveOps.td"
include "dialects/bmsys/BmsysQuantOps.td"
include "dialects/bmsys/BmsysDistillOps.td"
include "dialects/bmsys/BmsysMoeOps.td"
include "dialects/bmsys/BmsysParallelOps.td"
include "dialects/bmsys/BmsysOffloadOps.td"
include "dialects/bmsys/BmsysPipelineOps.td"
include "dialects/bmsys/BmsysFusedOps.td"

#endif // BMSYS_OPS_TD
