//===- bmsys-opt.cpp - the bmsys optimizer driver -------------------------===//
#include "dialects/bmsys/BmsysDialect.h"
#include "dialects/bmsys_rt/BmsysRtDialect.h"
#include "passes/Passes.h"
#include "tools/compiler/QuietDiagnostics.h"

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
  std::vector<char *> args = bmsys::quietDiagnosticsArgv(argc, argv);
  return mlir::asMainReturnCode(mlir::MlirOptMain(static_cast<int>(args.size()), args.data(),
                                                  "bmsys optimizer: transformer passes and lowering\n", registry));
}
