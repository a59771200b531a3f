bmsys_rt.func @f {
  // expected-error @+1 {{unsupported element type 'f64'}}
  %a = bmsys_rt.alloc {dtype = f64, shape = [4]}
}
