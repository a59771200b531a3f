// bmsys-fit compiles every candidate with the train (infer) pipeline, predicts its
// peak per GPU (the memory report's total) and its step time (the cost model, with
// the round rates of Inputs/machine.json), and keeps the fastest that fits.
// RUN: bmsys-opt %s --bmsys-fit="gpus=2 gpu-memory=1MiB seq=4 calibration=%S/Inputs/machine.json micro-batches=1,2 zero-stages=0,3 checkpoint=none,every tensor-parallel=1 report=%t.json" | FileCheck %s
// RUN: %python %pytools/check_fit_report.py %t.json | FileCheck %s --check-prefix=REPORT

// Eight candidates: ZeRO 0 or 3, checkpointing or not, one or two sequences per GPU.
// At these sizes the optimizer update dominates, so ZeRO-3 (each rank updates half)
// is the fastest; two sequences per GPU amortize it best.
// CHECK: bmsys fit: train, 2 GPUs of 1.00 MiB, calibration {{.*}}machine.json (test machine: 1 GFLOP/s, 1 GB/s)
// CHECK: 1 data-parallel=2 zero-stage=0 checkpoint=none micro-batch=1 {{.*}} yes
// CHECK: 6 data-parallel=2 zero-stage=3 checkpoint=none micro-batch=2 {{.*}} yes  <- chosen
// CHECK: 8 data-parallel=2 zero-stage=3 checkpoint=every micro-batch=2 {{.*}} yes
// The record: the knobs, the exact pipeline, predictions and the reason.
// CHECK: module attributes {bmsys.fit = {calibration = "{{.*}}machine.json", checkpoint = "none", data_parallel = 2 : i64, global_batch = 4 : i64, gpu_memory = 1048576 : i64, gpus = 2 : i64, micro_batch = 2 : i64, mode = "train", pipeline = "bmsys-train-pipeline{max-batch=2 max-seq=4 checkpoint=none zero-stage=3 ranks=2}", predicted_peak_bytes = 4624 : i64, predicted_step_s = {{.*}} : f64, predicted_tokens_per_s = {{.*}} : f64, reason = "fastest of 8 candidates that fit in 1.00 MiB per GPU (8 evaluated); next: data-parallel=2 zero-stage=3 checkpoint=every micro-batch=2 at 6.7% lower throughput"{{.*}}zero_stage = 3 : i64}}
// Without apply the model itself is unchanged.
// CHECK: func.func @forward
// REPORT: 8 candidates, 8 fit; chosen: the fastest that fits; peaks equal the memory report totals

// A tight budget: the faster candidates do not fit, and the reason says so.
// RUN: bmsys-opt %s --bmsys-fit="gpus=2 gpu-memory=4.5KiB seq=4 calibration=%S/Inputs/machine.json micro-batches=1,2 zero-stages=0,3 checkpoint=none,every tensor-parallel=1" | FileCheck %s --check-prefix=TIGHT
// TIGHT: 2 data-parallel=2 zero-stage=0 checkpoint=none micro-batch=2 {{.*}} no: needs 5.66 KiB per GPU
// TIGHT: 5 data-parallel=2 zero-stage=3 checkpoint=none micro-batch=1 {{.*}} yes  <- chosen
// TIGHT: reason = "fastest of 2 candidates that fit in 4.50 KiB per GPU (8 evaluated); next: data-parallel=2 zero-stage=3 checkpoint=every micro-batch=1 at 5.3% lower throughput; faster but too large: data-parallel=2 zero-stage=0 checkpoint=none micro-batch=2 (needs 5.66 KiB per GPU)"

// With apply, the module is the chosen configuration, compiled.
// RUN: bmsys-opt %s --bmsys-fit="gpus=1 gpu-memory=1MiB seq=4 calibration=%S/Inputs/machine.json micro-batches=2 checkpoint=every apply table=" | FileCheck %s --check-prefix=APPLY
// APPLY: module attributes {bmsys.fit = {{{.*}}checkpoint = "every"{{.*}}pipeline = "bmsys-train-pipeline{max-batch=2 max-seq=4 checkpoint=every}"{{.*}}}, bmsys_rt.activation_bytes
// APPLY: bmsys_rt.func @train_step

// Inference: decode reads every weight once per token, so INT8 weights (a quarter of
// the float bytes) make the decode step faster and are chosen, although the tied
// embedding keeps its float copy (the peak grows by 32 B).
// RUN: bmsys-opt %s --bmsys-fit="mode=infer batch=1 gpu-memory=1MiB seq=4 calibration=%S/Inputs/machine.json tensor-parallel=1 memory-schedule=off" | FileCheck %s --check-prefix=INFER
// INFER: bmsys fit: infer, 1 GPU of 1.00 MiB
// INFER: 1 quantize=none batch=1 1.56 KiB {{.*}} yes
// INFER: 2 quantize=int8 batch=1 1.59 KiB {{.*}} yes  <- chosen
// INFER: bmsys.fit = {batch = 1 : i64{{.*}}mode = "infer", pipeline = "bmsys-infer-pipeline{max-batch=1 max-seq=4 quantize=int8}"{{.*}}quantize = "int8"

// A tiny model: one block of embedding, rms_norm, linear, silu and a residual add,
// with an lm_head tied to the embedding (Inputs/tiny_model.mlir).
module {
  bmsys.param @emb : tensor<16x8xf32> from "m.safetensors"["emb"]
  bmsys.param @g : tensor<8xf32> from "m.safetensors"["g"]
  bmsys.param @w : tensor<8x8xf32> from "m.safetensors"["w"]
  func.func @forward(%ids: tensor<?x?xi64> {bmsys.name = "input_ids"}) -> (tensor<?x?x16xf32> {bmsys.name = "logits"}) {
    %e = bmsys.weight @emb : tensor<16x8xf32>
    %x = bmsys.embedding %ids, %e : (tensor<?x?xi64>, tensor<16x8xf32>) -> tensor<?x?x8xf32>
    %y = bmsys.block "layers.0" (%x) : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
    ^bb0(%a: tensor<?x?x8xf32>):
      %g = bmsys.weight @g : tensor<8xf32>
      %w = bmsys.weight @w : tensor<8x8xf32>
      %n = bmsys.rms_norm %a, %g {eps = 1.0e-5 : f64} : (tensor<?x?x8xf32>, tensor<8xf32>) -> tensor<?x?x8xf32>
      %l = bmsys.linear %n, %w : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
      %s = bmsys.silu %l : tensor<?x?x8xf32>
      %r = bmsys.add %s, %a : tensor<?x?x8xf32>
      bmsys.yield %r : tensor<?x?x8xf32>
    }
    %logits = bmsys.linear %y, %e : (tensor<?x?x8xf32>, tensor<16x8xf32>) -> tensor<?x?x16xf32>
    return %logits : tensor<?x?x16xf32>
  }
}
