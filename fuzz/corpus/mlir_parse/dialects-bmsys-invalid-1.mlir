bmsys.param @p : tensor<8xf32> from "m.safetensors"["p"]
func.func @f() -> tensor<4xf32> {
  // expected-error @+1 {{result type 'tensor<4xf32>' differs from parameter 'p' of type 'tensor<8xf32>'}}
  %w = bmsys.weight @p : tensor<4xf32>
  return %w : tensor<4xf32>
}
