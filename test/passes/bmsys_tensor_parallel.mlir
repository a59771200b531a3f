// RUN: bmsys-opt %S/Inputs/tp_llama.mlir --bmsys-tensor-parallel="degree=2" | FileCheck %s
// RUN: bmsys-opt %S/Inputs/tp_llama.mlir --bmsys-tensor-parallel="degree=2" --bmsys-autodiff --bmsys-optimizer=max-grad-norm=1 | FileCheck %s --check-prefix=STEP
// RUN: bmsys-opt %S/Inputs/tp_llama.mlir --bmsys-tensor-parallel="degree=2" --bmsys-autodiff --bmsys-optimizer --bmsys-inline-blocks --bmsys-bound-shapes=max-seq=8 --bmsys-lower-to-rt | FileCheck %s --check-prefix=LOWER
// RUN: not bmsys-opt %S/Inputs/tp_llama.mlir --bmsys-tensor-parallel="degree=4" 2>&1 | FileCheck %s --check-prefix=HEADS
// RUN: not bmsys-opt %S/Inputs/tp_llama.mlir --bmsys-tensor-parallel="degree=3" 2>&1 | FileCheck %s --check-prefix=VOCAB
// RUN: not bmsys-opt %S/Inputs/tp_llama.mlir --bmsys-autodiff --bmsys-tensor-parallel="degree=2" 2>&1 | FileCheck %s --check-prefix=ORDER

// The split: q/k/v and gate/up by rows (column-parallel), o and down by columns
// (row-parallel), embedding and lm_head by vocabulary rows; norms replicated.
// CHECK: module attributes {bmsys.tensor_parallel = 2 : i64}
// CHECK: bmsys.param @embed : tensor<8x8xf32> {{.*}} {tp_dim = 0 : i64, tp_ranks = 2 : i64}
// CHECK: bmsys.param @ln1 : tensor<8xf32> from "m.safetensors"["model.layers.0.input_layernorm.weight"]{{$}}
// CHECK: bmsys.param @q : tensor<4x8xf32> {{.*}} {tp_dim = 0 : i64, tp_ranks = 2 : i64}
// CHECK: bmsys.param @k : tensor<2x8xf32> {{.*}} {tp_dim = 0 : i64, tp_ranks = 2 : i64}
// CHECK: bmsys.param @v : tensor<2x8xf32> {{.*}} {tp_dim = 0 : i64, tp_ranks = 2 : i64}
// CHECK: bmsys.param @o : tensor<8x4xf32> {{.*}} {tp_dim = 1 : i64, tp_ranks = 2 : i64}
// CHECK: bmsys.param @gate : tensor<6x8xf32> {{.*}} {tp_dim = 0 : i64, tp_ranks = 2 : i64}
// CHECK: bmsys.param @up : tensor<6x8xf32> {{.*}} {tp_dim = 0 : i64, tp_ranks = 2 : i64}
// CHECK: bmsys.param @down : tensor<8x6xf32> {{.*}} {tp_dim = 1 : i64, tp_ranks = 2 : i64}
// CHECK: bmsys.param @head : tensor<8x8xf32> {{.*}} {tp_dim = 0 : i64, tp_ranks = 2 : i64}
// CHECK-LABEL: func.func @forward
// CHECK-SAME: -> (tensor<?x?x8xf32> {bmsys.name = "logits", bmsys.vocab_shards = 2 : i64})
// CHECK: %[[E:.*]] = bmsys.embedding %{{.*}}, %{{.*}} {vocab_shards = 2 : i64} : (tensor<?x?xi64>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
// CHECK-NEXT: bmsys.tp_all_reduce %[[E]] {ranks = 2 : i64} : tensor<?x?x8xf32>
// CHECK: %[[N1:.*]] = bmsys.rms_norm
// One copy for q, k and v (one input), before the first of them.
// CHECK-NEXT: %[[C1:.*]] = bmsys.tp_copy %[[N1]] {ranks = 2 : i64} : tensor<?x?x8xf32>
// CHECK-NEXT: bmsys.linear %[[C1]], %{{.*}} : (tensor<?x?x8xf32>, tensor<4x8xf32>) -> tensor<?x?x4xf32>
// CHECK-NEXT: bmsys.linear %[[C1]], %{{.*}} : (tensor<?x?x8xf32>, tensor<2x8xf32>) -> tensor<?x?x2xf32>
// CHECK-NEXT: bmsys.linear %[[C1]], %{{.*}} : (tensor<?x?x8xf32>, tensor<2x8xf32>) -> tensor<?x?x2xf32>
// Each rank: 2 query heads and 1 key/value head.
// CHECK: %[[ATT:.*]] = bmsys.attention {{.*}}num_heads = 2 : i64, num_kv_heads = 1 : i64{{.*}} -> tensor<?x?x4xf32>
// CHECK-NEXT: %[[O:.*]] = bmsys.linear %[[ATT]], %{{.*}} : (tensor<?x?x4xf32>, tensor<8x4xf32>) -> tensor<?x?x8xf32>
// CHECK-NEXT: %[[OR:.*]] = bmsys.tp_all_reduce %[[O]] {ranks = 2 : i64}
// CHECK-NEXT: bmsys.add %{{.*}}, %[[OR]]
// CHECK: %[[N2:.*]] = bmsys.rms_norm
// CHECK-NEXT: %[[C2:.*]] = bmsys.tp_copy %[[N2]]
// CHECK-NEXT: bmsys.linear %[[C2]], {{.*}} -> tensor<?x?x6xf32>
// CHECK-NEXT: bmsys.silu {{.*}} : tensor<?x?x6xf32>
// CHECK-NEXT: bmsys.linear %[[C2]], {{.*}} -> tensor<?x?x6xf32>
// CHECK-NEXT: bmsys.mul {{.*}} : tensor<?x?x6xf32>
// CHECK-NEXT: %[[D:.*]] = bmsys.linear {{.*}} : (tensor<?x?x6xf32>, tensor<8x6xf32>) -> tensor<?x?x8xf32>
// CHECK-NEXT: bmsys.tp_all_reduce %[[D]]
// CHECK: %[[HN:.*]] = bmsys.rms_norm
// CHECK: %[[CH:.*]] = bmsys.tp_copy %[[HN]]
// CHECK: %[[L:.*]] = bmsys.linear %[[CH]], %{{.*}} : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
// CHECK-NEXT: return %[[L]]

// The backward pass: the gradients of the copies' inputs are all-reduced, the
// loss is vocab-parallel, the norm sums the sharded gradients over the group.
// STEP: bmsys.optimizer_state @q.exp_avg : tensor<4x8xf32> {tp_dim = 0 : i64, tp_ranks = 2 : i64}
// STEP-LABEL: func.func @train_step
// STEP: bmsys.cross_entropy %{{.*}}, %{{.*}} {shift, vocab_shards = 2 : i64}
// STEP: bmsys.cross_entropy_grad %{{.*}}, %{{.*}} {shift, vocab_shards = 2 : i64}
// STEP: %[[DX:.*]] = bmsys.linear_grad_input {{.*}} -> tensor<?x?x8xf32>
// STEP: bmsys.tp_all_reduce %[[DX]] {ranks = 2 : i64}
// STEP: bmsys.embedding_grad %{{.*}}, %{{.*}} {vocab_shards = 2 : i64} : {{.*}} -> tensor<8x8xf32>
// STEP: bmsys.global_norm {{.*}} {tp_sharded = [1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1]}

// Lowered: tp_copy is no kernel; the slices stay on the weights and states.
// LOWER: module attributes {{{.*}}bmsys_rt.tensor_parallel = 2 : i64
// LOWER: bmsys_rt.weight @q {{{.*}}shape = array<i64: 4, 8>, tp_dim = 0 : i64, tp_ranks = 2 : i64}
// LOWER: bmsys_rt.state @q.exp_avg {{{.*}}shape = array<i64: 4, 8>, tp_dim = 0 : i64, tp_ranks = 2 : i64}
// LOWER-NOT: "tp_copy"
// LOWER: bmsys_rt.launch "tp_all_reduce"

// HEADS: error: 'bmsys.attention' op bmsys-tensor-parallel: 4 query and 2 key/value heads cannot be split over 4 ranks
// VOCAB: error: 'bmsys.embedding' op bmsys-tensor-parallel: dimension 0 of 'embed' ('tensor<16x8xf32>') is not divisible by degree 3
// ORDER: error: bmsys-tensor-parallel: run it before bmsys-autodiff
