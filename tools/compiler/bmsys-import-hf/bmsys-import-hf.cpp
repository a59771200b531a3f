//===- bmsys-import-hf.cpp - Hugging Face checkpoint -> bmsys .mlir -------===//
#include "frontends/hf/ImportHF.h"

#include "dialects/bmsys/BmsysDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/ToolOutputFile.h"

using namespace llvm;

static cl::opt<std::string> inputDir(cl::Positional, cl::desc("<checkpoint directory>"),
                                     cl::Required);
static cl::opt<std::string> outputFile("o", cl::desc("output .mlir file"), cl::init("-"),
                                       cl::value_desc("file"));
static cl::opt<bool> hiddenStates(
    "hidden-states",
    cl::desc("also return hidden.0 .. hidden.L as transformers' output_hidden_states"));

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::ParseCommandLineOptions(
      argc, argv,
      "bmsys-import-hf: import a Hugging Face GPT-2 or Llama checkpoint as bmsys IR\n");
  mlir::MLIRContext context;
  context.loadDialect<bmsys::BmsysDialect, mlir::func::FuncDialect>();
  bmsys::hf::ImportOptions options;
  options.hiddenStates = hiddenStates;
  auto module = bmsys::hf::importHuggingFace(context, inputDir, options);
  if (!module) {
    errs() << "bmsys-import-hf: error: " << toString(module.takeError()) << "\n";
    return 1;
  }
  std::string error;
  auto out = mlir::openOutputFile(outputFile, &error);
  if (!out) {
    errs() << "bmsys-import-hf: error: " << error << "\n";
    return 1;
  }
  (*module)->print(out->os());
  out->keep();
  return 0;
}
