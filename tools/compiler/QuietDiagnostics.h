//===- QuietDiagnostics.h - errors without a dump of the whole module ------===//
//
// MLIR attaches "see current operation" and the operation's full text to every error
// by default. When a pass refuses a module (a bad option, a budget too small, a module
// not lowered yet) that operation is the module: a 7B model's thousands of lines after
// a one-line message. The compiler tools turn it off unless the command line says
// otherwise (--mlir-print-op-on-diagnostic, e.g. to debug a pass).
//
//===----------------------------------------------------------------------===//
#pragma once

#include <cstring>
#include <vector>

namespace bmsys {

// argv with --mlir-print-op-on-diagnostic=false after the program name, unless the
// option is given already (cl::opt refuses a second occurrence).
inline std::vector<char *> quietDiagnosticsArgv(int argc, char **argv) {
  static char quiet[] = "--mlir-print-op-on-diagnostic=false";
  std::vector<char *> args(argv, argv + argc);
  for (int i = 1; i < argc; ++i)
    if (std::strstr(argv[i], "mlir-print-op-on-diagnostic"))
      return args;
  args.insert(args.begin() + (argc > 0 ? 1 : 0), quiet);
  return args;
}

} // namespace bmsys
