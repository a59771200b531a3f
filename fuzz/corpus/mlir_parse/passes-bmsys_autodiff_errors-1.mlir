module {
  // expected-error @+1 {{bmsys-autodiff: 'forward' has no result named "logits"}}
  func.func @forward(%ids: tensor<?x?xi64>) -> tensor<?x?xi64> {
    return %ids : tensor<?x?xi64>
  }
}
