//===- bmsys-opt.cpp - the bmsys optimizer driver -------------------------===//
#include "dialects/bmsys/BmsysDialect.h"
#include "dialects/bmsys_rt/BmsysRtDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  registry.insert<bmsys::BmsysDialect, bmsys::rt::BmsysRtDialect, mlir::func::FuncDialect>();
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  bmsys::registerBmsysPasses();
  bmsys::registerPipelines();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "bmsys optimizer: transformer passes and lowering\n", registry));
}
