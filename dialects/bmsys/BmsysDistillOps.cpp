//===- BmsysDistillOps.cpp - verifiers of the distillation losses ---------===//
#include "dialects/bmsys/BmsysDialect.h"

#include <cmath>

using namespace mlir;
using namespace bmsys;

namespace {
/// Student and teacher: [batch, seq, width] float tensors of one width and
/// compatible leading dimensions.
LogicalResult verifyPair(Operation *op, Value student, Value teacher) {
  auto s = cast<RankedTensorType>(student.getType()), t = cast<RankedTensorType>(teacher.getType());
  if (s.getRank() != 3 || t.getRank() != 3 || !isa<FloatType>(s.getElementType()) ||
      !isa<FloatType>(t.getElementType()))
    return op->emitOpError() << "expects float student and teacher tensors [batch, seq, width]";
  for (int i = 0; i < 3; ++i)
    if (!ShapedType::isDynamic(s.getDimSize(i)) && !ShapedType::isDynamic(t.getDimSize(i)) &&
        s.getDimSize(i) != t.getDimSize(i))
      return op->emitOpError() << "student and teacher differ in dimension " << i << " ("
                               << s.getDimSize(i) << " vs " << t.getDimSize(i) << ")";
  return success();
}

LogicalResult verifyPositive(Operation *op, StringRef name, double value) {
  if (!(value > 0) || !std::isfinite(value))
    return op->emitOpError() << name << " must be a positive number, got " << value;
  return success();
}

LogicalResult verifyScale(Operation *op, double scale) {
  if (!std::isfinite(scale) || scale < 0)
    return op->emitOpError() << "scale must be a finite number >= 0, got " << scale;
  return success();
}

LogicalResult verifyLoss(Operation *op, Value student, Value teacher, Value result) {
  if (failed(verifyPair(op, student, teacher)))
    return failure();
  if (cast<RankedTensorType>(result.getType()).getRank() != 0)
    return op->emitOpError() << "result must be a scalar tensor<f32>";
  return success();
}

LogicalResult verifyGrad(Operation *op, Value student, Value teacher, Value result) {
  if (failed(verifyPair(op, student, teacher)))
    return failure();
  if (result.getType() != student.getType())
    return op->emitOpError() << "result type must be the student's, " << student.getType();
  return success();
}
} // namespace

LogicalResult DistillSoftCEOp::verify() {
  if (failed(verifyLoss(*this, getStudent(), getTeacher(), getResult())) ||
      failed(verifyPositive(*this, "temperature", getTemperature().convertToDouble())))
    return failure();
  return verifyScale(*this, getScale().convertToDouble());
}

LogicalResult DistillSoftCEGradOp::verify() {
  if (failed(verifyGrad(*this, getStudent(), getTeacher(), getResult())) ||
      failed(verifyPositive(*this, "temperature", getTemperature().convertToDouble())))
    return failure();
  return verifyScale(*this, getScale().convertToDouble());
}

LogicalResult DistillHiddenMSEOp::verify() {
  if (failed(verifyLoss(*this, getStudent(), getTeacher(), getResult())) ||
      failed(verifyPositive(*this, "eps", getEps().convertToDouble())))
    return failure();
  return verifyScale(*this, getScale().convertToDouble());
}

LogicalResult DistillHiddenMSEGradOp::verify() {
  if (failed(verifyGrad(*this, getStudent(), getTeacher(), getResult())) ||
      failed(verifyPositive(*this, "eps", getEps().convertToDouble())))
    return failure();
  return verifyScale(*this, getScale().convertToDouble());
}
