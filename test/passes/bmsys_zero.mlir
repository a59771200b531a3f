// RUN: bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-autodiff --bmsys-optimizer=max-grad-norm=1 --bmsys-zero="stage=0 ranks=2" | FileCheck %s --check-prefix=Z0
// RUN: bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-autodiff --bmsys-optimizer=max-grad-norm=1 --bmsys-zero="stage=1 ranks=2" | FileCheck %s --check-prefix=Z1
// RUN: bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-autodiff --bmsys-optimizer=max-grad-norm=1 --bmsys-zero="stage=2 ranks=2" | FileCheck %s --check-prefix=Z2
// RUN: bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-autodiff --bmsys-optimizer=max-grad-norm=1 --bmsys-zero="stage=3 ranks=2" | FileCheck %s --check-prefix=Z3
// RUN: not bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-zero="stage=1 ranks=2" 2>&1 | FileCheck %s --check-prefix=NOSTEP
// RUN: bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-autodiff --bmsys-optimizer --bmsys-zero="stage=3 ranks=3" --bmsys-inline-blocks --bmsys-bound-shapes=max-seq=8 --bmsys-lower-to-rt | FileCheck %s --check-prefix=LOWER

// Stage 0: gradients averaged as soon as they exist; full optimizer state.
// Z0: module attributes {bmsys.data_parallel = 2 : i64}
// Z0: bmsys.optimizer_state @w.exp_avg : tensor<8x8xf32>
// Z0-LABEL: func.func @train_step
// Z0: %[[GW:.*]] = bmsys.linear_grad_weight {{.*}} -> tensor<8x8xf32>
// Z0-NEXT: %[[RW:.*]] = bmsys.all_reduce %[[GW]] {ranks = 2 : i64, reduction = "mean"} : tensor<8x8xf32>
// Z0: %[[N:.*]] = bmsys.global_norm
// Z0-NOT: ranks
// Z0: bmsys.adamw @w, %[[RW]], %[[N]]
// Z0-NOT: bmsys.sync_param
// Z0: %[[LOSS:.*]] = bmsys.all_reduce %{{.*}} {ranks = 2 : i64, reduction = "mean"} : tensor<f32>
// Z0: return %[[LOSS]]

// Stage 1: reduce-scatter at the end of the backward pass, sharded optimizer
// state (64 elements over 2 ranks: 32 each), update of the own shard, then
// the parameter is all-gathered in place.
// Z1: bmsys.optimizer_state @w.exp_avg : tensor<32xf32> {bmsys.full_type = tensor<8x8xf32>}
// Z1-LABEL: func.func @train_step
// Z1: bmsys.embedding_grad
// Z1: %[[S:.*]] = bmsys.reduce_scatter %{{.*}} {ranks = 2 : i64, reduction = "mean"} : tensor<16x8xf32> -> tensor<64xf32>
// Z1: bmsys.reduce_scatter
// Z1: bmsys.reduce_scatter
// Z1-NEXT: %[[N:.*]] = bmsys.global_norm {{.*}} {ranks = 2 : i64}
// Z1-NEXT: bmsys.adamw @emb, %[[S]], %[[N]] {{.*}}zero_ranks = 2 : i64
// Z1-NEXT: bmsys.sync_param @emb {ranks = 2 : i64}

// Stage 2: each gradient is reduce-scattered right after it is computed.
// Z2: %[[GW:.*]] = bmsys.linear_grad_weight %{{.*}}, %{{.*}} : (tensor<?x?x8xf32>, tensor<?x?x8xf32>) -> tensor<8x8xf32>
// Z2-NEXT: bmsys.reduce_scatter %[[GW]] {ranks = 2 : i64, reduction = "mean"} : tensor<8x8xf32> -> tensor<32xf32>

// Stage 3: parameters stored sharded, gathered for the forward and again for the backward.
// Z3: bmsys.param @w : tensor<8x8xf32> from "m.safetensors"["w"] {zero_shards = 2 : i64}
// Z3-LABEL: func.func @train_step
// Z3: %[[WS:.*]] = bmsys.weight_shard @w : tensor<32xf32>
// Z3-NEXT: %[[W:.*]] = bmsys.all_gather %[[WS]] {ranks = 2 : i64} : tensor<32xf32> -> tensor<8x8xf32>
// Z3: bmsys.linear %{{.*}}, %[[W]]
// Z3: bmsys.cross_entropy_grad
// Z3: %[[WS2:.*]] = bmsys.weight_shard @w : tensor<32xf32>
// Z3-NEXT: %[[W2:.*]] = bmsys.all_gather %[[WS2]]
// Z3-NEXT: bmsys.linear_grad_input %{{.*}}, %[[W2]]
// Z3: bmsys.adamw @w, {{.*}}param_sharded{{.*}}zero_ranks = 2 : i64
// Z3-NOT: bmsys.sync_param

// NOSTEP: bmsys-zero: no 'train_step'

// Lowered: 3 ranks, 64 elements: shards of 22; the sharded weight keeps its full shape.
// LOWER: module attributes {{{.*}}bmsys_rt.data_parallel = 3 : i64
// LOWER: bmsys_rt.weight @w {dtype = f32, file = "m.safetensors", full_shape = array<i64: 8, 8>, key = "w", shape = array<i64: 22>, shard_ranks = 3 : i64}
// LOWER: bmsys_rt.state @w.exp_avg {{{.*}}full_shape = array<i64: 8, 8>, {{.*}}role = "optimizer", shape = array<i64: 22>, shard_ranks = 3 : i64}
// LOWER: bmsys_rt.launch "all_gather"
// LOWER: bmsys_rt.launch "reduce_scatter"
// LOWER: bmsys_rt.launch "global_norm"{{.*}}ranks = 3 : i64

// The forward kept for generation gathers its (block-local) weights too.
// RUN: bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-autodiff --bmsys-optimizer --bmsys-zero="stage=3 ranks=2" | FileCheck %s --check-prefix=FWD
// FWD-LABEL: func.func @forward
// FWD: bmsys.block "layers.0"
// FWD: %[[GS:.*]] = bmsys.weight_shard @g : tensor<4xf32>
// FWD-NEXT: bmsys.all_gather %[[GS]] {ranks = 2 : i64} : tensor<4xf32> -> tensor<8xf32>
// FWD-NOT: bmsys.weight @
// FWD-LABEL: func.func @train_step

// Prefetch (prefetch=1): each gather of train_step is issued at the first use of the
// parameter gathered before it: @g's with @emb's (before the embedding), the backward's
// @emb during the forward's linear, @w's at the first backward use of @emb, @g's at the
// first backward use of @w.
// RUN: bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-autodiff --bmsys-optimizer --bmsys-zero="stage=3 ranks=2 prefetch=1" | FileCheck %s --check-prefix=PF
// PF-LABEL: func.func @train_step
// PF: bmsys.weight_shard @emb
// PF-NEXT: bmsys.all_gather
// PF-NEXT: bmsys.weight_shard @g
// PF-NEXT: bmsys.all_gather
// PF-NEXT: bmsys.embedding
// PF-NEXT: bmsys.weight_shard @w
// PF-NEXT: bmsys.all_gather
// PF-NEXT: bmsys.rms_norm
// PF-NEXT: bmsys.weight_shard @emb
// PF-NEXT: bmsys.all_gather
// PF-NEXT: bmsys.linear
// PF: bmsys.cross_entropy_grad
// PF-NEXT: bmsys.weight_shard @w
// PF-NEXT: bmsys.all_gather
// PF-NEXT: bmsys.linear_grad_input
// PF: bmsys.silu_grad
// PF-NEXT: bmsys.weight_shard @g
// PF-NEXT: bmsys.all_gather
// PF-NEXT: bmsys.linear_grad_input
// RUN: not bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-autodiff --bmsys-optimizer --bmsys-zero="stage=3 ranks=2 prefetch=-1" 2>&1 | FileCheck %s --check-prefix=PFNEG
// PFNEG: error: bmsys-zero: prefetch must be >= 0, got -1

// Mixed precision: every use of a parameter casts it to bf16, so the shard is cast
// and the gather moves bf16 (half the bytes); the casts of the full tensor are gone.
// RUN: bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-mixed-precision --bmsys-autodiff --bmsys-optimizer --bmsys-zero="stage=3 ranks=2" | FileCheck %s --check-prefix=MP
// MP-LABEL: func.func @train_step
// MP: %[[S:.*]] = bmsys.weight_shard @w : tensor<32xf32>
// MP-NEXT: %[[C:.*]] = bmsys.cast %[[S]] : tensor<32xf32> -> tensor<32xbf16>
// MP-NEXT: bmsys.all_gather %[[C]] {ranks = 2 : i64} : tensor<32xbf16> -> tensor<8x8xbf16>
// MP-NOT: bmsys.cast {{.*}} tensor<8x8xf32> -> tensor<8x8xbf16>
// MP: bmsys.reduce_scatter {{.*}} : tensor<8x8xf32> -> tensor<32xf32>
