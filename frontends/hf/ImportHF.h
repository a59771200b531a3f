//===- ImportHF.h - Hugging Face checkpoint -> bmsys dialect --------------===//
#ifndef BMSYS_FRONTENDS_HF_IMPORTHF_H
#define BMSYS_FRONTENDS_HF_IMPORTHF_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/Error.h"

namespace bmsys::hf {
struct ImportOptions {
  /// Also return the hidden states as transformers' output_hidden_states does:
  /// `hidden.0` (embeddings) ... `hidden.L` (after the final norm).
  bool hiddenStates = false;
  /// Verify the module before returning it (an importer bug otherwise: an "internal
  /// error"). The fuzz harness turns it off and verifies itself, so that no message
  /// text, which may echo the checkpoint's strings, decides what is a finding.
  bool verify = true;
};

/// Imports a checkpoint directory (config.json and model.safetensors or a
/// sharded model.safetensors.index.json) of a GPT-2 or Llama-family model.
/// Errors name the file and tensor at fault.
llvm::Expected<mlir::OwningOpRef<mlir::ModuleOp>>
importHuggingFace(mlir::MLIRContext &context, llvm::StringRef dir, const ImportOptions &options);
} // namespace bmsys::hf

#endif
