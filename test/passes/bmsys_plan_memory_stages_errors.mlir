// RUN: bmsys-opt %s --split-input-file --verify-diagnostics --bmsys-plan-memory

// A state belongs to one stage's ranks: referenced by two stages it would need
// to be in both pools.
module attributes {bmsys_rt.max_batch = 2 : i64, bmsys_rt.max_seq = 4 : i64, bmsys_rt.pipeline_stages = 2 : i64, bmsys_rt.pipeline_micro_batches = 1 : i64, bmsys_rt.state_bytes = 256 : i64} {
  bmsys_rt.state @m {bytes = 256 : i64, dtype = f32, offset = 0 : i64, role = "optimizer", shape = array<i64: 64>}
  bmsys_rt.func @train_step.stage0 attributes {bmsys_rt.pipeline_stage = 0 : i64} {
    %m = bmsys_rt.state_ref @m
    %y = bmsys_rt.alloc {dtype = f32, shape = [64]}
    bmsys_rt.launch "silu" (%m) -> (%y)
  }
  bmsys_rt.func @train_step.stage1 attributes {bmsys_rt.pipeline_stage = 1 : i64} {
    // expected-error @+1 {{bmsys-plan-memory: state 'm' is used by pipeline stages 0 and 1; a state belongs to one stage's ranks}}
    %m = bmsys_rt.state_ref @m
    %y = bmsys_rt.alloc {dtype = f32, shape = [64]}
    bmsys_rt.launch "silu" (%m) -> (%y)
  }
}

// -----

// A stage function of a stage the module does not have.
module attributes {bmsys_rt.max_batch = 2 : i64, bmsys_rt.max_seq = 4 : i64, bmsys_rt.pipeline_stages = 2 : i64, bmsys_rt.pipeline_micro_batches = 1 : i64, bmsys_rt.state_bytes = 0 : i64} {
  // expected-error @+1 {{bmsys-plan-memory: pipeline stage 2 outside the module's 2 stages (bmsys_rt.pipeline_stages)}}
  bmsys_rt.func @train_step.stage2 attributes {bmsys_rt.pipeline_stage = 2 : i64} {
    %y = bmsys_rt.alloc {dtype = f32, shape = [64]}
    %z = bmsys_rt.alloc {dtype = f32, shape = [64]}
    bmsys_rt.launch "silu" (%y) -> (%z)
  }
}
