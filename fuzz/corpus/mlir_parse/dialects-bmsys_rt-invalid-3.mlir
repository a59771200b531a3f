bmsys_rt.func @f {
  // expected-error @+1 {{'nowhere' does not name a bmsys_rt.weight}}
  %w = bmsys_rt.weight_ref @nowhere
}
