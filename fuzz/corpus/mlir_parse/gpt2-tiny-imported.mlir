module attributes {bmsys.config = "{\0A  \22activation_function\22: \22gelu_new\22,\0A  \22add_cross_attention\22: false,\0A  \22architectures\22: [\0A    \22GPT2LMHeadModel\22\0A  ],\0A  \22attn_pdrop\22: 0.0,\0A  \22bos_token_id\22: 50256,\0A  \22dtype\22: \22float32\22,\0A  \22embd_pdrop\22: 0.0,\0A  \22eos_token_id\22: 50256,\0A  \22initializer_range\22: 0.02,\0A  \22layer_norm_epsilon\22: 1e-05,\0A  \22model_type\22: \22gpt2\22,\0A  \22n_embd\22: 64,\0A  \22n_head\22: 4,\0A  \22n_inner\22: null,\0A  \22n_layer\22: 2,\0A  \22n_positions\22: 64,\0A  \22pad_token_id\22: null,\0A  \22reorder_and_upcast_attn\22: false,\0A  \22resid_pdrop\22: 0.0,\0A  \22scale_attn_by_inverse_layer_idx\22: false,\0A  \22scale_attn_weights\22: true,\0A  \22summary_activation\22: null,\0A  \22summary_first_dropout\22: 0.1,\0A  \22summary_proj_to_labels\22: true,\0A  \22summary_type\22: \22cls_index\22,\0A  \22summary_use_proj\22: true,\0A  \22tie_word_embeddings\22: true,\0A  \22transformers_version\22: \225.17.0\22,\0A  \22use_cache\22: true,\0A  \22vocab_size\22: 256\0A}\0A", bmsys.max_positions = 64 : i64, bmsys.model_type = "gpt2"} {
  bmsys.param @transformer.wte.weight : tensor<256x64xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.wte.weight"]
  bmsys.param @transformer.wpe.weight : tensor<64x64xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.wpe.weight"]
  bmsys.param @transformer.h.0.ln_1.weight : tensor<64xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.0.ln_1.weight"]
  bmsys.param @transformer.h.0.ln_1.bias : tensor<64xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.0.ln_1.bias"]
  bmsys.param @transformer.h.0.attn.c_attn.weight : tensor<64x192xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.0.attn.c_attn.weight"]
  bmsys.param @transformer.h.0.attn.c_attn.bias : tensor<192xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.0.attn.c_attn.bias"]
  bmsys.param @transformer.h.0.attn.c_proj.weight : tensor<64x64xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.0.attn.c_proj.weight"]
  bmsys.param @transformer.h.0.attn.c_proj.bias : tensor<64xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.0.attn.c_proj.bias"]
  bmsys.param @transformer.h.0.ln_2.weight : tensor<64xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.0.ln_2.weight"]
  bmsys.param @transformer.h.0.ln_2.bias : tensor<64xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.0.ln_2.bias"]
  bmsys.param @transformer.h.0.mlp.c_fc.weight : tensor<64x256xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.0.mlp.c_fc.weight"]
  bmsys.param @transformer.h.0.mlp.c_fc.bias : tensor<256xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.0.mlp.c_fc.bias"]
  bmsys.param @transformer.h.0.mlp.c_proj.weight : tensor<256x64xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.0.mlp.c_proj.weight"]
  bmsys.param @transformer.h.0.mlp.c_proj.bias : tensor<64xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.0.mlp.c_proj.bias"]
  bmsys.param @transformer.h.1.ln_1.weight : tensor<64xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.1.ln_1.weight"]
  bmsys.param @transformer.h.1.ln_1.bias : tensor<64xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.1.ln_1.bias"]
  bmsys.param @transformer.h.1.attn.c_attn.weight : tensor<64x192xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.1.attn.c_attn.weight"]
  bmsys.param @transformer.h.1.attn.c_attn.bias : tensor<192xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.1.attn.c_attn.bias"]
  bmsys.param @transformer.h.1.attn.c_proj.weight : tensor<64x64xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.1.attn.c_proj.weight"]
  bmsys.param @transformer.h.1.attn.c_proj.bias : tensor<64xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.1.attn.c_proj.bias"]
  bmsys.param @transformer.h.1.ln_2.weight : tensor<64xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.1.ln_2.weight"]
  bmsys.param @transformer.h.1.ln_2.bias : tensor<64xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.1.ln_2.bias"]
  bmsys.param @transformer.h.1.mlp.c_fc.weight : tensor<64x256xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.1.mlp.c_fc.weight"]
  bmsys.param @transformer.h.1.mlp.c_fc.bias : tensor<256xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.1.mlp.c_fc.bias"]
  bmsys.param @transformer.h.1.mlp.c_proj.weight : tensor<256x64xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.1.mlp.c_proj.weight"]
  bmsys.param @transformer.h.1.mlp.c_proj.bias : tensor<64xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.h.1.mlp.c_proj.bias"]
  bmsys.param @transformer.ln_f.weight : tensor<64xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.ln_f.weight"]
  bmsys.param @transformer.ln_f.bias : tensor<64xf32> from "/work/main/test/data/gpt2-tiny/model.safetensors"["transformer.ln_f.bias"]
  func.func @forward(%arg0: tensor<?x?xi64> {bmsys.name = "input_ids"}) -> (tensor<?x?x256xf32> {bmsys.name = "logits"}) {
    %0 = bmsys.positions %arg0 : (tensor<?x?xi64>) -> tensor<?x?xi64>
    %1 = bmsys.weight @transformer.wte.weight : tensor<256x64xf32>
    %2 = bmsys.weight @transformer.wpe.weight : tensor<64x64xf32>
    %3 = bmsys.embedding %arg0, %1 : (tensor<?x?xi64>, tensor<256x64xf32>) -> tensor<?x?x64xf32>
    %4 = bmsys.embedding %0, %2 : (tensor<?x?xi64>, tensor<64x64xf32>) -> tensor<?x?x64xf32>
    %5 = bmsys.add %3, %4 : tensor<?x?x64xf32>
    %6 = bmsys.block "h.0"(%5, %0) : (tensor<?x?x64xf32>, tensor<?x?xi64>) -> tensor<?x?x64xf32> {
    ^bb0(%arg1: tensor<?x?x64xf32>, %arg2: tensor<?x?xi64>):
      %12 = bmsys.weight @transformer.h.0.ln_1.weight : tensor<64xf32>
      %13 = bmsys.weight @transformer.h.0.ln_1.bias : tensor<64xf32>
      %14 = bmsys.weight @transformer.h.0.attn.c_attn.weight : tensor<64x192xf32>
      %15 = bmsys.weight @transformer.h.0.attn.c_attn.bias : tensor<192xf32>
      %16 = bmsys.weight @transformer.h.0.attn.c_proj.weight : tensor<64x64xf32>
      %17 = bmsys.weight @transformer.h.0.attn.c_proj.bias : tensor<64xf32>
      %18 = bmsys.weight @transformer.h.0.ln_2.weight : tensor<64xf32>
      %19 = bmsys.weight @transformer.h.0.ln_2.bias : tensor<64xf32>
      %20 = bmsys.weight @transformer.h.0.mlp.c_fc.weight : tensor<64x256xf32>
      %21 = bmsys.weight @transformer.h.0.mlp.c_fc.bias : tensor<256xf32>
      %22 = bmsys.weight @transformer.h.0.mlp.c_proj.weight : tensor<256x64xf32>
      %23 = bmsys.weight @transformer.h.0.mlp.c_proj.bias : tensor<64xf32>
      %24 = bmsys.layer_norm %arg1, %12, %13 {eps = 1.000000e-05 : f64} : (tensor<?x?x64xf32>, tensor<64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
      %25 = bmsys.linear %24, %14, %15 {weight_transposed} : (tensor<?x?x64xf32>, tensor<64x192xf32>, tensor<192xf32>) -> tensor<?x?x192xf32>
      %26 = bmsys.slice %25 {offset = 0 : i64, size = 64 : i64} : (tensor<?x?x192xf32>) -> tensor<?x?x64xf32>
      %27 = bmsys.slice %25 {offset = 64 : i64, size = 64 : i64} : (tensor<?x?x192xf32>) -> tensor<?x?x64xf32>
      %28 = bmsys.slice %25 {offset = 128 : i64, size = 64 : i64} : (tensor<?x?x192xf32>) -> tensor<?x?x64xf32>
      %29 = bmsys.attention %26, %27, %28 {causal, head_dim = 16 : i64, num_heads = 4 : i64, num_kv_heads = 4 : i64, scale = 2.500000e-01 : f64} : (tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
      %30 = bmsys.linear %29, %16, %17 {weight_transposed} : (tensor<?x?x64xf32>, tensor<64x64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
      %31 = bmsys.add %arg1, %30 : tensor<?x?x64xf32>
      %32 = bmsys.layer_norm %31, %18, %19 {eps = 1.000000e-05 : f64} : (tensor<?x?x64xf32>, tensor<64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
      %33 = bmsys.linear %32, %20, %21 {weight_transposed} : (tensor<?x?x64xf32>, tensor<64x256xf32>, tensor<256xf32>) -> tensor<?x?x256xf32>
      %34 = bmsys.gelu %33 {approximate = "tanh"} : tensor<?x?x256xf32>
      %35 = bmsys.linear %34, %22, %23 {weight_transposed} : (tensor<?x?x256xf32>, tensor<256x64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
      %36 = bmsys.add %31, %35 : tensor<?x?x64xf32>
      bmsys.yield %36 : tensor<?x?x64xf32>
    }
    %7 = bmsys.block "h.1"(%6, %0) : (tensor<?x?x64xf32>, tensor<?x?xi64>) -> tensor<?x?x64xf32> {
    ^bb0(%arg1: tensor<?x?x64xf32>, %arg2: tensor<?x?xi64>):
      %12 = bmsys.weight @transformer.h.1.ln_1.weight : tensor<64xf32>
      %13 = bmsys.weight @transformer.h.1.ln_1.bias : tensor<64xf32>
      %14 = bmsys.weight @transformer.h.1.attn.c_attn.weight : tensor<64x192xf32>
      %15 = bmsys.weight @transformer.h.1.attn.c_attn.bias : tensor<192xf32>
      %16 = bmsys.weight @transformer.h.1.attn.c_proj.weight : tensor<64x64xf32>
      %17 = bmsys.weight @transformer.h.1.attn.c_proj.bias : tensor<64xf32>
      %18 = bmsys.weight @transformer.h.1.ln_2.weight : tensor<64xf32>
      %19 = bmsys.weight @transformer.h.1.ln_2.bias : tensor<64xf32>
      %20 = bmsys.weight @transformer.h.1.mlp.c_fc.weight : tensor<64x256xf32>
      %21 = bmsys.weight @transformer.h.1.mlp.c_fc.bias : tensor<256xf32>
      %22 = bmsys.weight @transformer.h.1.mlp.c_proj.weight : tensor<256x64xf32>
      %23 = bmsys.weight @transformer.h.1.mlp.c_proj.bias : tensor<64xf32>
      %24 = bmsys.layer_norm %arg1, %12, %13 {eps = 1.000000e-05 : f64} : (tensor<?x?x64xf32>, tensor<64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
      %25 = bmsys.linear %24, %14, %15 {weight_transposed} : (tensor<?x?x64xf32>, tensor<64x192xf32>, tensor<192xf32>) -> tensor<?x?x192xf32>
      %26 = bmsys.slice %25 {offset = 0 : i64, size = 64 : i64} : (tensor<?x?x192xf32>) -> tensor<?x?x64xf32>
      %27 = bmsys.slice %25 {offset = 64 : i64, size = 64 : i64} : (tensor<?x?x192xf32>) -> tensor<?x?x64xf32>
      %28 = bmsys.slice %25 {offset = 128 : i64, size = 64 : i64} : (tensor<?x?x192xf32>) -> tensor<?x?x64xf32>
      %29 = bmsys.attention %26, %27, %28 {causal, head_dim = 16 : i64, num_heads = 4 : i64, num_kv_heads = 4 : i64, scale = 2.500000e-01 : f64} : (tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
      %30 = bmsys.linear %29, %16, %17 {weight_transposed} : (tensor<?x?x64xf32>, tensor<64x64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
      %31 = bmsys.add %arg1, %30 : tensor<?x?x64xf32>
      %32 = bmsys.layer_norm %31, %18, %19 {eps = 1.000000e-05 : f64} : (tensor<?x?x64xf32>, tensor<64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
      %33 = bmsys.linear %32, %20, %21 {weight_transposed} : (tensor<?x?x64xf32>, tensor<64x256xf32>, tensor<256xf32>) -> tensor<?x?x256xf32>
      %34 = bmsys.gelu %33 {approximate = "tanh"} : tensor<?x?x256xf32>
      %35 = bmsys.linear %34, %22, %23 {weight_transposed} : (tensor<?x?x256xf32>, tensor<256x64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
      %36 = bmsys.add %31, %35 : tensor<?x?x64xf32>
      bmsys.yield %36 : tensor<?x?x64xf32>
    }
    %8 = bmsys.weight @transformer.ln_f.weight : tensor<64xf32>
    %9 = bmsys.weight @transformer.ln_f.bias : tensor<64xf32>
    %10 = bmsys.layer_norm %7, %8, %9 {eps = 1.000000e-05 : f64} : (tensor<?x?x64xf32>, tensor<64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
    %11 = bmsys.linear %10, %1 : (tensor<?x?x64xf32>, tensor<256x64xf32>) -> tensor<?x?x256xf32>
    return %11 : tensor<?x?x256xf32>
  }
}
