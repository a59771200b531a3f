module attributes {bmsys.config = "{\0A  \22architectures\22: [\0A    \22LlamaForCausalLM\22\0A  ],\0A  \22attention_bias\22: false,\0A  \22attention_dropout\22: 0.0,\0A  \22bos_token_id\22: 1,\0A  \22dtype\22: \22float32\22,\0A  \22eos_token_id\22: 2,\0A  \22head_dim\22: 16,\0A  \22hidden_act\22: \22silu\22,\0A  \22hidden_size\22: 64,\0A  \22initializer_range\22: 0.02,\0A  \22intermediate_size\22: 176,\0A  \22max_position_embeddings\22: 64,\0A  \22mlp_bias\22: false,\0A  \22model_type\22: \22llama\22,\0A  \22num_attention_heads\22: 4,\0A  \22num_hidden_layers\22: 2,\0A  \22num_key_value_heads\22: 2,\0A  \22pad_token_id\22: null,\0A  \22pretraining_tp\22: 1,\0A  \22rms_norm_eps\22: 1e-05,\0A  \22rope_parameters\22: {\0A    \22rope_theta\22: 10000.0,\0A    \22rope_type\22: \22default\22\0A  },\0A  \22tie_word_embeddings\22: false,\0A  \22transformers_version\22: \225.17.0\22,\0A  \22use_cache\22: true,\0A  \22vocab_size\22: 256\0A}\0A", bmsys.max_positions = 64 : i64, bmsys.model_type = "llama"} {
  bmsys.param @model.embed_tokens.weight : tensor<256x64xf32> from "/work/main/test/data/llama-tiny/model.safetensors"["model.embed_tokens.weight"]
  bmsys.param @model.layers.0.input_layernorm.weight : tensor<64xf32> from "/work/main/test/data/llama-tiny/model.safetensors"["model.layers.0.input_layernorm.weight"]
  bmsys.param @model.layers.0.self_attn.q_proj.weight : tensor<64x64xf32> from "/work/main/test/data/llama-tiny/model.safetensors"["model.layers.0.self_attn.q_proj.weight"]
  bmsys.param @model.layers.0.self_attn.k_proj.weight : tensor<32x64xf32> from "/work/main/test/data/llama-tiny/model.safetensors"["model.layers.0.self_attn.k_proj.weight"]
  bmsys.param @model.layers.0.self_attn.v_proj.weight : tensor<32x64xf32> from "/work/main/test/data/llama-tiny/model.safetensors"["model.layers.0.self_attn.v_proj.weight"]
  bmsys.param @model.layers.0.self_attn.o_proj.weight : tensor<64x64xf32> from "/work/main/test/data/llama-tiny/model.safetensors"["model.layers.0.self_attn.o_proj.weight"]
  bmsys.param @model.layers.0.post_attention_layernorm.weight : tensor<64xf32> from "/work/main/test/data/llama-tiny/model.safetensors"["model.layers.0.post_attention_layernorm.weight"]
  bmsys.param @model.layers.0.mlp.gate_proj.weight : tensor<176x64xf32> from "/work/main/test/data/llama-tiny/model.safetensors"["model.layers.0.mlp.gate_proj.weight"]
  bmsys.param @model.layers.0.mlp.up_proj.weight : tensor<176x64xf32> from "/work/main/test/data/llama-tiny/model.safetensors"["model.layers.0.mlp.up_proj.weight"]
  bmsys.param @model.layers.0.mlp.down_proj.weight : tensor<64x176xf32> from "/work/main/test/data/llama-tiny/model.safetensors"["model.layers.0.mlp.down_proj.weight"]
  bmsys.param @model.layers.1.input_layernorm.weight : tensor<64xf32> from "/work/main/test/data/llama-tiny/model.safetensors"["model.layers.1.input_layernorm.weight"]
  bmsys.param @model.layers.1.self_attn.q_proj.weight : tensor<64x64xf32> from "/work/main/test/data/llama-tiny/model.safetensors"["model.layers.1.self_attn.q_proj.weight"]
  bmsys.param @model.layers.1.self_attn.k_proj.weight : tensor<32x64xf32> from "/work/main/test/data/llama-tiny/model.safetensors"["model.layers.1.self_attn.k_proj.weight"]
  bmsys.param @model.layers.1.self_attn.v_proj.weight : tensor<32x64xf32> from "/work/main/test/data/llama-tiny/model.safetensors"["model.layers.1.self_attn.v_proj.weight"]
  bmsys.param @model.layers.1.self_attn.o_proj.weight : tensor<64x64xf32> from "/work/main/test/data/llama-tiny/model.safetensors"["model.layers.1.self_attn.o_proj.weight"]
  bmsys.param @model.layers.1.post_attention_layernorm.weight : tensor<64xf32> from "/work/main/test/data/llama-tiny/model.safetensors"["model.layers.1.post_attention_layernorm.weight"]
  bmsys.param @model.layers.1.mlp.gate_proj.weight : tensor<176x64xf32> from "/work/main/test/data/llama-tiny/model.safetensors"["model.layers.1.mlp.gate_proj.weight"]
  bmsys.param @model.layers.1.mlp.up_proj.weight : tensor<176x64xf32> from "/work/main/test/data/llama-tiny/model.safetensors"["model.layers.1.mlp.up_proj.weight"]
  bmsys.param @model.layers.1.mlp.down_proj.weight : tensor<64x176xf32> from "/work/main/test/data/llama-tiny/model.safetensors"["model.layers.1.mlp.down_proj.weight"]
  bmsys.param @model.norm.weight : tensor<64xf32> from "/work/main/test/data/llama-tiny/model.safetensors"["model.norm.weight"]
  bmsys.param @lm_head.weight : tensor<256x64xf32> from "/work/main/test/data/llama-tiny/model.safetensors"["lm_head.weight"]
  func.func @forward(%arg0: tensor<?x?xi64> {bmsys.name = "input_ids"}) -> (tensor<?x?x256xf32> {bmsys.name = "logits"}) {
    %0 = bmsys.positions %arg0 : (tensor<?x?xi64>) -> tensor<?x?xi64>
    %1 = bmsys.weight @model.embed_tokens.weight : tensor<256x64xf32>
    %2 = bmsys.embedding %arg0, %1 : (tensor<?x?xi64>, tensor<256x64xf32>) -> tensor<?x?x64xf32>
    %3 = bmsys.block "layers.0"(%2, %0) : (tensor<?x?x64xf32>, tensor<?x?xi64>) -> tensor<?x?x64xf32> {
    ^bb0(%arg1: tensor<?x?x64xf32>, %arg2: tensor<?x?xi64>):
      %9 = bmsys.weight @model.layers.0.input_layernorm.weight : tensor<64xf32>
      %10 = bmsys.weight @model.layers.0.self_attn.q_proj.weight : tensor<64x64xf32>
      %11 = bmsys.weight @model.layers.0.self_attn.k_proj.weight : tensor<32x64xf32>
      %12 = bmsys.weight @model.layers.0.self_attn.v_proj.weight : tensor<32x64xf32>
      %13 = bmsys.weight @model.layers.0.self_attn.o_proj.weight : tensor<64x64xf32>
      %14 = bmsys.weight @model.layers.0.post_attention_layernorm.weight : tensor<64xf32>
      %15 = bmsys.weight @model.layers.0.mlp.gate_proj.weight : tensor<176x64xf32>
      %16 = bmsys.weight @model.layers.0.mlp.up_proj.weight : tensor<176x64xf32>
      %17 = bmsys.weight @model.layers.0.mlp.down_proj.weight : tensor<64x176xf32>
      %18 = bmsys.rms_norm %arg1, %9 {eps = 1.000000e-05 : f64} : (tensor<?x?x64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
      %19 = bmsys.linear %18, %10 : (tensor<?x?x64xf32>, tensor<64x64xf32>) -> tensor<?x?x64xf32>
      %20 = bmsys.linear %18, %11 : (tensor<?x?x64xf32>, tensor<32x64xf32>) -> tensor<?x?x32xf32>
      %21 = bmsys.linear %18, %12 : (tensor<?x?x64xf32>, tensor<32x64xf32>) -> tensor<?x?x32xf32>
      %22 = bmsys.rope %19, %arg2 {head_dim = 16 : i64, theta = 1.000000e+04 : f64} : (tensor<?x?x64xf32>, tensor<?x?xi64>) -> tensor<?x?x64xf32>
      %23 = bmsys.rope %20, %arg2 {head_dim = 16 : i64, theta = 1.000000e+04 : f64} : (tensor<?x?x32xf32>, tensor<?x?xi64>) -> tensor<?x?x32xf32>
      %24 = bmsys.attention %22, %23, %21 {causal, head_dim = 16 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 2.500000e-01 : f64} : (tensor<?x?x64xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>) -> tensor<?x?x64xf32>
      %25 = bmsys.linear %24, %13 : (tensor<?x?x64xf32>, tensor<64x64xf32>) -> tensor<?x?x64xf32>
      %26 = bmsys.add %arg1, %25 : tensor<?x?x64xf32>
      %27 = bmsys.rms_norm %26, %14 {eps = 1.000000e-05 : f64} : (tensor<?x?x64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
      %28 = bmsys.linear %27, %15 : (tensor<?x?x64xf32>, tensor<176x64xf32>) -> tensor<?x?x176xf32>
      %29 = bmsys.silu %28 : tensor<?x?x176xf32>
      %30 = bmsys.linear %27, %16 : (tensor<?x?x64xf32>, tensor<176x64xf32>) -> tensor<?x?x176xf32>
      %31 = bmsys.mul %29, %30 : tensor<?x?x176xf32>
      %32 = bmsys.linear %31, %17 : (tensor<?x?x176xf32>, tensor<64x176xf32>) -> tensor<?x?x64xf32>
      %33 = bmsys.add %26, %32 : tensor<?x?x64xf32>
      bmsys.yield %33 : tensor<?x?x64xf32>
    }
    %4 = bmsys.block "layers.1"(%3, %0) : (tensor<?x?x64xf32>, tensor<?x?xi64>) -> tensor<?x?x64xf32> {
    ^bb0(%arg1: tensor<?x?x64xf32>, %arg2: tensor<?x?xi64>):
      %9 = bmsys.weight @model.layers.1.input_layernorm.weight : tensor<64xf32>
      %10 = bmsys.weight @model.layers.1.self_attn.q_proj.weight : tensor<64x64xf32>
      %11 = bmsys.weight @model.layers.1.self_attn.k_proj.weight : tensor<32x64xf32>
      %12 = bmsys.weight @model.layers.1.self_attn.v_proj.weight : tensor<32x64xf32>
      %13 = bmsys.weight @model.layers.1.self_attn.o_proj.weight : tensor<64x64xf32>
      %14 = bmsys.weight @model.layers.1.post_attention_layernorm.weight : tensor<64xf32>
      %15 = bmsys.weight @model.layers.1.mlp.gate_proj.weight : tensor<176x64xf32>
      %16 = bmsys.weight @model.layers.1.mlp.up_proj.weight : tensor<176x64xf32>
      %17 = bmsys.weight @model.layers.1.mlp.down_proj.weight : tensor<64x176xf32>
      %18 = bmsys.rms_norm %arg1, %9 {eps = 1.000000e-05 : f64} : (tensor<?x?x64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
      %19 = bmsys.linear %18, %10 : (tensor<?x?x64xf32>, tensor<64x64xf32>) -> tensor<?x?x64xf32>
      %20 = bmsys.linear %18, %11 : (tensor<?x?x64xf32>, tensor<32x64xf32>) -> tensor<?x?x32xf32>
      %21 = bmsys.linear %18, %12 : (tensor<?x?x64xf32>, tensor<32x64xf32>) -> tensor<?x?x32xf32>
      %22 = bmsys.rope %19, %arg2 {head_dim = 16 : i64, theta = 1.000000e+04 : f64} : (tensor<?x?x64xf32>, tensor<?x?xi64>) -> tensor<?x?x64xf32>
      %23 = bmsys.rope %20, %arg2 {head_dim = 16 : i64, theta = 1.000000e+04 : f64} : (tensor<?x?x32xf32>, tensor<?x?xi64>) -> tensor<?x?x32xf32>
      %24 = bmsys.attention %22, %23, %21 {causal, head_dim = 16 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 2.500000e-01 : f64} : (tensor<?x?x64xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>) -> tensor<?x?x64xf32>
      %25 = bmsys.linear %24, %13 : (tensor<?x?x64xf32>, tensor<64x64xf32>) -> tensor<?x?x64xf32>
      %26 = bmsys.add %arg1, %25 : tensor<?x?x64xf32>
      %27 = bmsys.rms_norm %26, %14 {eps = 1.000000e-05 : f64} : (tensor<?x?x64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
      %28 = bmsys.linear %27, %15 : (tensor<?x?x64xf32>, tensor<176x64xf32>) -> tensor<?x?x176xf32>
      %29 = bmsys.silu %28 : tensor<?x?x176xf32>
      %30 = bmsys.linear %27, %16 : (tensor<?x?x64xf32>, tensor<176x64xf32>) -> tensor<?x?x176xf32>
      %31 = bmsys.mul %29, %30 : tensor<?x?x176xf32>
      %32 = bmsys.linear %31, %17 : (tensor<?x?x176xf32>, tensor<64x176xf32>) -> tensor<?x?x64xf32>
      %33 = bmsys.add %26, %32 : tensor<?x?x64xf32>
      bmsys.yield %33 : tensor<?x?x64xf32>
    }
    %5 = bmsys.weight @model.norm.weight : tensor<64xf32>
    %6 = bmsys.rms_norm %4, %5 {eps = 1.000000e-05 : f64} : (tensor<?x?x64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
    %7 = bmsys.weight @lm_head.weight : tensor<256x64xf32>
    %8 = bmsys.linear %6, %7 : (tensor<?x?x64xf32>, tensor<256x64xf32>) -> tensor<?x?x256xf32>
    return %8 : tensor<?x?x256xf32>
  }
}
