// RUN: bmsys-opt %s -split-input-file -verify-diagnostics
// Verifier messages of the bmsys dialect.

// expected-error @+1 {{parameter 'p' must have a static shape}}
bmsys.param @p : tensor<?x8xf32> from "m.safetensors"["p"]

// -----

bmsys.param @p : tensor<8xf32> from "m.safetensors"["p"]
func.func @f() -> tensor<4xf32> {
  // expected-error @+1 {{result type 'tensor<4xf32>' differs from parameter 'p' of type 'tensor<8xf32>'}}
  %w = bmsys.weight @p : tensor<4xf32>
  return %w : tensor<4xf32>
}

// -----

func.func @f() -> tensor<4xf32> {
  // expected-error @+1 {{'missing' does not name a bmsys.param}}
  %w = bmsys.weight @missing : tensor<4xf32>
  return %w : tensor<4xf32>
}

// -----

func.func @f(%x: tensor<?x?x8xf32>, %w: tensor<16x4xf32>) -> tensor<?x?x16xf32> {
  // expected-error @+1 {{input width 8 differs from the weight's input size 4}}
  %y = bmsys.linear %x, %w : (tensor<?x?x8xf32>, tensor<16x4xf32>) -> tensor<?x?x16xf32>
  return %y : tensor<?x?x16xf32>
}

// -----

func.func @f(%x: tensor<?x?x8xf32>, %w: tensor<8x16xf32>, %b: tensor<8xf32>) -> tensor<?x?x16xf32> {
  // expected-error @+1 {{bias must be a vector of 16 elements}}
  %y = bmsys.linear %x, %w, %b {weight_transposed} : (tensor<?x?x8xf32>, tensor<8x16xf32>, tensor<8xf32>) -> tensor<?x?x16xf32>
  return %y : tensor<?x?x16xf32>
}

// -----

func.func @f(%x: tensor<?x?x8xf32>, %g: tensor<4xf32>) -> tensor<?x?x8xf32> {
  // expected-error @+1 {{gamma must be a vector of 8 elements}}
  %y = bmsys.rms_norm %x, %g {eps = 1.0e-5 : f64} : (tensor<?x?x8xf32>, tensor<4xf32>) -> tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}

// -----

func.func @f(%x: tensor<?x?x8xf32>, %g: tensor<8xf32>) -> tensor<?x?x8xf32> {
  // expected-error @+1 {{eps must be positive}}
  %y = bmsys.rms_norm %x, %g {eps = 0.0 : f64} : (tensor<?x?x8xf32>, tensor<8xf32>) -> tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}

// -----

func.func @f(%x: tensor<?x?x12xf32>, %p: tensor<?x?xi64>) -> tensor<?x?x12xf32> {
  // expected-error @+1 {{width 12 is not a multiple of head_dim 8}}
  %y = bmsys.rope %x, %p {head_dim = 8, theta = 1.0e4 : f64} : (tensor<?x?x12xf32>, tensor<?x?xi64>) -> tensor<?x?x12xf32>
  return %y : tensor<?x?x12xf32>
}

// -----

func.func @f(%x: tensor<?x?x12xf32>, %p: tensor<?x?xi64>) -> tensor<?x?x12xf32> {
  // expected-error @+1 {{head_dim must be positive and even, got 3}}
  %y = bmsys.rope %x, %p {head_dim = 3, theta = 1.0e4 : f64} : (tensor<?x?x12xf32>, tensor<?x?xi64>) -> tensor<?x?x12xf32>
  return %y : tensor<?x?x12xf32>
}

// -----

func.func @f(%q: tensor<?x?x12xf32>, %k: tensor<?x?x8xf32>) -> tensor<?x?x12xf32> {
  // expected-error @+1 {{num_heads (3) must be a multiple of num_kv_heads (2)}}
  %y = bmsys.attention %q, %k, %k {num_heads = 3, num_kv_heads = 2, head_dim = 4, scale = 0.5 : f64, causal} : (tensor<?x?x12xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>) -> tensor<?x?x12xf32>
  return %y : tensor<?x?x12xf32>
}

// -----

func.func @f(%q: tensor<?x?x16xf32>, %k: tensor<?x?x4xf32>) -> tensor<?x?x16xf32> {
  // expected-error @+1 {{k must be [batch, seq, 8], got 'tensor<?x?x4xf32>'}}
  %y = bmsys.attention %q, %k, %k {num_heads = 4, num_kv_heads = 2, head_dim = 4, scale = 0.5 : f64} : (tensor<?x?x16xf32>, tensor<?x?x4xf32>, tensor<?x?x4xf32>) -> tensor<?x?x16xf32>
  return %y : tensor<?x?x16xf32>
}

// -----

bmsys.kv_cache @kv {head_dim = 8 : i64, max_batch = 1 : i64, max_seq = 16 : i64, num_kv_heads = 2 : i64}
func.func @f(%q: tensor<?x?x16xf32>, %k: tensor<?x?x8xf32>) -> tensor<?x?x16xf32> {
  // expected-error @+1 {{cache 'kv' holds 2 heads of 8, attention needs 2 of 4}}
  %y = bmsys.attention %q, %k, %k cache @kv {num_heads = 4, num_kv_heads = 2, head_dim = 4, scale = 0.5 : f64} : (tensor<?x?x16xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>) -> tensor<?x?x16xf32>
  return %y : tensor<?x?x16xf32>
}

// -----

// expected-error @+1 {{max_seq must be positive, got 0}}
bmsys.kv_cache @kv {head_dim = 8 : i64, max_batch = 1 : i64, max_seq = 0 : i64, num_kv_heads = 2 : i64}

// -----

func.func @f(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  // expected-error @+1 {{approximate must be "tanh" or "none", got "fast"}}
  %y = bmsys.gelu %x {approximate = "fast"} : tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}

// -----

func.func @f(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  // expected-error @+1 {{range [4, 12) is outside the last dimension of size 8}}
  %y = bmsys.slice %x {offset = 4, size = 8} : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}

// -----

func.func @f(%x: tensor<?x?x16xf32>, %ids: tensor<?xi64>) -> tensor<f32> {
  // expected-error @+1 {{expects logits [batch, seq, vocab] and labels [batch, seq]}}
  %y = bmsys.cross_entropy %x, %ids : (tensor<?x?x16xf32>, tensor<?xi64>) -> tensor<f32>
  return %y : tensor<f32>
}

// -----

func.func @f(%ids: tensor<?x?xi64>, %t: tensor<16xf32>) -> tensor<?x?x16xf32> {
  // expected-error @+1 {{table must be [vocab, hidden]}}
  %y = bmsys.embedding %ids, %t : (tensor<?x?xi64>, tensor<16xf32>) -> tensor<?x?x16xf32>
  return %y : tensor<?x?x16xf32>
}

// -----

func.func @f(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  // expected-error @+1 {{yielded types differ from the block's result types}}
  %y = bmsys.block "b" (%x) : (tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  ^bb0(%a: tensor<?x?x8xf32>):
    %s = bmsys.slice %a {offset = 0, size = 4} : (tensor<?x?x8xf32>) -> tensor<?x?x4xf32>
    bmsys.yield %s : tensor<?x?x4xf32>
  }
  return %y : tensor<?x?x8xf32>
}

// -----

func.func @f(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  // expected-error @+1 {{custom op 'bmsys.nonsense' is unknown}}
  %y = bmsys.nonsense %x : tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}

// -----

// bmsys.rope_attention: attention's checks, then rope's.
func.func @f(%q: tensor<?x?x12xf32>, %k: tensor<?x?x8xf32>, %p: tensor<?x?xi64>) -> tensor<?x?x12xf32> {
  // expected-error @+1 {{num_heads (3) must be a multiple of num_kv_heads (2)}}
  %y = bmsys.rope_attention %q, %k, %k, %p {num_heads = 3, num_kv_heads = 2, head_dim = 4, scale = 0.5 : f64, causal, theta = 1.0e4 : f64} : (tensor<?x?x12xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x12xf32>
  return %y : tensor<?x?x12xf32>
}

// -----

func.func @f(%q: tensor<?x?x16xf32>, %k: tensor<?x?x8xf32>, %v: tensor<?x?x4xf32>, %p: tensor<?x?xi64>) -> tensor<?x?x16xf32> {
  // expected-error @+1 {{v must be [batch, seq, 8], got 'tensor<?x?x4xf32>'}}
  %y = bmsys.rope_attention %q, %k, %v, %p {num_heads = 4, num_kv_heads = 2, head_dim = 4, scale = 0.5 : f64, theta = 1.0e4 : f64} : (tensor<?x?x16xf32>, tensor<?x?x8xf32>, tensor<?x?x4xf32>, tensor<?x?xi64>) -> tensor<?x?x16xf32>
  return %y : tensor<?x?x16xf32>
}

// -----

func.func @f(%q: tensor<?x?x6xf32>, %k: tensor<?x?x3xf32>, %p: tensor<?x?xi64>) -> tensor<?x?x6xf32> {
  // expected-error @+1 {{head_dim must be even (rope rotates pairs), got 3}}
  %y = bmsys.rope_attention %q, %k, %k, %p {num_heads = 2, num_kv_heads = 1, head_dim = 3, scale = 0.5 : f64, theta = 1.0e4 : f64} : (tensor<?x?x6xf32>, tensor<?x?x3xf32>, tensor<?x?x3xf32>, tensor<?x?xi64>) -> tensor<?x?x6xf32>
  return %y : tensor<?x?x6xf32>
}

// -----

func.func @f(%q: tensor<?x?x8xf32>, %k: tensor<?x?x4xf32>, %p: tensor<?xi64>) -> tensor<?x?x8xf32> {
  // expected-error @+1 {{positions must be [batch, seq], got 'tensor<?xi64>'}}
  %y = bmsys.rope_attention %q, %k, %k, %p {num_heads = 2, num_kv_heads = 1, head_dim = 4, scale = 0.5 : f64, theta = 1.0e4 : f64} : (tensor<?x?x8xf32>, tensor<?x?x4xf32>, tensor<?x?x4xf32>, tensor<?xi64>) -> tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}

// -----

func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>, %p: tensor<2x5xi64>) -> tensor<2x3x8xf32> {
  // expected-error @+1 {{positions 'tensor<2x5xi64>' differ from q 'tensor<2x3x8xf32>' in dimension 1}}
  %y = bmsys.rope_attention %q, %k, %k, %p {num_heads = 2, num_kv_heads = 1, head_dim = 4, scale = 0.5 : f64, theta = 1.0e4 : f64} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>, tensor<2x5xi64>) -> tensor<2x3x8xf32>
  return %y : tensor<2x3x8xf32>
}

// -----

func.func @f(%q: tensor<?x?x8xf32>, %k: tensor<?x?x4xf32>, %p: tensor<?x?xf32>) -> tensor<?x?x8xf32> {
  // expected-error @+1 {{operand #3 must be ranked tensor of 64-bit signless integer values}}
  %y = bmsys.rope_attention %q, %k, %k, %p {num_heads = 2, num_kv_heads = 1, head_dim = 4, scale = 0.5 : f64, theta = 1.0e4 : f64} : (tensor<?x?x8xf32>, tensor<?x?x4xf32>, tensor<?x?x4xf32>, tensor<?x?xf32>) -> tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}

// -----

func.func @f(%q: tensor<?x?x8xf32>, %k: tensor<?x?x4xf32>, %p: tensor<?x?xi64>) -> tensor<?x?x8xf32> {
  // expected-error @+1 {{requires attribute 'theta'}}
  %y = bmsys.rope_attention %q, %k, %k, %p {num_heads = 2, num_kv_heads = 1, head_dim = 4, scale = 0.5 : f64} : (tensor<?x?x8xf32>, tensor<?x?x4xf32>, tensor<?x?x4xf32>, tensor<?x?xi64>) -> tensor<?x?x8xf32>
  return %y : tensor<?x?x8xf32>
}

// -----

bmsys.kv_cache @kv {head_dim = 8 : i64, max_batch = 1 : i64, max_seq = 16 : i64, num_kv_heads = 2 : i64}
func.func @f(%q: tensor<?x?x16xf32>, %k: tensor<?x?x8xf32>, %p: tensor<?x?xi64>) -> tensor<?x?x16xf32> {
  // expected-error @+1 {{cache 'kv' holds 2 heads of 8, attention needs 2 of 4}}
  %y = bmsys.rope_attention %q, %k, %k, %p cache @kv {num_heads = 4, num_kv_heads = 2, head_dim = 4, scale = 0.5 : f64, theta = 1.0e4 : f64} : (tensor<?x?x16xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x16xf32>
  return %y : tensor<?x?x16xf32>
}

// -----

bmsys.param @kv : tensor<8xf32> from "m.safetensors"["kv"]
func.func @f(%q: tensor<?x?x16xf32>, %k: tensor<?x?x8xf32>, %p: tensor<?x?xi64>) -> tensor<?x?x16xf32> {
  // expected-error @+1 {{'kv' does not name a bmsys.kv_cache}}
  %y = bmsys.rope_attention %q, %k, %k, %p cache @kv {num_heads = 4, num_kv_heads = 2, head_dim = 4, scale = 0.5 : f64, theta = 1.0e4 : f64} : (tensor<?x?x16xf32>, tensor<?x?x8xf32>, tensor<?x?x8xf32>, tensor<?x?xi64>) -> tensor<?x?x16xf32>
  return %y : tensor<?x?x16xf32>
}
