func.func @f(%x: tensor<?x?x16xf32>, %ids: tensor<?xi64>) -> tensor<f32> {
  // expected-error @+1 {{expects logits [batch, seq, vocab] and labels [batch, seq]}}
  %y = bmsys.cross_entropy %x, %ids : (tensor<?x?x16xf32>, tensor<?xi64>) -> tensor<f32>
  return %y : tensor<f32>
}
