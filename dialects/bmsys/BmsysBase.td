//===- BmsysBase.td - the bmsys dialect --------------------*- tablegen -*-===//
#ifndef BMSYS_BASE_TD
#define BMSYS_BASE_TD

include "mlir/IR/OpBase.td"

def Bmsys_Dialect : Dialect {
  let name = "bmsys";
  let cppNamespace = "::bmsys";
  let summary = "Model-level transformer dialect: parameters and transformer ops on tensors";
  let description = [{
    The `bmsys` dialect describes a transformer model as the user thinks of it:
    parameters are module-level symbols (`bmsys.param`) that name the safetensors
    file and key they are loaded from, and functions compute on tensors with ops
    such as `bmsys.linear`, `bmsys.rms_norm` and `bmsys.attention`. A transformer
    layer is a `bmsys.block`, the unit that checkpointing, sharding and memory
    scheduling act on.

    Batch and sequence dimensions are dynamic (`?`); passes bound them
    (`bmsys-bound-shapes`) before lowering to `bmsys_rt`.

    ```mlir
    bmsys.param @wte : tensor<256x64xf32> from "model.safetensors"["transformer.wte.weight"]
    func.func @forward(%ids: tensor<?x?xi64>) -> tensor<?x?x64xf32> {
      %w = bmsys.weight @wte : tensor<256x64xf32>
      %e = bmsys.embedding %ids, %w : (tensor<?x?xi64>, tensor<256x64xf32>) -> tensor<?x?x64xf32>
      return %e : tensor<?x?x64xf32>
    }
    ```
  }];
}

class Bmsys_Op<string mnemonic, list<Trait> traits = []>
    : Op<Bmsys_Dialect, mnemonic, traits>;

#endif // BMSYS_BASE_TD
