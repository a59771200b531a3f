// RUN: bmsys-opt %s --bmsys-plan-memory | FileCheck %s
// RUN: bmsys-opt %S/Inputs/pp_two_layers.mlir --bmsys-pipeline-parallel="stages=2 micro-batches=2" --bmsys-autodiff --bmsys-optimizer --bmsys-pipeline-schedule --bmsys-inline-blocks --bmsys-bound-shapes="max-batch=2 max-seq=8" --bmsys-lower-to-rt --bmsys-plan-memory | FileCheck %s --check-prefix=PP
// RUN: bmsys-opt %S/Inputs/pp_two_layers.mlir --bmsys-pipeline-parallel="stages=2 micro-batches=2" --bmsys-autodiff --bmsys-optimizer --bmsys-pipeline-schedule --bmsys-inline-blocks --bmsys-bound-shapes="max-batch=2 max-seq=8" --bmsys-lower-to-rt --bmsys-plan-memory --bmsys-memory-report -o /dev/null | FileCheck %s --check-prefix=REPORT
// RUN: bmsys-opt %S/Inputs/pp_two_layers.mlir --bmsys-autodiff --bmsys-optimizer --bmsys-inline-blocks --bmsys-bound-shapes="max-batch=4 max-seq=8" --bmsys-lower-to-rt --bmsys-plan-memory | FileCheck %s --check-prefix=ONE

// Pipeline parallelism: each stage's ranks hold only that stage's pools. A state
// goes to the pool of the stage whose function references it (pp_stage), each
// stage's states laid out from offset 0 (so stage 0's and stage 1's overlap);
// the KV cache of `forward` (no stage; a pipelined artifact does not run it) is
// in no stage's pool, and a host state (bmsys-offload) in none either but keeps
// its stage. Stage pools: activations 256 / 1024 (each stage function's peak),
// states 256 / 1024; the module-wide sizes are the largest extents.
// CHECK: module attributes {bmsys_rt.activation_bytes = 1024 : i64, {{.*}}bmsys_rt.stage_activation_bytes = array<i64: 256, 1024>, bmsys_rt.stage_state_bytes = array<i64: 256, 1024>, bmsys_rt.state_bytes = 1024 : i64}
// CHECK: bmsys_rt.state @kv {bytes = 512 : i64, dtype = f32, offset = 0 : i64, shape
// CHECK-NOT: pp_stage
// CHECK: bmsys_rt.state @a.exp_avg {bytes = 256 : i64, dtype = f32, offset = 0 : i64, pp_stage = 0 : i64
// CHECK: bmsys_rt.state @b.exp_avg {bytes = 512 : i64, dtype = f32, offset = 0 : i64, pp_stage = 1 : i64
// CHECK: bmsys_rt.state @b.exp_avg_sq {bytes = 512 : i64, dtype = f32, offset = 512 : i64, pp_stage = 1 : i64
// CHECK: bmsys_rt.state @a.host {{{.*}}placement = "host", pp_stage = 0 : i64
module attributes {bmsys_rt.max_batch = 2 : i64, bmsys_rt.max_seq = 4 : i64, bmsys_rt.pipeline_stages = 2 : i64, bmsys_rt.pipeline_micro_batches = 1 : i64, bmsys_rt.state_bytes = 1792 : i64} {
  bmsys_rt.state @kv {bytes = 512 : i64, dtype = f32, offset = 0 : i64, shape = array<i64: 2, 4, 16>}
  bmsys_rt.state @a.exp_avg {bytes = 256 : i64, dtype = f32, offset = 512 : i64, role = "optimizer", shape = array<i64: 64>}
  bmsys_rt.state @b.exp_avg {bytes = 512 : i64, dtype = f32, offset = 768 : i64, role = "optimizer", shape = array<i64: 128>}
  bmsys_rt.state @b.exp_avg_sq {bytes = 512 : i64, dtype = f32, offset = 1280 : i64, role = "optimizer", shape = array<i64: 128>}
  bmsys_rt.state @a.host {bytes = 256 : i64, dtype = f32, offset = 0 : i64, placement = "host", role = "offload", shape = array<i64: 64>}
  bmsys_rt.func @forward {
    %x = bmsys_rt.input "x" {dtype = f32, shape = ["B", "S", 16]}
    %k = bmsys_rt.state_ref @kv
    bmsys_rt.launch "silu" (%x) -> (%k)
  }
  bmsys_rt.func @train_step.stage0 attributes {bmsys_rt.pipeline_stage = 0 : i64} {
    %m = bmsys_rt.state_ref @a.exp_avg
    %h = bmsys_rt.state_ref @a.host
    %y = bmsys_rt.alloc {dtype = f32, shape = [64]}
    bmsys_rt.launch "silu" (%m) -> (%y)
    bmsys_rt.launch "to_host" (%y) -> (%h)
  }
  bmsys_rt.func @train_step.stage1 attributes {bmsys_rt.pipeline_stage = 1 : i64} {
    %m = bmsys_rt.state_ref @b.exp_avg
    %v = bmsys_rt.state_ref @b.exp_avg_sq
    %y = bmsys_rt.alloc {dtype = f32, shape = [128]}
    %z = bmsys_rt.alloc {dtype = f32, shape = [128]}
    bmsys_rt.launch "silu" (%m) -> (%y)
    bmsys_rt.launch "silu" (%v) -> (%z)
    bmsys_rt.launch "add" (%y, %z) -> (%m)
  }
}

// The two-layer model (vocab 16, hidden 8) with AdamW, PP=2: stage 0 holds the
// embedding (16x8), ln0 and w0; stage 1 ln1, w1, the final norm and the head
// (16x8). Each AdamW moment is 256-byte aligned: stage 0's states are 2 x (512 +
// 256 + 256) = 2048 bytes and stage 1's 2 x (256 + 256 + 256 + 512) = 2560, where
// one rank of the unsplit model (ONE, the same global batch) holds 4608 = 2048 +
// 2560: each stage's rank holds about half. Both stages' states start at 0.
// PP: module attributes {{{.*}}bmsys_rt.stage_activation_bytes = array<i64: 4096, 6400>, bmsys_rt.stage_state_bytes = array<i64: 2048, 2560>, bmsys_rt.state_bytes = 2560 : i64}
// PP: bmsys_rt.state @embed.exp_avg {{{.*}}offset = 0 : i64, pp_stage = 0 : i64
// PP: bmsys_rt.state @w0.exp_avg_sq {{{.*}}offset = 1792 : i64, pp_stage = 0 : i64
// PP: bmsys_rt.state @ln1.exp_avg {{{.*}}offset = 0 : i64, pp_stage = 1 : i64
// PP: bmsys_rt.state @head.exp_avg_sq {{{.*}}offset = 2048 : i64, pp_stage = 1 : i64
// ONE: module attributes {{{.*}}bmsys_rt.state_bytes = 4608 : i64}

// The memory report: one table per stage, each with only its stage's parameters,
// optimizer state and pools.
// REPORT: bmsys memory report (max_batch=2, max_seq=8, per rank of 2, pipeline stage 0 of 2)
// REPORT: parameters {{ *}}800 B {{.*}} 3 tensors
// REPORT: optimizer_state {{ *}}1600 B
// REPORT: total {{.*}} activation pool 4096 B, state pool 2048 B
// REPORT: bmsys memory report (max_batch=2, max_seq=8, per rank of 2, pipeline stage 1 of 2)
// REPORT: parameters {{ *}}832 B {{.*}} 4 tensors
// REPORT: optimizer_state {{ *}}1664 B
// REPORT: total {{.*}} activation pool 6400 B, state pool 2560 B
