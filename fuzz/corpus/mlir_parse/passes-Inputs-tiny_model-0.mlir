// A one-block model for the training pass tests: embedding, rms_norm, linear,
// silu, residual add, and an lm_head tied to the embedding.
module {
  bmsys.param @emb : tensor<16x8xf32> from "m.safetensors"["emb"]
  bmsys.param @g : tensor<8xf32> from "m.safetensors"["g"]
  bmsys.param @w : tensor<8x8xf32> from "m.safetensors"["w"]
  func.func @forward(%ids: tensor<?x?xi64> {bmsys.name = "input_ids"}) -> (tensor<?x?x16xf32> {bmsys.name = "logits"}) {
    %e = bmsys.weight @emb : tensor<16x8xf32>
    %x = bmsys.embedding %ids, %e : (tensor<?x?xi64>, tensor<16x8xf32>) -> tensor<?x?x8xf32>
    %y = bmsys.block "layers.0" (%x) : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
    ^bb0(%a: tensor<?x?x8xf32>):
      %g = bmsys.weight @g : tensor<8xf32>
      %w = bmsys.weight @w : tensor<8x8xf32>
      %n = bmsys.rms_norm %a, %g {eps = 1.0e-5 : f64} : (tensor<?x?x8xf32>, tensor<8xf32>) -> tensor<?x?x8xf32>
      %l = bmsys.linear %n, %w : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
      %s = bmsys.silu %l : tensor<?x?x8xf32>
      %r = bmsys.add %s, %a : tensor<?x?x8xf32>
      bmsys.yield %r : tensor<?x?x8xf32>
    }
    %logits = bmsys.linear %y, %e : (tensor<?x?x8xf32>, tensor<16x8xf32>) -> tensor<?x?x16xf32>
    return %logits : tensor<?x?x16xf32>
  }
}
