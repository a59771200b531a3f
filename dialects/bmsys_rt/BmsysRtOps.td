//===- BmsysRtOps.td - bmsys_rt operations -----------------*- tablegen -*-===//
#ifndef BMSYS_RT_OPS_TD
#define BMSYS_RT_OPS_TD

include "dialects/bmsys_rt/BmsysRtBase.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/IR/RegionKindInterface.td"

def BmsysRt_Buffer : Type<CPred<"::llvm::isa<::bmsys::rt::BufferType>($_self)">,
                          "bmsys_rt buffer", "::bmsys::rt::BufferType">,
                     BuildableType<"::bmsys::rt::BufferType::get($_builder.getContext())">;

def BmsysRt_WeightOp : BmsysRt_Op<"weight", [Symbol]> {
  let summary = "a weight tensor read from a safetensors file at load time";
  let description = [{
    Declares a weight buffer: its element type, static shape and the
    safetensors file (relative to the artifact) and key it is loaded from. The
    runtime converts the stored dtype to `dtype` when it loads. With
    `shard_ranks` (ZeRO-3) the buffer holds only this rank's flat shard of
    the stored tensor of `full_shape`.

    ```mlir
    bmsys_rt.weight @wte {dtype = f32, shape = [256, 64], file = "model.safetensors", key = "transformer.wte.weight"}
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, TypeAttr:$dtype, DenseI64ArrayAttr:$shape,
                       StrAttr:$file, StrAttr:$key, OptionalAttr<I64Attr>:$shard_ranks,
                       OptionalAttr<DenseI64ArrayAttr>:$full_shape);
  let assemblyFormat = "$sym_name attr-dict";
}

def BmsysRt_StateOp : BmsysRt_Op<"state", [Symbol]> {
  let summary = "persistent state (KV cache, optimizer state) at a fixed offset of the state pool";
  let description = [{
    A buffer that outlives a function call, zeroed at load. `role` says what it
    holds: `kv_cache` (the keys or values cached by one attention op) or
    `optimizer` (optimizer state, saved in training checkpoints under the
    symbol name). `offset` and `bytes` place it in the state pool.

    ```mlir
    bmsys_rt.state @kv0.k {dtype = f32, shape = array<i64: 1, 64, 2, 16>, offset = 0, bytes = 8192}
    bmsys_rt.state @w.exp_avg {dtype = f32, shape = array<i64: 64>, offset = 8192, bytes = 256, role = "optimizer"}
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, TypeAttr:$dtype, DenseI64ArrayAttr:$shape,
                       I64Attr:$offset, I64Attr:$bytes,
                       DefaultValuedStrAttr<StrAttr, "kv_cache">:$role,
                       OptionalAttr<I64Attr>:$shard_ranks,
                       OptionalAttr<DenseI64ArrayAttr>:$full_shape);
  let assemblyFormat = "$sym_name attr-dict";
}

def BmsysRt_FuncOp : BmsysRt_Op<"func", [Symbol, SingleBlock, NoTerminator,
    IsolatedFromAbove]> {
  let summary = "an entry point: a straight-line sequence of buffer and kernel ops";
  let description = [{
    A function the runtime can call by name (`forward`). Its body runs in
    order; inputs are bound by `bmsys_rt.input`, results are named by
    `bmsys_rt.output`.

    ```mlir
    bmsys_rt.func @forward {
      %ids = bmsys_rt.input "input_ids" {dtype = i64, shape = ["B", "S"]}
      bmsys_rt.output "ids" %ids
    }
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = "$sym_name attr-dict-with-keyword $body";
}

def BmsysRt_InputOp : BmsysRt_Op<"input", [HasParent<"FuncOp">]> {
  let summary = "a function argument bound by the caller";
  let description = [{
    ```mlir
    %ids = bmsys_rt.input "input_ids" {dtype = i64, shape = ["B", "S"]}
    ```
  }];
  let arguments = (ins StrAttr:$name, TypeAttr:$dtype, ArrayAttr:$shape);
  let results = (outs BmsysRt_Buffer:$buffer);
  let assemblyFormat = "$name attr-dict";
  let hasVerifier = 1;
}

def BmsysRt_WeightRefOp : BmsysRt_Op<"weight_ref", [
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "the buffer of a declared weight";
  let description = [{
    ```mlir
    %w = bmsys_rt.weight_ref @wte
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$weight);
  let results = (outs BmsysRt_Buffer:$buffer);
  let assemblyFormat = "$weight attr-dict";
}

def BmsysRt_StateRefOp : BmsysRt_Op<"state_ref", [
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "the buffer of a declared state";
  let description = [{
    ```mlir
    %k = bmsys_rt.state_ref @layers.0.kv.k
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$state);
  let results = (outs BmsysRt_Buffer:$buffer);
  let assemblyFormat = "$state attr-dict";
}

def BmsysRt_AllocOp : BmsysRt_Op<"alloc", [HasParent<"FuncOp">]> {
  let summary = "an activation buffer in the activation pool";
  let description = [{
    Starts the lifetime of an activation of element type `dtype` and symbolic
    `shape` (each dimension `"B"`, `"S"` or a constant). `bmsys-plan-memory`
    sets `offset` (bytes into the activation pool) and `bytes` (its size at the
    largest bound shape); buffers whose lifetimes do not overlap share memory.

    ```mlir
    %h = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 64], offset = 0, bytes = 16384}
    ```
  }];
  let arguments = (ins TypeAttr:$dtype, ArrayAttr:$shape, OptionalAttr<I64Attr>:$offset,
                       OptionalAttr<I64Attr>:$bytes);
  let results = (outs BmsysRt_Buffer:$buffer);
  let assemblyFormat = "attr-dict";
  let hasVerifier = 1;
}

def BmsysRt_DeallocOp : BmsysRt_Op<"dealloc", [HasParent<"FuncOp">]> {
  let summary = "ends the lifetime of an activation buffer";
  let description = [{
    After this op the memory of the buffer may be reused. Inserted by
    `bmsys-plan-memory` after the buffer's last use.

    ```mlir
    bmsys_rt.dealloc %h
    ```
  }];
  let arguments = (ins BmsysRt_Buffer:$buffer);
  let assemblyFormat = "$buffer attr-dict";
}

def BmsysRt_LaunchOp : BmsysRt_Op<"launch", [HasParent<"FuncOp">, AttrSizedOperandSegments]> {
  let summary = "a call of a runtime kernel";
  let description = [{
    Runs `kernel` (a name from docs/kernels.md) reading `inputs` and writing
    `outputs`, with the kernel's parameters in `params`.

    ```mlir
    bmsys_rt.launch "rms_norm" (%x, %g) -> (%y) with {eps = 1.0e-05 : f64}
    ```
  }];
  let arguments = (ins StrAttr:$kernel, Variadic<BmsysRt_Buffer>:$inputs,
                       Variadic<BmsysRt_Buffer>:$outputs, OptionalAttr<DictionaryAttr>:$params);
  let assemblyFormat = [{
    $kernel `(` $inputs `)` `->` `(` $outputs `)` (`with` $params^)? attr-dict
  }];
  let hasVerifier = 1;
}

def BmsysRt_OutputOp : BmsysRt_Op<"output", [HasParent<"FuncOp">]> {
  let summary = "names a buffer as a result of the function";
  let description = [{
    ```mlir
    bmsys_rt.output "logits" %logits
    ```
  }];
  let arguments = (ins StrAttr:$name, BmsysRt_Buffer:$buffer);
  let assemblyFormat = "$name $buffer attr-dict";
}

#endif // BMSYS_RT_OPS_TD
