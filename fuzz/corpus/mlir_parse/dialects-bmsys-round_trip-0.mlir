// Every bmsys op parses, verifies and prints back to the same form.

bmsys.param @wte : tensor<16x8xf32> from "model.safetensors"["transformer.wte.weight"]
bmsys.param @g : tensor<8xf32> from "model.safetensors"["g"]
bmsys.param @b : tensor<8xf32> from "model.safetensors"["b"]
bmsys.param @w : tensor<24x8xf32> from "model.safetensors"["w"]
bmsys.param @wt : tensor<8x24xf32> from "model.safetensors"["wt"]
bmsys.param @bias : tensor<24xf32> from "model.safetensors"["bias"]
bmsys.kv_cache @kv {head_dim = 4 : i64, max_batch = 1 : i64, max_seq = 16 : i64, num_kv_heads = 1 : i64}

func.func @forward(%ids: tensor<?x?xi64>) -> (tensor<?x?x8xf32>, tensor<f32>) {
  %pos = bmsys.positions %ids : (tensor<?x?xi64>) -> tensor<?x?xi64>
  %wte = bmsys.weight @wte : tensor<16x8xf32>
  %x = bmsys.embedding %ids, %wte : (tensor<?x?xi64>, tensor<16x8xf32>) -> tensor<?x?x8xf32>
  %y = bmsys.block "layers.0" (%x, %pos) : (tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32> {
  ^bb0(%a: tensor<?x?x8xf32>, %p: tensor<?x?xi64>):
    %g = bmsys.weight @g : tensor<8xf32>
    %b = bmsys.weight @b : tensor<8xf32>
    %w = bmsys.weight @w : tensor<24x8xf32>
    %wt = bmsys.weight @wt : tensor<8x24xf32>
    %bias = bmsys.weight @bias : tensor<24xf32>
    %n = bmsys.layer_norm %a, %g, %b {eps = 1.0e-5 : f64} : (tensor<?x?x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<?x?x8xf32>
    %r = bmsys.rms_norm %n, %g {eps = 1.0e-6 : f64} : (tensor<?x?x8xf32>, tensor<8xf32>) -> tensor<?x?x8xf32>
    %qkv = bmsys.linear %r, %w : (tensor<?x?x8xf32>, tensor<24x8xf32>) -> tensor<?x?x24xf32>
    %qkv2 = bmsys.linear %r, %wt, %bias {weight_transposed} : (tensor<?x?x8xf32>, tensor<8x24xf32>, tensor<24xf32>) -> tensor<?x?x24xf32>
    %q = bmsys.slice %qkv {offset = 0, size = 8} : (tensor<?x?x24xf32>) -> tensor<?x?x8xf32>
    %k = bmsys.slice %qkv2 {offset = 8, size = 4} : (tensor<?x?x24xf32>) -> tensor<?x?x4xf32>
    %v = bmsys.slice %qkv2 {offset = 12, size = 4} : (tensor<?x?x24xf32>) -> tensor<?x?x4xf32>
    %qr = bmsys.rope %q, %p {head_dim = 4, theta = 1.0e4 : f64} : (tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
    %o = bmsys.attention %qr, %k, %v cache @kv {num_heads = 2, num_kv_heads = 1, head_dim = 4, scale = 0.5 : f64, causal} : (tensor<?x?x8xf32>, tensor<?x?x4xf32>, tensor<?x?x4xf32>) -> tensor<?x?x8xf32>
    %ge = bmsys.gelu %o {approximate = "tanh"} : tensor<?x?x8xf32>
    %si = bmsys.silu %ge : tensor<?x?x8xf32>
    %m = bmsys.mul %si, %a : tensor<?x?x8xf32>
    %s = bmsys.add %m, %a : tensor<?x?x8xf32>
    bmsys.yield %s : tensor<?x?x8xf32>
  }
  %logits = bmsys.linear %y, %wte : (tensor<?x?x8xf32>, tensor<16x8xf32>) -> tensor<?x?x16xf32>
  %loss = bmsys.cross_entropy %logits, %ids {shift} : (tensor<?x?x16xf32>, tensor<?x?xi64>) -> tensor<f32>
  return %y, %loss : tensor<?x?x8xf32>, tensor<f32>
}
