// Shared by the two importer targets: runs bmsys::hf::importHuggingFace on a
// checkpoint directory in a fresh MLIRContext (single-threaded), the way
// bmsys-import-hf does.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "dialects/bmsys/BmsysDialect.h"
#include "frontends/hf/ImportHF.h"
#include "fuzz/fuzz_util.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"

namespace bmsys::fuzz {

// Imports `dir`; returns true when the importer accepted it. A module the importer
// accepted that does not verify is a finding (it accepted a checkpoint and built
// invalid IR from it), as is any crash. The harness verifies itself rather than
// looking for the importer's "internal error" in the message: messages quote the
// config's strings, and libFuzzer learns the words a harness searches for (it put
// "internal error" inside model_type).
inline bool importDir(const std::string& dir, bool hiddenStates) {
  // One context for many imports (creating one and loading the dialects costs
  // about as much as importing a tiny model), replaced every context_uses()
  // imports so that what fuzzed configs intern (names, types) does not
  // accumulate. No module of an earlier import is alive here.
  static std::unique_ptr<mlir::MLIRContext> shared;
  static int uses = 0;
  if (!shared || uses++ >= context_uses()) {
    shared.reset();
    shared = std::make_unique<mlir::MLIRContext>(mlir::MLIRContext::Threading::DISABLED);
    uses = 1;
  }
  mlir::MLIRContext& context = *shared;
  mlir::ScopedDiagnosticHandler handler(&context, [](mlir::Diagnostic&) { return mlir::success(); });
  bmsys::hf::ImportOptions options;
  options.hiddenStates = hiddenStates;
  options.verify = false;
  auto module = bmsys::hf::importHuggingFace(context, dir, options);
  if (!module) {
    refused(llvm::toString(module.takeError()));
    return false;
  }
  if (mlir::failed(mlir::verify(**module))) {
    std::fprintf(stderr, "hf fuzzer: the importer accepted %s and built IR that does not verify\n", dir.c_str());
    std::abort();
  }
  return true;
}

}  // namespace bmsys::fuzz
