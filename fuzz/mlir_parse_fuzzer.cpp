// Fuzz target `mlir_parse`: what bmsys-opt does with arbitrary text before any
// pass runs. The input is parsed (as a file, null-terminated, like bmsys-opt
// reads it) into an MLIRContext with the bmsys, bmsys_rt and func dialects, and
// verified with mlir::verify. A module that verifies is printed in the custom
// and the generic form; each printout must parse and verify again (the
// round-trip property the lit round_trip tests check on hand-written IR).
//
// Parser and verifier errors are expected: they go to a handler that drops them.
// A crash, a sanitizer report, or a failed round trip is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "dialects/bmsys/BmsysDialect.h"
#include "fuzz/fuzz_util.h"
#include "dialects/bmsys_rt/BmsysRtDialect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OperationSupport.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

namespace {

const mlir::DialectRegistry& registry() {
  static const mlir::DialectRegistry* r = [] {
    auto* reg = new mlir::DialectRegistry();
    reg->insert<bmsys::BmsysDialect, bmsys::rt::BmsysRtDialect, mlir::func::FuncDialect>();
    return reg;
  }();
  return *r;
}

struct Parsed {
  mlir::OwningOpRef<mlir::ModuleOp> module;
  std::string firstError;
};

// Parses `text` as bmsys-opt does (a null-terminated buffer in a SourceMgr,
// the top level wrapped in a module when it is not one), without verifying.
Parsed parse(mlir::MLIRContext& context, llvm::StringRef text) {
  Parsed p;
  mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic& d) {
    if (p.firstError.empty() && d.getSeverity() == mlir::DiagnosticSeverity::Error)
      p.firstError = d.str();
    return mlir::success();
  });
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(text, "fuzz.mlir"), llvm::SMLoc());
  mlir::ParserConfig config(&context, /*verifyAfterParse=*/false);
  p.module = mlir::parseSourceFile<mlir::ModuleOp>(sourceMgr, config);
  return p;
}

bool verifies(mlir::MLIRContext& context, mlir::Operation* op, std::string* error) {
  mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic& d) {
    if (error->empty() && d.getSeverity() == mlir::DiagnosticSeverity::Error) *error = d.str();
    return mlir::success();
  });
  return mlir::succeeded(mlir::verify(op));
}

std::string print(mlir::Operation* op, bool generic) {
  std::string s;
  llvm::raw_string_ostream os(s);
  mlir::OpPrintingFlags flags;
  if (generic) flags.printGenericOpForm();
  op->print(os, flags);
  return s;
}

[[noreturn]] void roundTripFailure(const char* form, const std::string& printed, const std::string& error) {
  std::fprintf(stderr,
               "mlir_parse fuzzer: a verified module printed in the %s form does not %s:\n%s\n"
               "--- printed ---\n%s\n---------------\n",
               form, error.rfind("verify:", 0) == 0 ? "verify again" : "parse again",
               error.c_str(), printed.c_str());
  std::abort();
}

// One context for many inputs: creating an MLIRContext and loading the dialects
// costs more than parsing a small input, so the contexts are reused and replaced
// every bmsys::fuzz::context_uses() inputs (interned types, attributes and
// identifiers from fuzzed text accumulate in a context; replacing it bounds the
// memory). Each input's module is destroyed before the next input is parsed.

struct Contexts {
  std::unique_ptr<mlir::MLIRContext> input, again;
  int uses = 0;
};

Contexts& contexts() {
  static Contexts c;
  return c;
}

// Called once per input, before anything is parsed: replacing the contexts while
// a module of the current input lives in them would free it under it.
void startInput() {
  Contexts& c = contexts();
  if (!c.input || c.uses++ >= bmsys::fuzz::context_uses()) {
    c.again.reset();
    c.input.reset();
    c.input = std::make_unique<mlir::MLIRContext>(registry(), mlir::MLIRContext::Threading::DISABLED);
    c.again = std::make_unique<mlir::MLIRContext>(registry(), mlir::MLIRContext::Threading::DISABLED);
    c.uses = 1;
  }
}

void checkRoundTrip(const std::string& printed, const char* form) {
  // A separate context: the printout must parse without what parsing the input
  // registered (e.g. unregistered-dialect state) in the first one.
  mlir::MLIRContext& context = *contexts().again;
  Parsed again = parse(context, printed);
  if (!again.module) roundTripFailure(form, printed, "parse: " + again.firstError);
  std::string error;
  if (!verifies(context, again.module->getOperation(), &error))
    roundTripFailure(form, printed, "verify: " + error);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  startInput();
  mlir::MLIRContext& context = *contexts().input;
  Parsed p = parse(context, llvm::StringRef(reinterpret_cast<const char*>(data), size));
  if (!p.module) return 0;
  std::string error;
  if (!verifies(context, p.module->getOperation(), &error)) return 0;
  checkRoundTrip(print(p.module->getOperation(), /*generic=*/false), "custom");
  checkRoundTrip(print(p.module->getOperation(), /*generic=*/true), "generic");
  return 0;
}
