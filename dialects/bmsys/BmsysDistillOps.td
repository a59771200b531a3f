//===- BmsysDistillOps.td - knowledge distillation losses --*- tablegen -*-===//
//
// Loss terms that compare a student's values with a frozen teacher's
// (bmsys-distill). Each has its gradient op: bmsys-autodiff seeds the
// student's values with it, scaled by the term's `scale`.
//
#ifndef BMSYS_DISTILL_OPS_TD
#define BMSYS_DISTILL_OPS_TD

include "dialects/bmsys/BmsysBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

class Bmsys_DistillLossOp<string mnemonic, string summaryText, string descr,
                          dag attrs>
    : Bmsys_Op<mnemonic, [Pure]> {
  let summary = summaryText;
  let description = descr;
  let arguments = !con((ins AnyRankedTensor:$student, AnyRankedTensor:$teacher), attrs);
  let results = (outs RankedTensorOf<[F32]>:$result);
  let assemblyFormat = "$student `,` $teacher attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

class Bmsys_DistillGradOp<string mnemonic, string summaryText, string descr, dag attrs>
    : Bmsys_Op<mnemonic, [Pure]> {
  let summary = summaryText;
  let description = descr;
  let arguments = !con((ins AnyRankedTensor:$student, AnyRankedTensor:$teacher), attrs);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$student `,` $teacher attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Bmsys_DistillSoftCEOp : Bmsys_DistillLossOp<"distill_soft_ce",
    "soft cross-entropy of student logits against teacher logits", [{
    `scale · T² · mean over tokens of −Σ_v softmax(t/T)_v · log softmax(s/T)_v`
    for student logits `s` and teacher logits `t` (`[B, S, V]` each, every
    position scored), temperature `T`. The `T²` keeps the gradient's size
    independent of `T` (Hinton et al., 2015).

    ```mlir
    %l = bmsys.distill_soft_ce %s, %t {scale = 1.0 : f64, temperature = 2.0 : f64} : (tensor<?x?x256xf32>, tensor<?x?x256xf32>) -> tensor<f32>
    ```
  }], (ins F64Attr:$temperature, F64Attr:$scale)>;

def Bmsys_DistillSoftCEGradOp : Bmsys_DistillGradOp<"distill_soft_ce_grad",
    "gradient of distill_soft_ce by the student logits", [{
    `scale · T · (softmax(s/T) − softmax(t/T)) / N` for N = B·S tokens: the
    derivative of `bmsys.distill_soft_ce` (same attributes) by `s`.

    ```mlir
    %ds = bmsys.distill_soft_ce_grad %s, %t {scale = 1.0 : f64, temperature = 2.0 : f64} : (tensor<?x?x256xf32>, tensor<?x?x256xf32>) -> tensor<?x?x256xf32>
    ```
  }], (ins F64Attr:$temperature, F64Attr:$scale)>;

def Bmsys_DistillHiddenMSEOp : Bmsys_DistillLossOp<"distill_hidden_mse",
    "mean squared error between normalized hidden states", [{
    `scale · mean over tokens and features of (n(s) − n(t))²`, where
    `n(x) = (x − mean(x)) / sqrt(var(x) + eps)` over each token's features
    (a layer normalization without affine parameters), for student and
    teacher hidden states of equal width (`[B, S, H]`). Normalizing makes the
    term insensitive to the two models' different activation scales.

    ```mlir
    %l = bmsys.distill_hidden_mse %s, %t {eps = 1.0e-05 : f64, scale = 1.0 : f64} : (tensor<?x?x64xf32>, tensor<?x?x64xf32>) -> tensor<f32>
    ```
  }], (ins F64Attr:$eps, F64Attr:$scale)>;

def Bmsys_DistillHiddenMSEGradOp : Bmsys_DistillGradOp<"distill_hidden_mse_grad",
    "gradient of distill_hidden_mse by the student hidden states", [{
    The derivative of `bmsys.distill_hidden_mse` (same attributes) by the
    student's hidden states: `g = 2·scale·(n(s) − n(t)) / (N·H)` through the
    normalization's backward, `(g − mean(g) − n(s)·mean(g·n(s))) / σ(s)`.

    ```mlir
    %ds = bmsys.distill_hidden_mse_grad %s, %t {eps = 1.0e-05 : f64, scale = 1.0 : f64} : (tensor<?x?x64xf32>, tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
    ```
  }], (ins F64Attr:$eps, F64Attr:$scale)>;

#endif // BMSYS_DISTILL_OPS_TD
