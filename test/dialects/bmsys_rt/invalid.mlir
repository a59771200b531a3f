// RUN: bmsys-opt %s -split-input-file -verify-diagnostics

bmsys_rt.func @f {
  // expected-error @+1 {{shape entries must be integers, "B" or "S", got "T"}}
  %a = bmsys_rt.alloc {dtype = f32, shape = ["B", "T"]}
}

// -----

bmsys_rt.func @f {
  // expected-error @+1 {{has a negative dimension -2}}
  %a = bmsys_rt.input "x" {dtype = f32, shape = [-2]}
}

// -----

bmsys_rt.func @f {
  // expected-error @+1 {{unsupported element type 'f64'}}
  %a = bmsys_rt.alloc {dtype = f64, shape = [4]}
}

// -----

bmsys_rt.func @f {
  // expected-error @+1 {{'nowhere' does not name a bmsys_rt.weight}}
  %w = bmsys_rt.weight_ref @nowhere
}

// -----

bmsys_rt.func @f {
  %x = bmsys_rt.input "x" {dtype = f32, shape = [4]}
  // expected-error @+1 {{kernel 'silu' writes a buffer that is not an alloc, state or weight}}
  bmsys_rt.launch "silu" (%x) -> (%x)
}

// -----

bmsys_rt.func @f {
  %x = bmsys_rt.input "x" {dtype = f32, shape = [4]}
  // expected-error @+1 {{kernel 'silu' writes no output}}
  bmsys_rt.launch "silu" (%x) -> ()
}
