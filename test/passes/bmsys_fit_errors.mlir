// Nothing fits in 4.5 KiB on one GPU: bmsys-fit refuses, naming the smallest plan
// and how many GPUs of 4.5 KiB the ZeRO-3 plan would need.
// RUN: bmsys-opt %s --bmsys-fit="gpus=1 gpu-memory=4.5KiB seq=4 calibration=%S/Inputs/machine.json micro-batches=1,2 checkpoint=none,every table=" -verify-diagnostics -o /dev/null

// Bad options and inputs: an error naming the option or file, no crash.
// RUN: not bmsys-opt %s --bmsys-fit="mode=serve" 2>&1 | FileCheck %s --check-prefix=MODE
// RUN: not bmsys-opt %s --bmsys-fit="gpu-memory=lots" 2>&1 | FileCheck %s --check-prefix=MEM
// RUN: not bmsys-opt %s --bmsys-fit="calibration=%t.missing.json" 2>&1 | FileCheck %s --check-prefix=CAL
// RUN: not bmsys-opt %s --bmsys-fit="options={zero-stage=2}" 2>&1 | FileCheck %s --check-prefix=RESERVED
// RUN: not bmsys-opt %s --bmsys-fit="checkpoint=sometimes seq=4" 2>&1 | FileCheck %s --check-prefix=POLICY
// RUN: not bmsys-opt %s --bmsys-fit="mode=infer memory-schedule=maybe seq=4" 2>&1 | FileCheck %s --check-prefix=SCHEDULE
// RUN: not bmsys-opt %s --bmsys-train-pipeline="max-batch=1 max-seq=4" --bmsys-fit 2>&1 | FileCheck %s --check-prefix=LOWERED
// MODE: bmsys-fit: mode must be train or infer, got 'serve'
// MEM: bmsys-fit: gpu-memory: 'lots' is not a size
// CAL: bmsys-fit: {{.*}}.missing.json: cannot read
// RESERVED: bmsys-fit: options: 'zero-stage' is chosen by bmsys-fit; leave it out
// POLICY: bmsys-fit: checkpoint policy 'sometimes' is not none, every or every-K
// LOWERED: bmsys-fit: expects a model as imported
// SCHEDULE: bmsys-fit: memory-schedule must be off or on, got 'maybe'

// expected-error@+1 {{bmsys-fit: no configuration fits in 4.50 KiB per GPU with 1 GPU (4 tried); the smallest needs 5.09 KiB per GPU (data-parallel=1 zero-stage=none checkpoint=none micro-batch=1); or 2 GPUs of 4.50 KiB (data-parallel=2 zero-stage=3 checkpoint=every micro-batch=1: 4.45 KiB per GPU)}}
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
