bmsys_rt.func @f {
  // expected-error @+1 {{has a negative dimension -2}}
  %a = bmsys_rt.input "x" {dtype = f32, shape = [-2]}
}
