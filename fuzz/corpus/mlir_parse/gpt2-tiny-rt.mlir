module attributes {bmsys.config = "{\0A  \22activation_function\22: \22gelu_new\22,\0A  \22add_cross_attention\22: false,\0A  \22architectures\22: [\0A    \22GPT2LMHeadModel\22\0A  ],\0A  \22attn_pdrop\22: 0.0,\0A  \22bos_token_id\22: 50256,\0A  \22dtype\22: \22float32\22,\0A  \22embd_pdrop\22: 0.0,\0A  \22eos_token_id\22: 50256,\0A  \22initializer_range\22: 0.02,\0A  \22layer_norm_epsilon\22: 1e-05,\0A  \22model_type\22: \22gpt2\22,\0A  \22n_embd\22: 64,\0A  \22n_head\22: 4,\0A  \22n_inner\22: null,\0A  \22n_layer\22: 2,\0A  \22n_positions\22: 64,\0A  \22pad_token_id\22: null,\0A  \22reorder_and_upcast_attn\22: false,\0A  \22resid_pdrop\22: 0.0,\0A  \22scale_attn_by_inverse_layer_idx\22: false,\0A  \22scale_attn_weights\22: true,\0A  \22summary_activation\22: null,\0A  \22summary_first_dropout\22: 0.1,\0A  \22summary_proj_to_labels\22: true,\0A  \22summary_type\22: \22cls_index\22,\0A  \22summary_use_proj\22: true,\0A  \22tie_word_embeddings\22: true,\0A  \22transformers_version\22: \225.17.0\22,\0A  \22use_cache\22: true,\0A  \22vocab_size\22: 256\0A}\0A", bmsys.max_positions = 64 : i64, bmsys.model_type = "gpt2", bmsys_rt.activation_bytes = 40960 : i64, bmsys_rt.max_batch = 1 : i64, bmsys_rt.max_seq = 16 : i64, bmsys_rt.state_bytes = 16384 : i64} {
  bmsys_rt.state @kv0.k {bytes = 4096 : i64, dtype = f32, offset = 0 : i64, shape = array<i64: 1, 16, 4, 16>}
  bmsys_rt.state @kv0.v {bytes = 4096 : i64, dtype = f32, offset = 4096 : i64, shape = array<i64: 1, 16, 4, 16>}
  bmsys_rt.state @kv1.k {bytes = 4096 : i64, dtype = f32, offset = 8192 : i64, shape = array<i64: 1, 16, 4, 16>}
  bmsys_rt.state @kv1.v {bytes = 4096 : i64, dtype = f32, offset = 12288 : i64, shape = array<i64: 1, 16, 4, 16>}
  bmsys_rt.weight @transformer.wte.weight {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.wte.weight", shape = array<i64: 256, 64>}
  bmsys_rt.weight @transformer.wpe.weight {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.wpe.weight", shape = array<i64: 64, 64>}
  bmsys_rt.weight @transformer.h.0.ln_1.weight {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.0.ln_1.weight", shape = array<i64: 64>}
  bmsys_rt.weight @transformer.h.0.ln_1.bias {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.0.ln_1.bias", shape = array<i64: 64>}
  bmsys_rt.weight @transformer.h.0.attn.c_attn.weight {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.0.attn.c_attn.weight", shape = array<i64: 64, 192>}
  bmsys_rt.weight @transformer.h.0.attn.c_attn.bias {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.0.attn.c_attn.bias", shape = array<i64: 192>}
  bmsys_rt.weight @transformer.h.0.attn.c_proj.weight {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.0.attn.c_proj.weight", shape = array<i64: 64, 64>}
  bmsys_rt.weight @transformer.h.0.attn.c_proj.bias {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.0.attn.c_proj.bias", shape = array<i64: 64>}
  bmsys_rt.weight @transformer.h.0.ln_2.weight {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.0.ln_2.weight", shape = array<i64: 64>}
  bmsys_rt.weight @transformer.h.0.ln_2.bias {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.0.ln_2.bias", shape = array<i64: 64>}
  bmsys_rt.weight @transformer.h.0.mlp.c_fc.weight {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.0.mlp.c_fc.weight", shape = array<i64: 64, 256>}
  bmsys_rt.weight @transformer.h.0.mlp.c_fc.bias {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.0.mlp.c_fc.bias", shape = array<i64: 256>}
  bmsys_rt.weight @transformer.h.0.mlp.c_proj.weight {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.0.mlp.c_proj.weight", shape = array<i64: 256, 64>}
  bmsys_rt.weight @transformer.h.0.mlp.c_proj.bias {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.0.mlp.c_proj.bias", shape = array<i64: 64>}
  bmsys_rt.weight @transformer.h.1.ln_1.weight {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.1.ln_1.weight", shape = array<i64: 64>}
  bmsys_rt.weight @transformer.h.1.ln_1.bias {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.1.ln_1.bias", shape = array<i64: 64>}
  bmsys_rt.weight @transformer.h.1.attn.c_attn.weight {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.1.attn.c_attn.weight", shape = array<i64: 64, 192>}
  bmsys_rt.weight @transformer.h.1.attn.c_attn.bias {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.1.attn.c_attn.bias", shape = array<i64: 192>}
  bmsys_rt.weight @transformer.h.1.attn.c_proj.weight {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.1.attn.c_proj.weight", shape = array<i64: 64, 64>}
  bmsys_rt.weight @transformer.h.1.attn.c_proj.bias {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.1.attn.c_proj.bias", shape = array<i64: 64>}
  bmsys_rt.weight @transformer.h.1.ln_2.weight {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.1.ln_2.weight", shape = array<i64: 64>}
  bmsys_rt.weight @transformer.h.1.ln_2.bias {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.1.ln_2.bias", shape = array<i64: 64>}
  bmsys_rt.weight @transformer.h.1.mlp.c_fc.weight {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.1.mlp.c_fc.weight", shape = array<i64: 64, 256>}
  bmsys_rt.weight @transformer.h.1.mlp.c_fc.bias {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.1.mlp.c_fc.bias", shape = array<i64: 256>}
  bmsys_rt.weight @transformer.h.1.mlp.c_proj.weight {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.1.mlp.c_proj.weight", shape = array<i64: 256, 64>}
  bmsys_rt.weight @transformer.h.1.mlp.c_proj.bias {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.h.1.mlp.c_proj.bias", shape = array<i64: 64>}
  bmsys_rt.weight @transformer.ln_f.weight {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.ln_f.weight", shape = array<i64: 64>}
  bmsys_rt.weight @transformer.ln_f.bias {dtype = f32, file = "/work/main/test/data/gpt2-tiny/model.safetensors", key = "transformer.ln_f.bias", shape = array<i64: 64>}
  bmsys_rt.func @forward {
    %0 = bmsys_rt.input "input_ids" {dtype = i64, shape = ["B", "S"]}
    %1 = bmsys_rt.alloc {bytes = 128 : i64, dtype = i64, offset = 0 : i64, shape = ["B", "S"]}
    bmsys_rt.launch "positions"(%0) -> (%1)
    %2 = bmsys_rt.weight_ref @transformer.wte.weight
    %3 = bmsys_rt.weight_ref @transformer.wpe.weight
    %4 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 256 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "embedding"(%0, %2) -> (%4)
    %5 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 4352 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "embedding"(%1, %3) -> (%5)
    bmsys_rt.dealloc %1
    %6 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 8448 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "add"(%4, %5) -> (%6)
    bmsys_rt.dealloc %5
    bmsys_rt.dealloc %4
    %7 = bmsys_rt.weight_ref @transformer.h.0.ln_1.weight
    %8 = bmsys_rt.weight_ref @transformer.h.0.ln_1.bias
    %9 = bmsys_rt.weight_ref @transformer.h.0.attn.c_attn.weight
    %10 = bmsys_rt.weight_ref @transformer.h.0.attn.c_attn.bias
    %11 = bmsys_rt.weight_ref @transformer.h.0.attn.c_proj.weight
    %12 = bmsys_rt.weight_ref @transformer.h.0.attn.c_proj.bias
    %13 = bmsys_rt.weight_ref @transformer.h.0.ln_2.weight
    %14 = bmsys_rt.weight_ref @transformer.h.0.ln_2.bias
    %15 = bmsys_rt.weight_ref @transformer.h.0.mlp.c_fc.weight
    %16 = bmsys_rt.weight_ref @transformer.h.0.mlp.c_fc.bias
    %17 = bmsys_rt.weight_ref @transformer.h.0.mlp.c_proj.weight
    %18 = bmsys_rt.weight_ref @transformer.h.0.mlp.c_proj.bias
    %19 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 0 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "layer_norm"(%6, %7, %8) -> (%19) with {eps = 1.000000e-05 : f64}
    %20 = bmsys_rt.alloc {bytes = 12288 : i64, dtype = f32, offset = 12544 : i64, shape = ["B", "S", 192]}
    bmsys_rt.launch "linear"(%19, %9, %10) -> (%20) with {weight_transposed = 1 : i64}
    bmsys_rt.dealloc %19
    %21 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 0 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "slice"(%20) -> (%21) with {offset = 0 : i64, size = 64 : i64}
    %22 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 4096 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "slice"(%20) -> (%22) with {offset = 64 : i64, size = 64 : i64}
    %23 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 24832 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "slice"(%20) -> (%23) with {offset = 128 : i64, size = 64 : i64}
    bmsys_rt.dealloc %20
    %24 = bmsys_rt.state_ref @kv0.k
    %25 = bmsys_rt.state_ref @kv0.v
    %26 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 12544 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "attention"(%21, %22, %23, %24, %25) -> (%26) with {causal = 1 : i64, head_dim = 16 : i64, num_heads = 4 : i64, num_kv_heads = 4 : i64, scale = 2.500000e-01 : f64}
    bmsys_rt.dealloc %23
    bmsys_rt.dealloc %22
    bmsys_rt.dealloc %21
    %27 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 0 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "linear"(%26, %11, %12) -> (%27) with {weight_transposed = 1 : i64}
    bmsys_rt.dealloc %26
    %28 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 4096 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "add"(%6, %27) -> (%28)
    bmsys_rt.dealloc %27
    bmsys_rt.dealloc %6
    %29 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 0 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "layer_norm"(%28, %13, %14) -> (%29) with {eps = 1.000000e-05 : f64}
    %30 = bmsys_rt.alloc {bytes = 16384 : i64, dtype = f32, offset = 8192 : i64, shape = ["B", "S", 256]}
    bmsys_rt.launch "linear"(%29, %15, %16) -> (%30) with {weight_transposed = 1 : i64}
    bmsys_rt.dealloc %29
    %31 = bmsys_rt.alloc {bytes = 16384 : i64, dtype = f32, offset = 24576 : i64, shape = ["B", "S", 256]}
    bmsys_rt.launch "gelu"(%30) -> (%31) with {approximate = "tanh"}
    bmsys_rt.dealloc %30
    %32 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 0 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "linear"(%31, %17, %18) -> (%32) with {weight_transposed = 1 : i64}
    bmsys_rt.dealloc %31
    %33 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 8192 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "add"(%28, %32) -> (%33)
    bmsys_rt.dealloc %32
    bmsys_rt.dealloc %28
    %34 = bmsys_rt.weight_ref @transformer.h.1.ln_1.weight
    %35 = bmsys_rt.weight_ref @transformer.h.1.ln_1.bias
    %36 = bmsys_rt.weight_ref @transformer.h.1.attn.c_attn.weight
    %37 = bmsys_rt.weight_ref @transformer.h.1.attn.c_attn.bias
    %38 = bmsys_rt.weight_ref @transformer.h.1.attn.c_proj.weight
    %39 = bmsys_rt.weight_ref @transformer.h.1.attn.c_proj.bias
    %40 = bmsys_rt.weight_ref @transformer.h.1.ln_2.weight
    %41 = bmsys_rt.weight_ref @transformer.h.1.ln_2.bias
    %42 = bmsys_rt.weight_ref @transformer.h.1.mlp.c_fc.weight
    %43 = bmsys_rt.weight_ref @transformer.h.1.mlp.c_fc.bias
    %44 = bmsys_rt.weight_ref @transformer.h.1.mlp.c_proj.weight
    %45 = bmsys_rt.weight_ref @transformer.h.1.mlp.c_proj.bias
    %46 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 0 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "layer_norm"(%33, %34, %35) -> (%46) with {eps = 1.000000e-05 : f64}
    %47 = bmsys_rt.alloc {bytes = 12288 : i64, dtype = f32, offset = 12288 : i64, shape = ["B", "S", 192]}
    bmsys_rt.launch "linear"(%46, %36, %37) -> (%47) with {weight_transposed = 1 : i64}
    bmsys_rt.dealloc %46
    %48 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 0 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "slice"(%47) -> (%48) with {offset = 0 : i64, size = 64 : i64}
    %49 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 4096 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "slice"(%47) -> (%49) with {offset = 64 : i64, size = 64 : i64}
    %50 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 24576 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "slice"(%47) -> (%50) with {offset = 128 : i64, size = 64 : i64}
    bmsys_rt.dealloc %47
    %51 = bmsys_rt.state_ref @kv1.k
    %52 = bmsys_rt.state_ref @kv1.v
    %53 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 12288 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "attention"(%48, %49, %50, %51, %52) -> (%53) with {causal = 1 : i64, head_dim = 16 : i64, num_heads = 4 : i64, num_kv_heads = 4 : i64, scale = 2.500000e-01 : f64}
    bmsys_rt.dealloc %50
    bmsys_rt.dealloc %49
    bmsys_rt.dealloc %48
    %54 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 0 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "linear"(%53, %38, %39) -> (%54) with {weight_transposed = 1 : i64}
    bmsys_rt.dealloc %53
    %55 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 4096 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "add"(%33, %54) -> (%55)
    bmsys_rt.dealloc %54
    bmsys_rt.dealloc %33
    %56 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 0 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "layer_norm"(%55, %40, %41) -> (%56) with {eps = 1.000000e-05 : f64}
    %57 = bmsys_rt.alloc {bytes = 16384 : i64, dtype = f32, offset = 8192 : i64, shape = ["B", "S", 256]}
    bmsys_rt.launch "linear"(%56, %42, %43) -> (%57) with {weight_transposed = 1 : i64}
    bmsys_rt.dealloc %56
    %58 = bmsys_rt.alloc {bytes = 16384 : i64, dtype = f32, offset = 24576 : i64, shape = ["B", "S", 256]}
    bmsys_rt.launch "gelu"(%57) -> (%58) with {approximate = "tanh"}
    bmsys_rt.dealloc %57
    %59 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 0 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "linear"(%58, %44, %45) -> (%59) with {weight_transposed = 1 : i64}
    bmsys_rt.dealloc %58
    %60 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 8192 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "add"(%55, %59) -> (%60)
    bmsys_rt.dealloc %59
    bmsys_rt.dealloc %55
    %61 = bmsys_rt.weight_ref @transformer.ln_f.weight
    %62 = bmsys_rt.weight_ref @transformer.ln_f.bias
    %63 = bmsys_rt.alloc {bytes = 4096 : i64, dtype = f32, offset = 0 : i64, shape = ["B", "S", 64]}
    bmsys_rt.launch "layer_norm"(%60, %61, %62) -> (%63) with {eps = 1.000000e-05 : f64}
    bmsys_rt.dealloc %60
    %64 = bmsys_rt.alloc {bytes = 16384 : i64, dtype = f32, offset = 4096 : i64, shape = ["B", "S", 256]}
    bmsys_rt.launch "linear"(%63, %2) -> (%64) with {weight_transposed = 0 : i64}
    bmsys_rt.dealloc %63
    bmsys_rt.output "logits" %64
  }
}

