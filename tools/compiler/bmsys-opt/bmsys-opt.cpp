//===- bmsys-opt.cpp - the bmsys optimizer driver -------------------------===//
#include "dialects/bmsys/BmsysDialect.h"
#include "dialects/bmsys_rt/BmsysRtDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

#include <cstring>
#include <vector>

namespace {
// MLIR attaches "see current operation" and the operation's full text to every error by
// default. When a pass refuses a module (a bad option, a budget too small, a module not
// lowered yet) that operation is the module: a 7B model's thousands of lines after a
// one-line message. So --mlir-print-op-on-diagnostic defaults to false here; giving it
// (to debug a pass) brings the dump back. cl::opt refuses a second occurrence, hence the
// check. (bmsys-translate cannot do the same: mlirTranslateMain sets the flag itself;
// the serializer reports module-level errors at the module's location instead.)
std::vector<char *> quietDiagnosticsArgv(int argc, char **argv) {
  static char quiet[] = "--mlir-print-op-on-diagnostic=false";
  std::vector<char *> args(argv, argv + argc);
  for (int i = 1; i < argc; ++i)
    if (std::strstr(argv[i], "mlir-print-op-on-diagnostic"))
      return args;
  args.insert(args.begin() + (argc > 0 ? 1 : 0), quiet);
  return args;
}
} // namespace

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  registry.insert<bmsys::BmsysDialect, bmsys::rt::BmsysRtDialect, mlir::func::FuncDialect>();
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  bmsys::registerBmsysPasses();
  bmsys::registerPipelines();
  std::vector<char *> args = quietDiagnosticsArgv(argc, argv);
  return mlir::asMainReturnCode(mlir::MlirOptMain(static_cast<int>(args.size()), args.data(),
                                                  "bmsys optimizer: transformer passes and lowering\n", registry));
}
