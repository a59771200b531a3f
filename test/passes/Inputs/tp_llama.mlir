// A one-layer Llama-shaped model for the tensor-parallel pass tests: vocab 16,
// hidden 8, 4 query heads and 2 key/value heads of 2, MLP width 12.
module {
  bmsys.param @embed : tensor<16x8xf32> from "m.safetensors"["model.embed_tokens.weight"]
  bmsys.param @ln1 : tensor<8xf32> from "m.safetensors"["model.layers.0.input_layernorm.weight"]
  bmsys.param @q : tensor<8x8xf32> from "m.safetensors"["model.layers.0.self_attn.q_proj.weight"]
  bmsys.param @k : tensor<4x8xf32> from "m.safetensors"["model.layers.0.self_attn.k_proj.weight"]
  bmsys.param @v : tensor<4x8xf32> from "m.safetensors"["model.layers.0.self_attn.v_proj.weight"]
  bmsys.param @o : tensor<8x8xf32> from "m.safetensors"["model.layers.0.self_attn.o_proj.weight"]
  bmsys.param @ln2 : tensor<8xf32> from "m.safetensors"["model.layers.0.post_attention_layernorm.weight"]
  bmsys.param @gate : tensor<12x8xf32> from "m.safetensors"["model.layers.0.mlp.gate_proj.weight"]
  bmsys.param @up : tensor<12x8xf32> from "m.safetensors"["model.layers.0.mlp.up_proj.weight"]
  bmsys.param @down : tensor<8x12xf32> from "m.safetensors"["model.layers.0.mlp.down_proj.weight"]
  bmsys.param @norm : tensor<8xf32> from "m.safetensors"["model.norm.weight"]
  bmsys.param @head : tensor<16x8xf32> from "m.safetensors"["lm_head.weight"]
  func.func @forward(%ids: tensor<?x?xi64> {bmsys.name = "input_ids"}) -> (tensor<?x?x16xf32> {bmsys.name = "logits"}) {
    %pos = bmsys.positions %ids : (tensor<?x?xi64>) -> tensor<?x?xi64>
    %we = bmsys.weight @embed : tensor<16x8xf32>
    %x = bmsys.embedding %ids, %we : (tensor<?x?xi64>, tensor<16x8xf32>) -> tensor<?x?x8xf32>
    %h = bmsys.block "layers.0"(%x, %pos) : (tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32> {
    ^bb0(%a: tensor<?x?x8xf32>, %p: tensor<?x?xi64>):
      %g1 = bmsys.weight @ln1 : tensor<8xf32>
      %wq = bmsys.weight @q : tensor<8x8xf32>
      %wk = bmsys.weight @k : tensor<4x8xf32>
      %wv = bmsys.weight @v : tensor<4x8xf32>
      %wo = bmsys.weight @o : tensor<8x8xf32>
      %g2 = bmsys.weight @ln2 : tensor<8xf32>
      %wg = bmsys.weight @gate : tensor<12x8xf32>
      %wu = bmsys.weight @up : tensor<12x8xf32>
      %wd = bmsys.weight @down : tensor<8x12xf32>
      %n1 = bmsys.rms_norm %a, %g1 {eps = 1.0e-05 : f64} : (tensor<?x?x8xf32>, tensor<8xf32>) -> tensor<?x?x8xf32>
      %q = bmsys.linear %n1, %wq : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
      %k = bmsys.linear %n1, %wk : (tensor<?x?x8xf32>, tensor<4x8xf32>) -> tensor<?x?x4xf32>
      %v = bmsys.linear %n1, %wv : (tensor<?x?x8xf32>, tensor<4x8xf32>) -> tensor<?x?x4xf32>
      %qr = bmsys.rope %q, %p {head_dim = 2 : i64, theta = 1.0e+04 : f64} : (tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
      %kr = bmsys.rope %k, %p {head_dim = 2 : i64, theta = 1.0e+04 : f64} : (tensor<?x?x4xf32>, tensor<?x?xi64>) -> tensor<?x?x4xf32>
      %att = bmsys.attention %qr, %kr, %v {causal, head_dim = 2 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 0.7071 : f64} : (tensor<?x?x8xf32>, tensor<?x?x4xf32>, tensor<?x?x4xf32>) -> tensor<?x?x8xf32>
      %ao = bmsys.linear %att, %wo : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
      %r1 = bmsys.add %a, %ao : tensor<?x?x8xf32>
      %n2 = bmsys.rms_norm %r1, %g2 {eps = 1.0e-05 : f64} : (tensor<?x?x8xf32>, tensor<8xf32>) -> tensor<?x?x8xf32>
      %gt = bmsys.linear %n2, %wg : (tensor<?x?x8xf32>, tensor<12x8xf32>) -> tensor<?x?x12xf32>
      %sg = bmsys.silu %gt : tensor<?x?x12xf32>
      %u = bmsys.linear %n2, %wu : (tensor<?x?x8xf32>, tensor<12x8xf32>) -> tensor<?x?x12xf32>
      %m = bmsys.mul %sg, %u : tensor<?x?x12xf32>
      %d = bmsys.linear %m, %wd : (tensor<?x?x12xf32>, tensor<8x12xf32>) -> tensor<?x?x8xf32>
      %r2 = bmsys.add %r1, %d : tensor<?x?x8xf32>
      bmsys.yield %r2 : tensor<?x?x8xf32>
    }
    %gn = bmsys.weight @norm : tensor<8xf32>
    %hn = bmsys.rms_norm %h, %gn {eps = 1.0e-05 : f64} : (tensor<?x?x8xf32>, tensor<8xf32>) -> tensor<?x?x8xf32>
    %wh = bmsys.weight @head : tensor<16x8xf32>
    %logits = bmsys.linear %hn, %wh : (tensor<?x?x8xf32>, tensor<16x8xf32>) -> tensor<?x?x16xf32>
    return %logits : tensor<?x?x16xf32>
  }
}
