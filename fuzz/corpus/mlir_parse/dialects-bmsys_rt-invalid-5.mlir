bmsys_rt.func @f {
  %x = bmsys_rt.input "x" {dtype = f32, shape = [4]}
  // expected-error @+1 {{kernel 'silu' writes no output}}
  bmsys_rt.launch "silu" (%x) -> ()
}
