// RUN: bmsys-translate --bmsys-to-artifact %s --split-input-file --verify-diagnostics -o /dev/null
// Outside --verify-diagnostics too, a refused module is not printed after the error.
// RUN: echo 'module {}' > %t.mlir && not bmsys-translate --bmsys-to-artifact %t.mlir -o /dev/null 2>&1 | FileCheck %s --check-prefix=QUIET
// QUIET: error: bmsys-to-artifact: expects a lowered and planned bmsys_rt module
// QUIET-NOT: see current operation

// A module that was never lowered.
// expected-error @+1 {{bmsys-to-artifact: expects a lowered and planned bmsys_rt module}}
module {
}

// -----

// A lowered module whose memory was not planned.
module attributes {bmsys_rt.max_batch = 1 : i64, bmsys_rt.max_seq = 4 : i64, bmsys_rt.activation_bytes = 0 : i64, bmsys_rt.state_bytes = 0 : i64} {
  bmsys_rt.func @forward {
    %x = bmsys_rt.input "x" {dtype = f32, shape = ["B", "S", 8]}
    // expected-error @+1 {{has no offset in the activation pool; run bmsys-plan-memory}}
    %a = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 8]}
    bmsys_rt.launch "silu" (%x) -> (%a)
    bmsys_rt.output "a" %a
  }
}
