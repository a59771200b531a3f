bmsys_rt.func @f {
  // expected-error @+1 {{shape entries must be integers, "B" or "S", got "T"}}
  %a = bmsys_rt.alloc {dtype = f32, shape = ["B", "T"]}
}
