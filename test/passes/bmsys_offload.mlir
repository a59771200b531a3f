// RUN: bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-autodiff --bmsys-optimizer=max-grad-norm=1 --bmsys-offload | FileCheck %s --check-prefix=O
// RUN: bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-autodiff --bmsys-optimizer=max-grad-norm=1 --bmsys-zero="stage=1 ranks=2" --bmsys-offload | FileCheck %s --check-prefix=Z1
// RUN: bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-autodiff --bmsys-optimizer=max-grad-norm=1 --bmsys-zero="stage=3 ranks=2" --bmsys-offload | FileCheck %s --check-prefix=Z3
// RUN: bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-mixed-precision --bmsys-autodiff --bmsys-optimizer=max-grad-norm=1 --bmsys-zero="stage=3 ranks=2" --bmsys-offload | FileCheck %s --check-prefix=MP
// RUN: bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-autodiff --bmsys-optimizer --bmsys-zero="stage=2 ranks=2" --bmsys-offload --bmsys-inline-blocks --bmsys-bound-shapes=max-seq=8 --bmsys-lower-to-rt | FileCheck %s --check-prefix=LOWER
// RUN: bmsys-opt %S/Inputs/tiny_model.mlir --bmsys-train-pipeline="max-batch=2 max-seq=8 zero-stage=2 ranks=2 offload=1" --bmsys-memory-report="output=%t.txt" -o /dev/null
// RUN: FileCheck %s --check-prefix=REPORT < %t.txt

// One rank: the master has the parameter's shape; the states live on the host;
// each gradient goes to the host right after it is computed, the norm once known;
// the update runs on the master, then the master goes back to the device.
// O: bmsys.param @w : tensor<8x8xf32>
// O: bmsys.optimizer_state @w.exp_avg : tensor<8x8xf32> {placement = "host"}
// O: bmsys.optimizer_state @w.exp_avg_sq : tensor<8x8xf32> {placement = "host"}
// O-NEXT: bmsys.host_master @w.master of @w : tensor<8x8xf32>
// O-NOT: shard_ranks
// O-LABEL: func.func @train_step
// O: %[[GW:.*]] = bmsys.linear_grad_weight {{.*}} -> tensor<8x8xf32>
// O-NEXT: %[[GWH:.*]] = bmsys.to_host %[[GW]] into "w.grad" : tensor<8x8xf32>
// O: %[[N:.*]] = bmsys.global_norm
// O-NEXT: %[[NH:.*]] = bmsys.to_host %[[N]] into "global_norm.host" : tensor<f32>
// O: bmsys.adamw @w.master, %[[GWH]], %[[NH]] state [@w.exp_avg, @w.exp_avg_sq] {{{.*}}offload{{.*}}} : tensor<8x8xf32>, tensor<f32>
// O-NEXT: bmsys.upload_master @w.master
// O-NOT: zero_ranks
// O-NOT: bmsys.sync_param
// O: return

// ZeRO-1: each rank offloads its shard; the gradient shard goes to the host after
// its reduce-scatter; the upload lands in this rank's slice, then sync_param.
// Z1: bmsys.optimizer_state @w.exp_avg : tensor<32xf32> {bmsys.full_type = tensor<8x8xf32>, placement = "host"}
// Z1: bmsys.host_master @w.master of @w : tensor<32xf32> {shard_ranks = 2 : i64}
// Z1-LABEL: func.func @train_step
// Z1: %[[S:.*]] = bmsys.reduce_scatter %{{.*}} : tensor<8x8xf32> -> tensor<32xf32>
// Z1-NEXT: %[[SH:.*]] = bmsys.to_host %[[S]] into "w.grad" : tensor<32xf32>
// Z1: bmsys.adamw @w.master, %[[SH]], {{.*}}offload, param_sharded{{.*}}zero_ranks = 2 : i64
// Z1-NEXT: bmsys.upload_master @w.master {zero_ranks = 2 : i64}
// Z1-NEXT: bmsys.sync_param @w {ranks = 2 : i64}

// ZeRO-3: the parameter's shard is the upload's destination.
// Z3: bmsys.param @w : tensor<8x8xf32> from "m.safetensors"["w"] {zero_shards = 2 : i64}
// Z3: bmsys.host_master @w.master of @w : tensor<32xf32> {shard_ranks = 2 : i64}
// Z3-LABEL: func.func @train_step
// Z3: bmsys.adamw @w.master
// Z3-NEXT: bmsys.upload_master @w.master {param_sharded, zero_ranks = 2 : i64}
// Z3-NOT: bmsys.sync_param

// Mixed precision (param-dtype=auto: bf16): bf16 device parameters, gathered in bf16,
// the casts after the reads gone; f32 masters on the host.
// MP: bmsys.param @w : tensor<8x8xbf16> from "m.safetensors"["w"] {zero_shards = 2 : i64}
// MP: bmsys.host_master @w.master of @w : tensor<32xf32> {shard_ranks = 2 : i64}
// MP-LABEL: func.func @train_step
// MP: %[[WS:.*]] = bmsys.weight_shard @w : tensor<32xbf16>
// MP-NEXT: %[[W:.*]] = bmsys.all_gather %[[WS]] {ranks = 2 : i64} : tensor<32xbf16> -> tensor<8x8xbf16>
// MP-NEXT: bmsys.rms_norm
// MP-NOT: bmsys.cast %[[W]]
// MP: bmsys.adamw @w.master, {{.*}} : tensor<32xf32>, tensor<f32>

// Lowered: host buffers say so (placement), take no room in the state pool, and
// are touched only by to_host, adamw (offload = 1) and upload_master.
// LOWER: bmsys_rt.state @w.exp_avg {bytes = 128 : i64, dtype = f32, full_shape = array<i64: 8, 8>, offset = 0 : i64, placement = "host", role = "optimizer", shape = array<i64: 32>, shard_ranks = 2 : i64}
// LOWER: bmsys_rt.weight @w.master {dtype = f32, file = "m.safetensors", full_shape = array<i64: 8, 8>, key = "w", placement = "host", shape = array<i64: 32>, shard_ranks = 2 : i64}
// LOWER: bmsys_rt.state @w.grad {bytes = 128 : i64, dtype = f32, offset = 0 : i64, placement = "host", role = "offload", shape = array<i64: 32>}
// LOWER: bmsys_rt.launch "reduce_scatter"(%{{[0-9]+}}) -> (%[[RS:[0-9]+]])
// LOWER-NEXT: %[[GH:.*]] = bmsys_rt.state_ref @w.grad
// LOWER-NEXT: bmsys_rt.launch "to_host"(%[[RS]]) -> (%[[GH]])
// LOWER: %[[M:.*]] = bmsys_rt.weight_ref @w.master
// LOWER: bmsys_rt.launch "adamw"(%[[M]], %[[GH]], {{.*}}) -> (%[[M]], {{.*}}) with {{{.*}}offload = 1 : i64, param_sharded = 1 : i64{{.*}}zero_ranks = 2 : i64}
// LOWER-NEXT: %[[M2:.*]] = bmsys_rt.weight_ref @w.master
// LOWER-NEXT: %[[P:.*]] = bmsys_rt.weight_ref @w
// LOWER-NEXT: bmsys_rt.launch "upload_master"(%[[M2]]) -> (%[[P]]) with {param_sharded = 0 : i64, zero_ranks = 2 : i64}
// LOWER-NEXT: %[[P2:.*]] = bmsys_rt.weight_ref @w
// LOWER-NEXT: bmsys_rt.launch "sync_param"(%[[P2]]) -> (%[[P2]])

// The memory report: masters, states and gradient copies are host memory.
// REPORT: host memory
// REPORT: master_weights
// REPORT: optimizer_state
// REPORT: gradients
