func.func @f(%ids: tensor<?x?xi64>, %t: tensor<16xf32>) -> tensor<?x?x16xf32> {
  // expected-error @+1 {{table must be [vocab, hidden]}}
  %y = bmsys.embedding %ids, %t : (tensor<?x?xi64>, tensor<16xf32>) -> tensor<?x?x16xf32>
  return %y : tensor<?x?x16xf32>
}
