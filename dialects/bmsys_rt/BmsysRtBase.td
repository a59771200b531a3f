//===- BmsysRtBase.td - the bmsys_rt dialect and its types -*- tablegen -*-===//
#ifndef BMSYS_RT_BASE_TD
#define BMSYS_RT_BASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def BmsysRt_Dialect : Dialect {
  let name = "bmsys_rt";
  let cppNamespace = "::bmsys::rt";
  let summary = "Runtime-level dialect: explicit buffers, lifetimes and kernel calls";
  let description = [{
    `bmsys_rt` is what the runtime executes, with every decision made: each
    activation is a buffer with a symbolic shape (`"B"`, `"S"` or a constant per
    dimension), an offset in a planned pool and a lifetime ending at a
    `bmsys_rt.dealloc`; each computation is a `bmsys_rt.launch` of a named
    kernel (docs/kernels.md). `bmsys-translate --bmsys-to-artifact` writes it as
    a FlatBuffers artifact without changing anything.

    ```mlir
    bmsys_rt.weight @wte {dtype = f32, shape = [256, 64], file = "model.safetensors", key = "transformer.wte.weight"}
    bmsys_rt.func @forward {
      %ids = bmsys_rt.input "input_ids" {dtype = i64, shape = ["B", "S"]}
      %w = bmsys_rt.weight_ref @wte
      %e = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 64], offset = 0, bytes = 16384}
      bmsys_rt.launch "embedding" (%ids, %w) -> (%e)
      bmsys_rt.output "hidden" %e
    }
    ```
  }];
  let useDefaultTypePrinterParser = 1;
}

class BmsysRt_Op<string mnemonic, list<Trait> traits = []>
    : Op<BmsysRt_Dialect, mnemonic, traits>;

def BmsysRt_BufferType : TypeDef<BmsysRt_Dialect, "Buffer"> {
  let mnemonic = "buffer";
  let summary = "a region of memory holding one tensor";
  let description = [{
    An opaque handle to a tensor's memory: an input, a weight, a state
    (KV cache) or a planned activation. Its element type and symbolic shape are
    attributes of the op that defines it.
  }];
}

#endif // BMSYS_RT_BASE_TD
