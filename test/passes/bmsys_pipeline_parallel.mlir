// RUN: bmsys-opt %S/Inputs/pp_two_layers.mlir --bmsys-pipeline-parallel="stages=2 micro-batches=2" | FileCheck %s
// RUN: bmsys-opt %S/Inputs/pp_two_layers.mlir --bmsys-pipeline-parallel="stages=2 micro-batches=2" --bmsys-autodiff --bmsys-optimizer=max-grad-norm=1 --bmsys-pipeline-schedule | FileCheck %s --check-prefix=SCHED
// RUN: bmsys-opt %S/Inputs/pp_two_layers.mlir --bmsys-pipeline-parallel="stages=2 micro-batches=3" --bmsys-autodiff --bmsys-optimizer --bmsys-pipeline-schedule | FileCheck %s --check-prefix=M3
// RUN: bmsys-opt %S/Inputs/pp_two_layers.mlir --bmsys-pipeline-parallel="stages=2 micro-batches=2" --bmsys-autodiff --bmsys-optimizer --bmsys-pipeline-schedule --bmsys-zero="stage=1 ranks=2" | FileCheck %s --check-prefix=ZERO
// RUN: bmsys-opt %S/Inputs/pp_two_layers.mlir --bmsys-pipeline-parallel="stages=2 micro-batches=2" --bmsys-autodiff --bmsys-optimizer --bmsys-pipeline-schedule --bmsys-inline-blocks --bmsys-bound-shapes="max-batch=2 max-seq=8" --bmsys-lower-to-rt | FileCheck %s --check-prefix=LOWER
// RUN: bmsys-opt %S/Inputs/pp_two_layers.mlir --bmsys-pipeline-parallel="stages=2 micro-batches=2" --bmsys-checkpoint --bmsys-autodiff --bmsys-optimizer --bmsys-pipeline-schedule | FileCheck %s --check-prefix=CKPT
// RUN: bmsys-opt %S/Inputs/pp_two_layers.mlir --bmsys-train-pipeline="pipeline-stages=2 micro-batches=3 max-batch=1 max-seq=8 checkpoint=every max-grad-norm=1.0 zero-stage=1 ranks=2" | FileCheck %s --check-prefix=TRAIN

// The cut: layer 0 and the embedding on stage 0; layer 1, the final norm and
// the output projection on stage 1; the hidden state crosses once.
// CHECK: module attributes {bmsys.pipeline_micro_batches = 2 : i64, bmsys.pipeline_stages = 2 : i64}
// CHECK: bmsys.param @embed {{.*}} {pp_stage = 0 : i64}
// CHECK: bmsys.param @w0 {{.*}} {pp_stage = 0 : i64}
// CHECK: bmsys.param @w1 {{.*}} {pp_stage = 1 : i64}
// CHECK: bmsys.param @head {{.*}} {pp_stage = 1 : i64}
// CHECK: %[[H0:.*]] = bmsys.block "layers.0"({{.*}}) {bmsys.pp_stage = 0 : i64}
// CHECK: %[[B:.*]] = bmsys.pp_boundary %[[H0]] {channel = 0 : i64, from = 0 : i64, to = 1 : i64}
// CHECK-NEXT: bmsys.block "layers.1"(%[[B]], {{.*}}) {bmsys.pp_stage = 1 : i64}

// The 1F1B order of 2 stages and 2 micro-batches: stage 0 runs F0 F1 B0 B1,
// stage 1 F0 B0 F1 B1. Stage 0 sends activations and receives gradients.
// SCHED-LABEL: func.func @train_step.stage0(
// SCHED-SAME: {bmsys.name = "input_ids.mb0"}
// SCHED-SAME: {bmsys.name = "input_ids.mb1"}
// SCHED-SAME: attributes {bmsys.pipeline_stage = 0 : i64}
// SCHED-NOT: bmsys.weight @w1
// SCHED: bmsys.embedding %arg0
// SCHED: bmsys.pp_send %{{.*}} {channel = 0 : i64, micro_batch = 0 : i64, peer = 1 : i64}
// SCHED: bmsys.embedding %arg1
// SCHED: bmsys.pp_send %{{.*}} {channel = 0 : i64, micro_batch = 1 : i64, peer = 1 : i64}
// SCHED: %[[G0:.*]] = bmsys.pp_recv {channel = 0 : i64, micro_batch = 0 : i64, peer = 1 : i64}
// SCHED: %[[E0:.*]] = bmsys.embedding_grad %arg0
// SCHED: bmsys.pp_recv {channel = 0 : i64, micro_batch = 1 : i64, peer = 1 : i64}
// SCHED: %[[E1:.*]] = bmsys.embedding_grad %arg1
// Gradient accumulation: summed over the micro-batches, then the mean.
// SCHED: %[[ES:.*]] = bmsys.add %[[E0]], %[[E1]] : tensor<16x8xf32>
// SCHED: %[[EM:.*]] = bmsys.pp_mean %[[ES]] {micro_batches = 2 : i64} : tensor<16x8xf32>
// SCHED: %[[N:.*]] = bmsys.global_norm %[[EM]], {{.*}} {pp_stages = 2 : i64}
// SCHED: bmsys.adamw @embed, %[[EM]], %[[N]]
// SCHED-NOT: bmsys.adamw @w1
// SCHED: %[[L:.*]] = bmsys.pp_broadcast {root = 1 : i64} : () -> tensor<f32>
// SCHED: return %[[L]], %[[N]]
// SCHED-LABEL: func.func @train_step.stage1(
// SCHED-SAME: attributes {bmsys.pipeline_stage = 1 : i64}
// SCHED: bmsys.pp_recv {channel = 0 : i64, micro_batch = 0 : i64, peer = 0 : i64}
// SCHED: %[[L0:.*]] = bmsys.cross_entropy %{{.*}}, %arg0
// SCHED: bmsys.cross_entropy_grad %{{.*}}, %arg0
// SCHED: bmsys.pp_send %{{.*}} {channel = 0 : i64, micro_batch = 0 : i64, peer = 0 : i64}
// SCHED: bmsys.pp_recv {channel = 0 : i64, micro_batch = 1 : i64, peer = 0 : i64}
// SCHED: %[[L1:.*]] = bmsys.cross_entropy %{{.*}}, %arg1
// SCHED: %[[LS:.*]] = bmsys.add %[[L0]], %[[L1]] : tensor<f32>
// SCHED: bmsys.cross_entropy_grad %{{.*}}, %arg1
// SCHED: bmsys.pp_send %{{.*}} {channel = 0 : i64, micro_batch = 1 : i64, peer = 0 : i64}
// SCHED: %[[N1:.*]] = bmsys.global_norm {{.*}} {pp_stages = 2 : i64}
// SCHED: bmsys.adamw @head
// SCHED: %[[LM:.*]] = bmsys.pp_mean %[[LS]] {micro_batches = 2 : i64} : tensor<f32>
// SCHED: %[[LB:.*]] = bmsys.pp_broadcast %[[LM]] {root = 1 : i64} : (tensor<f32>) -> tensor<f32>
// SCHED: return %[[LB]], %[[N1]]
// SCHED-NOT: func.func @train_step(

// Three micro-batches: stage 0 warms up with one forward, then alternates.
// M3-LABEL: func.func @train_step.stage0(
// M3: bmsys.pp_send {{.*}}micro_batch = 0
// M3: bmsys.pp_send {{.*}}micro_batch = 1
// M3: bmsys.pp_recv {{.*}}micro_batch = 0
// M3: bmsys.pp_send {{.*}}micro_batch = 2
// M3: bmsys.pp_recv {{.*}}micro_batch = 1
// M3: bmsys.pp_recv {{.*}}micro_batch = 2
// M3: bmsys.pp_mean {{.*}} {micro_batches = 3 : i64}

// ZeRO acts on each stage's step, on the accumulated gradients.
// ZERO: bmsys.optimizer_state @w0.exp_avg : tensor<32xf32>
// ZERO-LABEL: func.func @train_step.stage0(
// ZERO: %[[M:.*]] = bmsys.pp_mean
// ZERO: bmsys.reduce_scatter %[[M]] {ranks = 2 : i64, reduction = "mean"}
// ZERO: bmsys.global_norm {{.*}} {pp_stages = 2 : i64, ranks = 2 : i64}
// ZERO: bmsys.sync_param @embed {ranks = 2 : i64}
// ZERO: %[[B0:.*]] = bmsys.pp_broadcast
// ZERO: bmsys.all_reduce %[[B0]] {ranks = 2 : i64, reduction = "mean"}
// ZERO-LABEL: func.func @train_step.stage1(

// Lowered: the stage and schedule survive as kernels and attributes.
// LOWER: module attributes {{{.*}}bmsys_rt.pipeline_micro_batches = 2 : i64, bmsys_rt.pipeline_stages = 2 : i64
// LOWER: bmsys_rt.weight @embed {{.*}}pp_stage = 0 : i64
// LOWER-LABEL: bmsys_rt.func @train_step.stage0
// LOWER-SAME: bmsys_rt.pipeline_stage = 0 : i64
// LOWER: bmsys_rt.input "input_ids.mb0"
// LOWER: bmsys_rt.input "input_ids.mb1"
// LOWER: bmsys_rt.launch "pp_send"(%{{.*}}) -> () with {channel = 0 : i64, micro_batch = 0 : i64, peer = 1 : i64}
// LOWER: bmsys_rt.launch "pp_recv"() -> (%{{.*}}) with {channel = 0 : i64, micro_batch = 0 : i64, peer = 1 : i64}
// LOWER: bmsys_rt.launch "pp_mean"
// LOWER: bmsys_rt.launch "pp_broadcast"() -> (%{{.*}}) with {root = 1 : i64}

// bmsys-train-pipeline pipeline-stages=2 micro-batches=3: the cut before the
// checkpoint policy and autodiff, the 1F1B schedule after the optimizer and before
// ZeRO, then the lowering.
// TRAIN: module attributes {{{.*}}bmsys_rt.pipeline_micro_batches = 3 : i64, bmsys_rt.pipeline_stages = 2 : i64
// TRAIN: bmsys_rt.weight @w0 {{.*}}pp_stage = 0 : i64
// TRAIN-LABEL: bmsys_rt.func @train_step.stage0
// TRAIN: bmsys_rt.input "input_ids.mb2"
// TRAIN: bmsys_rt.launch "pp_send"{{.*}}micro_batch = 2 : i64
// TRAIN: bmsys_rt.launch "pp_recv"{{.*}}micro_batch = 2 : i64
// TRAIN: bmsys_rt.launch "pp_mean"{{.*}}micro_batches = 3 : i64
// TRAIN: bmsys_rt.launch "reduce_scatter"
// TRAIN: bmsys_rt.launch "global_norm"{{.*}}pp_stages = 2 : i64, ranks = 2 : i64
// TRAIN: bmsys_rt.launch "pp_broadcast"() -> (%{{.*}}) with {root = 1 : i64}
// TRAIN-LABEL: bmsys_rt.func @train_step.stage1
// TRAIN-NOT: bmsys_rt.func @train_step{{ }}

// Checkpointing: a block's recomputation runs in its micro-batch's backward (after
// the gradient arrives), not in the forward, where it would keep every activation
// of the micro-batches in flight alive. Stage 0 runs F0 F1 B0 B1.
// CKPT-LABEL: func.func @train_step.stage0(
// CKPT: bmsys.pp_send {{.*}}micro_batch = 0
// CKPT-NOT: bmsys.rms_norm {{.*}}bmsys.recompute
// CKPT: bmsys.pp_send {{.*}}micro_batch = 1
// CKPT-NOT: bmsys.rms_norm {{.*}}bmsys.recompute
// CKPT: bmsys.pp_recv {{.*}}micro_batch = 0
// CKPT: bmsys.rms_norm {{.*}}bmsys.recompute
// CKPT: bmsys.pp_recv {{.*}}micro_batch = 1
// CKPT: bmsys.rms_norm {{.*}}bmsys.recompute
// CKPT-LABEL: func.func @train_step.stage1(
