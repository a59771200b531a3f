//===- bmsys-translate.cpp - bmsys_rt module -> artifact -------------------===//
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Tools/mlir-translate/MlirTranslateMain.h"
#include "mlir/Tools/mlir-translate/Translation.h"

int main(int argc, char **argv) {
  mlir::TranslateFromMLIRRegistration toArtifact(
      "bmsys-to-artifact", "write a planned bmsys_rt module as a FlatBuffers artifact",
      [](mlir::Operation *op, llvm::raw_ostream &os) -> mlir::LogicalResult {
        auto module = llvm::dyn_cast<mlir::ModuleOp>(op);
        if (!module)
          return op->emitError("bmsys-to-artifact expects a builtin.module");
        return bmsys::serializeArtifact(module, os);
      },
      [](mlir::DialectRegistry &registry) {
        registry.insert<bmsys::BmsysDialect, bmsys::rt::BmsysRtDialect,
                        mlir::func::FuncDialect>();
      });
  return mlir::failed(mlir::mlirTranslateMain(argc, argv, "bmsys translation tool"));
}
