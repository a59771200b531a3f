// RUN: bmsys-opt %s --split-input-file --verify-diagnostics --bmsys-autodiff

// expected-error @+1 {{bmsys-autodiff: no function 'forward' to differentiate}}
module {
}

// -----

module {
  // expected-error @+1 {{bmsys-autodiff: 'forward' has no result named "logits"}}
  func.func @forward(%ids: tensor<?x?xi64>) -> tensor<?x?xi64> {
    return %ids : tensor<?x?xi64>
  }
}
