// A two-layer model for the pipeline-parallel pass tests: vocab 16, hidden 8;
// each layer is a norm, a linear and rope (which reads the positions of the
// token ids) on a residual stream.
module {
  bmsys.param @embed : tensor<16x8xf32> from "m.safetensors"["model.embed_tokens.weight"]
  bmsys.param @ln0 : tensor<8xf32> from "m.safetensors"["model.layers.0.norm.weight"]
  bmsys.param @w0 : tensor<8x8xf32> from "m.safetensors"["model.layers.0.proj.weight"]
  bmsys.param @ln1 : tensor<8xf32> from "m.safetensors"["model.layers.1.norm.weight"]
  bmsys.param @w1 : tensor<8x8xf32> from "m.safetensors"["model.layers.1.proj.weight"]
  bmsys.param @norm : tensor<8xf32> from "m.safetensors"["model.norm.weight"]
  bmsys.param @head : tensor<16x8xf32> from "m.safetensors"["lm_head.weight"]
  func.func @forward(%ids: tensor<?x?xi64> {bmsys.name = "input_ids"}) -> (tensor<?x?x16xf32> {bmsys.name = "logits"}) {
    %pos = bmsys.positions %ids : (tensor<?x?xi64>) -> tensor<?x?xi64>
    %we = bmsys.weight @embed : tensor<16x8xf32>
    %x = bmsys.embedding %ids, %we : (tensor<?x?xi64>, tensor<16x8xf32>) -> tensor<?x?x8xf32>
    %h0 = bmsys.block "layers.0"(%x, %pos) : (tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32> {
    ^bb0(%a: tensor<?x?x8xf32>, %p: tensor<?x?xi64>):
      %g = bmsys.weight @ln0 : tensor<8xf32>
      %w = bmsys.weight @w0 : tensor<8x8xf32>
      %n = bmsys.rms_norm %a, %g {eps = 1.0e-05 : f64} : (tensor<?x?x8xf32>, tensor<8xf32>) -> tensor<?x?x8xf32>
      %l = bmsys.linear %n, %w : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
      %lr = bmsys.rope %l, %p {head_dim = 2 : i64, theta = 1.0e+04 : f64} : (tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
      %r = bmsys.add %a, %lr : tensor<?x?x8xf32>
      bmsys.yield %r : tensor<?x?x8xf32>
    }
    %h1 = bmsys.block "layers.1"(%h0, %pos) : (tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32> {
    ^bb0(%a: tensor<?x?x8xf32>, %p: tensor<?x?xi64>):
      %g = bmsys.weight @ln1 : tensor<8xf32>
      %w = bmsys.weight @w1 : tensor<8x8xf32>
      %n = bmsys.rms_norm %a, %g {eps = 1.0e-05 : f64} : (tensor<?x?x8xf32>, tensor<8xf32>) -> tensor<?x?x8xf32>
      %l = bmsys.linear %n, %w : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
      %lr = bmsys.rope %l, %p {head_dim = 2 : i64, theta = 1.0e+04 : f64} : (tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
      %r = bmsys.add %a, %lr : tensor<?x?x8xf32>
      bmsys.yield %r : tensor<?x?x8xf32>
    }
    %gn = bmsys.weight @norm : tensor<8xf32>
    %hn = bmsys.rms_norm %h1, %gn {eps = 1.0e-05 : f64} : (tensor<?x?x8xf32>, tensor<8xf32>) -> tensor<?x?x8xf32>
    %wh = bmsys.weight @head : tensor<16x8xf32>
    %logits = bmsys.linear %hn, %wh : (tensor<?x?x8xf32>, tensor<16x8xf32>) -> tensor<?x?x16xf32>
    return %logits : tensor<?x?x16xf32>
  }
}
