//===- BmsysInterfaces.td - bmsys op interfaces ------------*- tablegen -*-===//
#ifndef BMSYS_INTERFACES_TD
#define BMSYS_INTERFACES_TD

include "mlir/IR/OpBase.td"

def Bmsys_DifferentiableOpInterface : OpInterface<"DifferentiableOpInterface"> {
  let cppNamespace = "::bmsys";
  let description = [{
    An op whose operands' gradients can be built from its results' gradients:
    the per-op rule that `bmsys-autodiff` applies in reverse order. The rule
    reads the op's attributes but takes its operands and results as arguments,
    so the same rule serves a recomputed copy of the op (activation
    checkpointing). A null entry in `resultGrads` means that result does not
    reach the loss; a null entry in `operandGrads` means no gradient flows to
    that operand (token ids, positions).
  }];
  let methods = [
    InterfaceMethod<[{
        Builds, with `builder`, the gradients of the operands from those of
        the results. Appends one value (or null) per operand to `operandGrads`.
      }],
      "::mlir::LogicalResult", "buildGradients",
      (ins "::mlir::OpBuilder &":$builder, "::mlir::ValueRange":$operands,
           "::mlir::ValueRange":$results, "::mlir::ValueRange":$resultGrads,
           "::llvm::SmallVectorImpl<::mlir::Value> &":$operandGrads)>,
  ];
}

#endif // BMSYS_INTERFACES_TD
