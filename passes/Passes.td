//===- Passes.td - bmsys passes ----------------------------*- tablegen -*-===//
#ifndef BMSYS_PASSES_TD
#define BMSYS_PASSES_TD

include "mlir/Pass/PassBase.td"

def BmsysInlineBlocks : Pass<"bmsys-inline-blocks", "mlir::ModuleOp"> {
  let summary = "Replace every bmsys.block by its body";
  let description = [{
    Blocks carry structure that training and scheduling passes use; after
    those passes, lowering wants a flat sequence of ops. This pass moves each
    block's ops into the enclosing function and replaces the block's results by
    the yielded values.

    ```mlir
    %h = bmsys.block "layers.0" (%x) : (...) -> ... { ^bb0(%a): ... bmsys.yield %y }
    // becomes the ops of the body, with %a replaced by %x and %h by %y
    ```
  }];
  let dependentDialects = ["bmsys::BmsysDialect"];
}

def BmsysBoundShapes : Pass<"bmsys-bound-shapes", "mlir::ModuleOp"> {
  let summary = "Record the largest batch and sequence the compiled model accepts";
  let description = [{
    Sets the module attributes `bmsys.max_batch` and `bmsys.max_seq`, the
    bounds of the dynamic batch and sequence dimensions. The memory plan and
    the KV cache are sized for these bounds; the runtime refuses larger inputs.
    `max-seq=0` takes the model's `bmsys.max_positions` (set by the importer).

    ```mlir
    module attributes {bmsys.max_batch = 8 : i64, bmsys.max_seq = 64 : i64} { ... }
    ```
  }];
  let options = [
    Option<"maxBatch", "max-batch", "int64_t", /*default=*/"8",
           "largest batch the compiled model accepts">,
    Option<"maxSeq", "max-seq", "int64_t", /*default=*/"0",
           "largest sequence (prompt + generated tokens); 0 = the model's max positions">,
  ];
}

def BmsysAddKVCache : Pass<"bmsys-add-kv-cache", "mlir::ModuleOp"> {
  let summary = "Give every attention op a key/value cache for decoding";
  let description = [{
    For each `bmsys.attention` without a cache, declares a `bmsys.kv_cache`
    sized for the module's bounds (`bmsys-bound-shapes`) and attaches it, so
    a decode step reuses the keys and values of earlier tokens.

    ```mlir
    bmsys.kv_cache @kv0 {head_dim = 16 : i64, max_batch = 8 : i64, max_seq = 64 : i64, num_kv_heads = 2 : i64}
    %o = bmsys.attention %q, %k, %v cache @kv0 {...}
    ```
  }];
  let options = [
    Option<"functions", "functions", "std::string", /*default=*/"\"forward\"",
           "comma-separated functions whose attention ops get a cache">,
  ];
  let dependentDialects = ["bmsys::BmsysDialect"];
}

def BmsysCheckpoint : Pass<"bmsys-checkpoint", "mlir::ModuleOp"> {
  let summary = "Choose the blocks whose activations are recomputed in the backward pass";
  let description = [{
    Activation checkpointing, as BMTrain's CheckpointBlock: marks the chosen
    `bmsys.block`s with `bmsys.checkpoint`. `bmsys-autodiff` then keeps only
    such a block's inputs and recomputes its body in the backward pass, so
    its intermediates die right after the forward and the memory plan reuses
    their memory. Policies: `none`, `every` (every block), `every-k` (blocks
    0, k, 2k, ...).

    ```mlir
    %h = bmsys.block "layers.0" (%x, %pos) {bmsys.checkpoint} : ...
    ```
  }];
  let options = [
    Option<"policy", "policy", "std::string", /*default=*/"\"every\"",
           "none, every or every-k">,
    Option<"k", "k", "int64_t", /*default=*/"2", "the period of the every-k policy">,
  ];
}

def BmsysMixedPrecision : Pass<"bmsys-mixed-precision", "mlir::ModuleOp"> {
  let summary = "Compute in bfloat16 or float16 with float32 master weights";
  let description = [{
    As BMTrain's mixed precision: parameters stay float32 (the master
    weights the optimizer updates); `forward` computes in `dtype`. Every
    float32 value computed by `forward` takes the compute type, each
    parameter is cast where it is read (`bmsys.cast`), and the function's
    float results are cast back to float32, so the loss, gradients of
    parameters (casts differentiate to casts) and optimizer state are float32.
    With `dtype=f16` the module is marked for dynamic loss scaling
    (`bmsys.loss_scaling`), which `bmsys-autodiff` and `bmsys-optimizer`
    apply: the seed of the backward pass is multiplied by the runtime's loss
    scale and updates divide it out, skipping steps whose gradients overflow.
    Run it before `bmsys-autodiff`.

    ```mlir
    %w = bmsys.weight @w : tensor<64x64xf32>
    %wb = bmsys.cast %w : tensor<64x64xf32> -> tensor<64x64xbf16>
    %y = bmsys.linear %x, %wb : (tensor<?x?x64xbf16>, tensor<64x64xbf16>) -> tensor<?x?x64xbf16>
    ```
  }];
  let options = [
    Option<"dtype", "dtype", "std::string", /*default=*/"\"bf16\"",
           "bf16, f16, or f32 (no retyping: only loss scaling, for tests)">,
    Option<"lossScaling", "loss-scaling", "std::string", /*default=*/"\"auto\"",
           "auto (dynamic for f16, none for bf16), dynamic or none">,
  ];
  let dependentDialects = ["bmsys::BmsysDialect"];
}

def BmsysAutodiff : Pass<"bmsys-autodiff", "mlir::ModuleOp"> {
  let summary = "Build a training step: forward, loss, and the backward pass";
  let description = [{
    From the function `forward` (whose result `logits` the importer names),
    builds `train_step(input_ids) -> loss`: the forward, the mean next-token
    cross-entropy of the logits against the ids, and the gradient of every
    parameter, built in reverse order from each op's rule
    (`DifferentiableOpInterface`) and summed where a value has several uses
    (tied embeddings). Each parameter's gradient is marked with `bmsys.grad`
    for `bmsys-optimizer`; with `return-grads` it is also returned as
    `grad.<key>`; parameters marked `bmsys.frozen` are not trained. Blocks
    marked by `bmsys-checkpoint` are recomputed in the
    backward pass (ops tagged `bmsys.recompute`). `forward` is kept for
    inference and generation.

    ```mlir
    func.func @train_step(%ids: tensor<?x?xi64> {bmsys.name = "input_ids"}) -> (tensor<f32> {bmsys.name = "loss"}) {
      ...forward...
      %loss = bmsys.cross_entropy %logits, %ids {shift} : ...
      %dlogits = bmsys.cross_entropy_grad %logits, %ids {shift} : ...
      ...backward...
      bmsys.grad @lm_head.weight, %dw : tensor<256x64xf32>
    }
    ```
  }];
  let options = [
    Option<"returnGrads", "return-grads", "bool", /*default=*/"false",
           "also return every parameter gradient as grad.<key>">,
  ];
  let dependentDialects = ["bmsys::BmsysDialect"];
}

def BmsysOptimizer : Pass<"bmsys-optimizer", "mlir::ModuleOp"> {
  let summary = "Turn parameter gradients into optimizer updates";
  let description = [{
    Replaces the `bmsys.grad` markers of each function by global-norm
    clipping (`bmsys.global_norm`, returned as `grad_norm`) and one in-place
    update per parameter: `bmsys.adamw` with states `<param>.exp_avg` and
    `<param>.exp_avg_sq`, or `bmsys.sgd` with `<param>.momentum_buffer`
    (PyTorch's names). The learning-rate schedule is an attribute of each
    update, evaluated by the runtime at each step.

    ```mlir
    bmsys.optimizer_state @w.exp_avg : tensor<64xf32>
    %norm = bmsys.global_norm %g : tensor<64xf32> -> tensor<f32>
    bmsys.adamw @w, %g, %norm state [@w.exp_avg, @w.exp_avg_sq] {...} : tensor<64xf32>, tensor<f32>
    ```
  }];
  let options = [
    Option<"optimizer", "optimizer", "std::string", /*default=*/"\"adamw\"", "adamw or sgd">,
    Option<"lr", "lr", "double", /*default=*/"1e-3", "peak learning rate">,
    Option<"beta1", "beta1", "double", /*default=*/"0.9", "AdamW beta1">,
    Option<"beta2", "beta2", "double", /*default=*/"0.999", "AdamW beta2">,
    Option<"eps", "eps", "double", /*default=*/"1e-8", "AdamW epsilon">,
    Option<"weightDecay", "weight-decay", "double", /*default=*/"0.0",
           "decoupled weight decay (AdamW) or L2 (SGD)">,
    Option<"momentum", "momentum", "double", /*default=*/"0.0", "SGD momentum">,
    Option<"maxGradNorm", "max-grad-norm", "double", /*default=*/"0.0",
           "global-norm clipping threshold; 0 = no clipping">,
    Option<"schedule", "schedule", "std::string", /*default=*/"\"constant\"",
           "learning-rate schedule: constant, cosine or linear">,
    Option<"warmupSteps", "warmup-steps", "int64_t", /*default=*/"0", "linear warm-up steps">,
    Option<"totalSteps", "total-steps", "int64_t", /*default=*/"0",
           "steps of the schedule (cosine and linear decay)">,
    Option<"minLr", "min-lr", "double", /*default=*/"0.0", "learning rate at the end of decay">,
  ];
  let dependentDialects = ["bmsys::BmsysDialect"];
}

def BmsysZero : Pass<"bmsys-zero", "mlir::ModuleOp"> {
  let summary = "Data parallelism with ZeRO sharding of optimizer state, gradients and parameters";
  let description = [{
    Runs after `bmsys-optimizer`, for `ranks` data-parallel ranks that each
    train on their own part of the batch (as BMTrain and DeepSpeed do):

    - stage 0: every gradient is averaged over the ranks (`bmsys.all_reduce`)
      right after it is computed;
    - stage 1: gradients are reduce-scattered (`bmsys.reduce_scatter`) at the
      end of the backward pass; each rank keeps the optimizer state of its flat
      shard only, updates its shard of each parameter, and `bmsys.sync_param`
      all-gathers the parameters;
    - stage 2: as stage 1, but each gradient is reduce-scattered as soon as it
      is complete, so full gradients do not all live at once;
    - stage 3: as stage 2, and parameters are stored sharded too
      (`zero_shards` on the `bmsys.param`): each use gathers the parameter
      (`bmsys.all_gather`), once for the forward pass and again for the
      backward pass, and the gathered copy dies after its last use.

    The gradient norm is computed over shards and summed across ranks; the
    returned loss is averaged over the ranks. The module records
    `bmsys.data_parallel = ranks`.

    `prefetch = P` (stage 3) overlaps the gathers with compute: in
    `train_step`, the k-th all-gather (with its `bmsys.weight_shard`) moves up
    to the first use of the (k-P)-th gathered parameter, so a runtime that runs
    collectives on their own stream (the CUDA backend) gathers the next
    parameters while the current ones are used; at most P gathered parameters
    wait ahead of their use, and the memory plan accounts for their longer
    lifetime. A Llama block has 9 parameters, so P = 9 prefetches one block.

    ```mlir
    %gs = bmsys.reduce_scatter %g {ranks = 2 : i64, reduction = "mean"} : tensor<64x64xf32> -> tensor<2048xf32>
    bmsys.adamw @w, %gs, %norm state [@w.exp_avg, @w.exp_avg_sq] {..., zero_ranks = 2 : i64} : tensor<2048xf32>, tensor<f32>
    bmsys.sync_param @w {ranks = 2 : i64}
    ```
  }];
  let options = [
    Option<"stage", "stage", "int64_t", /*default=*/"1", "ZeRO stage: 0, 1, 2 or 3">,
    Option<"ranks", "ranks", "int64_t", /*default=*/"2", "data-parallel ranks">,
    Option<"prefetch", "prefetch", "int64_t", /*default=*/"0",
           "stage 3: each parameter's all-gather is issued at the first use of the parameter gathered this many gathers earlier (0: right before its own use)">,
  ];
  let dependentDialects = ["bmsys::BmsysDialect"];
}

def BmsysOffload : Pass<"bmsys-offload", "mlir::ModuleOp"> {
  let summary = "Optimizer offload: fp32 master weights and AdamW state in host memory, the step on the CPU";
  let description = [{
    Runs after `bmsys-optimizer` (and `bmsys-zero`, whose shards it
    offloads: each rank keeps only its shard on the host). For every
    `bmsys.adamw` of `train_step`:

    - a `bmsys.host_master` declares the float32 master weights in host
      memory (the parameter's shape, or this rank's flat ZeRO shard), loaded
      and checkpointed under the parameter's key;
    - the optimizer states get `placement = "host"`;
    - `bmsys.to_host` copies the gradient (after its ZeRO reduction) to a host
      buffer right where it is complete, so the copy overlaps the rest of the
      backward pass, and the global norm once it is known;
    - the update becomes `bmsys.adamw {offload}` on the master, run by the
      runtime's vectorized, multithreaded CPU AdamW;
    - `bmsys.upload_master` copies the updated master into the device
      parameter right after the update (before ZeRO-1/2's `bmsys.sync_param`).

    `param-dtype` narrows the device parameters to bf16 or f16 (`auto`: the
    compute dtype of `bmsys-mixed-precision`, f32 without it): every read of
    a parameter must then be a cast to that type, which disappears. The master
    stays float32 on the host. Only AdamW has a CPU step: an `sgd` update is
    an error.

    ```mlir
    bmsys.host_master @w.master of @w : tensor<32xf32> {shard_ranks = 2 : i64}
    %gh = bmsys.to_host %gs into "w.grad" : tensor<32xf32>
    bmsys.adamw @w.master, %gh, %nh state [@w.exp_avg, @w.exp_avg_sq] {..., offload, param_sharded, zero_ranks = 2 : i64} : tensor<32xf32>, tensor<f32>
    bmsys.upload_master @w.master {zero_ranks = 2 : i64}
    bmsys.sync_param @w {ranks = 2 : i64}
    ```
  }];
  let options = [
    Option<"paramDtype", "param-dtype", "std::string", /*default=*/"\"auto\"",
           "element type of the device parameters: auto, f32, bf16 or f16">,
  ];
  let dependentDialects = ["bmsys::BmsysDialect"];
}

def BmsysTensorParallel : Pass<"bmsys-tensor-parallel", "mlir::ModuleOp"> {
  let summary = "Megatron-style tensor parallelism: column- and row-parallel linears, vocab-parallel embedding and loss";
  let description = [{
    Runs on `forward` before `bmsys-autodiff` (which then derives the
    backward pass from the inserted ops' gradient rules) and splits every
    layer over `degree` tensor-parallel ranks:

    - attention: the q, k and v projections are column-parallel (each rank
      computes `num_heads / degree` query heads and `num_kv_heads / degree`
      key/value heads, so attention itself needs no communication), the output
      projection is row-parallel;
    - MLP: the up (and gate) projections are column-parallel, the down
      projection row-parallel;
    - the token embedding is vocab-parallel (rows split, `vocab_shards`), the
      output projection column-parallel over the vocabulary, and the loss a
      vocab-parallel cross-entropy (`bmsys.vocab_shards` on the logits result,
      read by `bmsys-autodiff`).

    The input of each group of column-parallel linears goes through
    `bmsys.tp_copy` (its gradient is all-reduced over the group); the output of
    each row-parallel linear and of the embedding through
    `bmsys.tp_all_reduce`. Sharded parameters get their local type and record
    the slice of the stored tensor (`tp_dim`, `tp_ranks`): each rank loads only
    its slice of the Hugging Face tensor, and checkpoints are saved gathered.
    Norm weights stay replicated. The module records `bmsys.tensor_parallel`.

    ```mlir
    bmsys.param @q : tensor<32x64xf32> from "model.safetensors"["q"] {tp_dim = 0 : i64, tp_ranks = 2 : i64}
    %xr = bmsys.tp_copy %x {ranks = 2 : i64} : tensor<?x?x64xf32>
    %q = bmsys.linear %xr, %wq : (tensor<?x?x64xf32>, tensor<32x64xf32>) -> tensor<?x?x32xf32>
    %p = bmsys.linear %att, %wo : (tensor<?x?x32xf32>, tensor<64x32xf32>) -> tensor<?x?x64xf32>
    %o = bmsys.tp_all_reduce %p {ranks = 2 : i64} : tensor<?x?x64xf32>
    ```
  }];
  let options = [
    Option<"degree", "degree", "int64_t", /*default=*/"2", "tensor-parallel ranks">,
  ];
  let dependentDialects = ["bmsys::BmsysDialect"];
}

def BmsysPipelineParallel : Pass<"bmsys-pipeline-parallel", "mlir::ModuleOp"> {
  let summary = "pipeline parallelism: cut the layers into stages, mark the values that cross them";
  let description = [{
    Runs on `forward` before `bmsys-autodiff` and assigns the layers
    (`bmsys.block`) to `stages` pipeline stages of equal size: block k of L
    runs on stage k / (L / stages) (attribute `bmsys.pp_stage`). Other ops run
    on the latest stage among their operands (the token embedding on stage
    0; the final norm, the output projection and the loss on the last), and
    each parameter on the stage that reads it (attribute `pp_stage`; a
    parameter read on two stages, such as tied embeddings, is an error).
    Every use of a value on a later stage goes through a `bmsys.pp_boundary`
    per stage crossed, whose gradient rule marks the backward pass as well.
    Values computed from the token ids alone (positions) are recomputed on
    every stage. The module records `bmsys.pipeline_stages` and
    `bmsys.pipeline_micro_batches` (the number of micro-batches each step's
    batch is cut into); `bmsys-pipeline-schedule` turns the training step
    into one function per stage that runs them in the 1F1B order.
    `stages` must divide the number of layers.

    ```mlir
    %h = bmsys.block "layers.1" ... attributes {bmsys.pp_stage = 1 : i64}
    %x1 = bmsys.pp_boundary %x {from = 0 : i64, to = 1 : i64, channel = 0 : i64} : tensor<?x?x64xf32>
    bmsys.param @model.norm.weight : tensor<64xf32> from "model.safetensors"["model.norm.weight"] {pp_stage = 1 : i64}
    ```
  }];
  let options = [
    Option<"stages", "stages", "int64_t", /*default=*/"2", "pipeline stages (each on its own ranks)">,
    Option<"microBatches", "micro-batches", "int64_t", /*default=*/"2",
           "micro-batches per step (the rows of each rank's batch are split evenly)">,
  ];
  let dependentDialects = ["bmsys::BmsysDialect"];
}

def BmsysPipelineSchedule : Pass<"bmsys-pipeline-schedule", "mlir::ModuleOp"> {
  let summary = "1F1B pipeline schedule: one training function per stage, micro-batches, send/recv";
  let description = [{
    Runs after `bmsys-optimizer` on a module cut by `bmsys-pipeline-parallel`
    (before `bmsys-zero`, which then acts on each stage's function) and
    replaces `train_step` by `train_step.stage<s>` for each stage s
    (attribute `bmsys.pipeline_stage`). Each takes the M micro-batches of
    token ids (`input_ids.mb<m>`; the runtime cuts the batch) and runs its
    stage's part of the forward (F) and backward (B) pass of each in the 1F1B
    order: min(S - 1 - s, M) forwards, then one forward and one backward in
    turn, then the remaining backwards. Each `bmsys.pp_boundary` becomes a
    `bmsys.pp_send` on the stage it leaves and a `bmsys.pp_recv` on the stage
    it enters, per micro-batch. An op runs on the stage of the parameters and
    boundaries it is connected to without crossing a boundary; it is in B if
    it depends on the loss seed or on a received gradient.

    Gradients are summed over the micro-batches as each backward completes
    and divided by M (`bmsys.pp_mean`), so the update equals the one of the
    whole batch; the loss likewise, on the last stage, which then broadcasts
    it (`bmsys.pp_broadcast`). The global norm (`pp_stages`) sums the squares
    of every stage's gradients.

    ```mlir
    func.func @train_step.stage0(%mb0: tensor<?x?xi64> {bmsys.name = "input_ids.mb0"}, ...) attributes {bmsys.pipeline_stage = 0 : i64} {
      ...
      bmsys.pp_send %h {peer = 1 : i64, micro_batch = 0 : i64, channel = 0 : i64} : tensor<?x?x64xf32>
      ...
      %g = bmsys.pp_recv {peer = 1 : i64, micro_batch = 0 : i64, channel = 1 : i64} : tensor<?x?x64xf32>
    ```
  }];
  let dependentDialects = ["bmsys::BmsysDialect"];
}

def BmsysPrune : Pass<"bmsys-prune", "mlir::ModuleOp"> {
  let summary = "Prune linear weights with a mask kept through training";
  let description = [{
    BMCook's weight pruning. For every linear weight whose key matches
    `params` (a regular expression), a 0/1 mask is computed from the weight's
    magnitudes at compile time: `method=magnitude` zeroes the `sparsity`
    fraction of smallest entries of each tensor; `method=2:4` keeps the two
    largest of every four consecutive weights along the input dimension
    (BMCook's `m4n2_1d`, the pattern sparse tensor cores run). The pruned
    weights (`w * mask`) and the masks are written to `output`, the parameter
    is re-pointed there and marked `bmsys.prune = {method, mask = @<p>.mask}`
    (the mask parameter is `bmsys.frozen`: never trained),
    and every read of it becomes `w * mask` (`bmsys.mul`). The product
    masks the gradient too, so pruned weights stay exactly zero under
    training; exported weights are already pruned.

    Structured methods remove whole heads or layers, chosen by importance over
    a calibration set: `calibration` lists safetensors files written by
    `bmsys-run infer --function train_step` of an artifact compiled with
    `return-grads` (one file per calibration batch, each holding
    `grad.<key>`). For a head h, `dL/dAtt_h · Att_h` summed over the batch's
    tokens equals `sum(W_o[:, cols(h)] * dL/dW_o[:, cols(h)])` (the output
    projection's columns that read head h), so the importance
    `E_batch |Att_hᵀ dL/dAtt_h|` (Michel et al., 2019) comes from weights and
    parameter gradients alone; a layer's is the same Taylor term over its
    residual-branch projections (the linears whose result is added to the
    residual stream: attention output and FFN down projection).

    - `method=heads`: in every attention, the `count` least important query
      heads are pruned (with grouped-query attention, `count / num_kv_heads`
      in each key/value group, so every layer keeps the same shape). The
      output projection gets a mask zeroing the heads' columns, as above; the
      attention op records `bmsys.pruned_heads` and `bmsys.head_importance`.
    - `method=layers`: the `count` least important `bmsys.block`s are removed
      (their result is their input: the residual stream passes through) and
      their parameters dropped; the module records `bmsys.pruned_layers`
      (block names) and `bmsys.layer_importance`.

    `bmsys-export-pruned` then writes the physically smaller model.

    ```mlir
    bmsys.param @w : tensor<64x64xf32> from "model.pruned.safetensors"["w"] {bmsys.prune = {mask = @w.mask, method = "2:4"}}
    bmsys.param @w.mask : tensor<64x64xf32> from "model.pruned.safetensors"["w.mask"]
    %w = bmsys.weight @w : tensor<64x64xf32>
    %m = bmsys.weight @w.mask : tensor<64x64xf32>
    %wm = bmsys.mul %w, %m : tensor<64x64xf32>
    ```
  }];
  let options = [
    Option<"method", "method", "std::string", /*default=*/"\"2:4\"",
           "magnitude, 2:4, heads or layers">,
    Option<"sparsity", "sparsity", "double", /*default=*/"0.5",
           "fraction of weights zeroed by magnitude pruning">,
    Option<"params", "params", "std::string", /*default=*/"\"\"",
           "regular expression over parameter keys (default: every linear weight)">,
    Option<"output", "output", "std::string", /*default=*/"\"\"",
           "safetensors file for pruned weights and masks (default: model.pruned.safetensors "
           "beside the model)">,
    Option<"count", "count", "int64_t", /*default=*/"1",
           "heads: query heads removed per layer; layers: layers removed">,
    ListOption<"calibration", "calibration", "std::string",
               "heads/layers: safetensors files of grad.<key> (one per calibration batch)">,
  ];
  let dependentDialects = ["bmsys::BmsysDialect"];
}

def BmsysExportPruned : Pass<"bmsys-export-pruned", "mlir::ModuleOp"> {
  let summary = "Write a head- or layer-pruned model as a smaller Hugging Face checkpoint";
  let description = [{
    Structured pruning's export. From a module pruned by `bmsys-prune`
    (`method=heads` and/or `method=layers`), writes `output/model.safetensors`
    and `output/config.json`: the weights of removed layers are left out and
    the remaining layers renumbered (`num_hidden_layers` / `n_layer`), and the
    pruned heads' rows of `q_proj` (and of `k_proj`/`v_proj` when every query
    head has its own key/value head) and columns of `o_proj` are cut out
    (`num_attention_heads`, `num_key_value_heads`, `head_dim`). Other masks
    (2:4, magnitude) are applied to the weights and dropped. `weights` reads
    the values from a checkpoint's `model.safetensors` (a trained masked
    model) instead of each parameter's own file. The result imports with
    `bmsys-import-hf` and computes what the masked model computes. GPT-2's
    config cannot express heads narrower than `n_embd / n_head`, so only layer
    pruning exports for GPT-2. The IR is not changed.

    ```
    bmsys-opt pruned.mlir --bmsys-export-pruned="output=small weights=ckpt/model.safetensors"
    bmsys-import-hf small -o small.mlir
    ```
  }];
  let options = [
    Option<"output", "output", "std::string", /*default=*/"\"\"",
           "directory to write model.safetensors and config.json to (required)">,
    Option<"weights", "weights", "std::string", /*default=*/"\"\"",
           "safetensors file to read every parameter from (default: each parameter's file)">,
  ];
}

def BmsysDistill : Pass<"bmsys-distill", "mlir::ModuleOp"> {
  let summary = "Join a frozen teacher and the student in one distillation training function";
  let description = [{
    BMCook's knowledge distillation. Reads the `teacher` module (a model
    imported by `bmsys-import-hf`), copies its parameters into the student's
    module renamed `<prefix><name>` (symbol and key: the teacher's keys must
    not collide with the student's in artifacts and checkpoints), writes
    their values under those keys to `teacher-output`, and marks them
    `bmsys.frozen` (no gradient, no update).

    Builds `distill_forward(input_ids)`: the student's forward, then the
    teacher's (its blocks renamed with the prefix), and the loss terms, each
    also a result:

    - `distill.soft_ce`: `bmsys.distill_soft_ce` of the student's logits
      against the teacher's at `temperature`, times `soft-ce-scale`;
    - `distill.hidden_mse.<i>` for each `s:t` of `layer-map`:
      `bmsys.distill_hidden_mse` between the normalized outputs of student
      block `s` and teacher block `t` (indices in program order), times
      `hidden-scale`. When the widths differ, `projection=true` adds a
      trainable `distill.proj.<s>.weight` `[teacher, student]` (initially
      the identity on the common features) applied to the student's states.

    The module attribute `bmsys.train_function = "distill_forward"` makes
    `bmsys-autodiff` differentiate it: the training loss is the student's
    next-token cross-entropy plus every term. `forward` stays the student
    alone, for inference and export; `distill_forward` also runs as an
    artifact function, to measure the terms.

    ```mlir
    bmsys.param @teacher.lm_head.weight : tensor<256x64xf32> from "teacher.safetensors"["teacher.lm_head.weight"] {bmsys.frozen}
    %l = bmsys.distill_soft_ce %logits, %tlogits {scale = 1.0 : f64, temperature = 2.0 : f64} : (...) -> tensor<f32>
    ```
  }];
  let options = [
    Option<"teacher", "teacher", "std::string", /*default=*/"\"\"",
           "the teacher model, imported by bmsys-import-hf (.mlir; required)">,
    Option<"temperature", "temperature", "double", /*default=*/"2.0",
           "softmax temperature of the soft cross-entropy">,
    Option<"softCeScale", "soft-ce-scale", "double", /*default=*/"1.0",
           "scale of the soft cross-entropy term">,
    Option<"hiddenScale", "hidden-scale", "double", /*default=*/"1.0",
           "scale of each hidden-state MSE term">,
    Option<"layerMap", "layer-map", "std::string", /*default=*/"\"\"",
           "student:teacher block pairs for hidden-state MSE, e.g. 0:1,1:3 (empty: none)">,
    Option<"projection", "projection", "bool", /*default=*/"false",
           "learn a projection where student and teacher widths differ">,
    Option<"prefix", "prefix", "std::string", /*default=*/"\"teacher.\"",
           "prefix of the teacher's parameter names and keys">,
    Option<"teacherOutput", "teacher-output", "std::string", /*default=*/"\"\"",
           "safetensors file for the renamed teacher weights and projections (default: "
           "teacher.safetensors beside the student's weights)">,
  ];
  let dependentDialects = ["bmsys::BmsysDialect", "mlir::func::FuncDialect"];
}

def BmsysMoefy : Pass<"bmsys-moefy", "mlir::ModuleOp"> {
  let summary = "Split every FFN into experts and run each token's top-k (MoEfication)";
  let description = [{
    MoEfication (Zhang et al., 2022) of a trained model, for inference. For
    each feed-forward layer (`down(act(in(x)))`, or the gated
    `down(act(gate(x)) * up(x))`), the `n` neurons are split into `experts`
    experts of exactly `n / experts` neurons by balanced k-means over the
    L2-normalized rows of the first weight matrix (`gate_proj` / `c_fc`):
    each iteration assigns (neuron, expert) pairs in order of increasing
    distance, skipping full experts, then recomputes the centroids; at most
    `iterations` rounds, from a farthest-point initialization (deterministic).
    The weights are permuted so each expert's neurons are contiguous and
    written to `output` as `<prefix>.moe.{router,w_in,w_up,w_out,b_in,b_out}`;
    the router is the experts' centroids. The FFN becomes one
    `bmsys.moe_ffn` running each token's `top-k` experts by `x · router^T`.

    The FLOPs per token of each FFN, dense and with the router and top-k
    experts, are recorded on the op (`bmsys.ffn_flops`) and summed in the
    module attribute `bmsys.moe_report` (`ffn_flops_saved` is the saved
    fraction); `report` also prints them to stderr. With `top-k = experts`
    the result is the dense model's (up to float summation order).

    ```mlir
    %y = bmsys.moe_ffn %x, %router [%w_in, %w_up, %w_out] {activation = "silu", bmsys.ffn_flops = {dense = 67584.0 : f64, moe = 17920.0 : f64}, experts = 8 : i64, gated, top_k = 2 : i64} : ...
    ```
  }];
  let options = [
    Option<"experts", "experts", "int64_t", /*default=*/"8", "experts per FFN">,
    Option<"topK", "top-k", "int64_t", /*default=*/"2", "experts each token runs">,
    Option<"iterations", "iterations", "int64_t", /*default=*/"20",
           "at most this many balanced k-means rounds">,
    Option<"output", "output", "std::string", /*default=*/"\"\"",
           "safetensors file for the expert weights and routers (default: "
           "model.moe.safetensors beside the model)">,
    Option<"report", "report", "bool", /*default=*/"false",
           "print the FFN FLOPs per token, dense and MoE, to stderr">,
  ];
  let dependentDialects = ["bmsys::BmsysDialect"];
}

def BmsysCompress : Pass<"bmsys-compress", "mlir::ModuleOp"> {
  let summary = "Apply the compression passes one JSON config file asks for";
  let description = [{
    BMCook's single-config workflow. Reads `config`, a JSON object with the
    optional sections `pruning` (one `bmsys-prune` stage, or an array of
    stages applied in order), `distillation` (`bmsys-distill`),
    `quantization` (`bmsys-quantize`) and `moefication` (`bmsys-moefy`), and
    runs the passes in that order with the section's settings (keys are the
    passes' options with underscores: `soft_ce_scale`, `layer_map` as
    `[[student, teacher], ...]`, `top_k`, ...). Unknown keys, wrong types and
    out-of-range values are errors naming the file and key; relative paths
    are relative to the config file. `bmsys-compress-pipeline` is this pass
    as a pipeline.

    ```json
    {"pruning": {"method": "2:4"},
     "distillation": {"teacher": "teacher.mlir", "temperature": 2.0, "layer_map": [[0, 1]]},
     "quantization": {"mode": "qat"}}
    ```
  }];
  let options = [
    Option<"config", "config", "std::string", /*default=*/"\"\"",
           "the JSON config file (required)">,
  ];
  let dependentDialects = ["bmsys::BmsysDialect", "mlir::func::FuncDialect"];
}

def BmsysQuantize : Pass<"bmsys-quantize", "mlir::ModuleOp"> {
  let summary = "Row-wise symmetric INT8 weights for every linear op";
  let description = [{
    BMInf's quantization, at compile time: the float weight of each
    `bmsys.linear` is read from its safetensors file, quantized per output
    row (`scale = max|w_row| / 127`, `q = round(w / scale)`), and written once
    to `output` as `<key>_int8` (`[out, in]` INT8, GPT-2's `[in, out]` weights
    transposed) and `<key>_scale`; later runs read that file. Each linear
    becomes a `bmsys.linear_int8` on the new parameters; parameters no longer
    read are dropped. `activations=int8` also quantizes activations per token
    (INT8 GEMMs, for prefill); `float` keeps them (weight-only, for decode).
    `skip` lists parameter keys to keep in float (for example a tied
    `lm_head`).

    `header-only` skips the arithmetic and never reads a float weight: the
    IR is the same (shapes come from the parameters' types) and `output`
    gets the same header over a data region that is a hole (a sparse file of
    zeros). It is for benchmarks of large models whose runs fill weights on
    the device (`--random-weights`); `bench/make_model.py --int8` writes the
    same header on the machine that runs them.

    `mode=qat` (quantization-aware training, BMCook) instead inserts a
    `bmsys.fake_quant` after every read of those weights: training sees the
    INT8 rounding, gradients pass straight through, and running
    `mode=int8` on the trained checkpoint exports exactly the weights the
    training saw.

    ```mlir
    bmsys.param @q_proj.weight_int8 : tensor<64x64xi8> from "model.int8.safetensors"["q_proj.weight_int8"]
    bmsys.param @q_proj.weight_scale : tensor<64xf32> from "model.int8.safetensors"["q_proj.weight_scale"]
    %y = bmsys.linear_int8 %x, %q, %s {activations = "float"} : ...
    ```
  }];
  let options = [
    Option<"mode", "mode", "std::string", /*default=*/"\"int8\"",
           "int8 (real INT8 weights) or qat (fake quantization for training)">,
    Option<"activations", "activations", "std::string", /*default=*/"\"float\"",
           "float (weight-only INT8) or int8 (per-token INT8 activations)">,
    Option<"output", "output", "std::string", /*default=*/"\"\"",
           "safetensors file for the quantized weights (default: beside the first weight "
           "file, named model.int8.safetensors)">,
    ListOption<"skip", "skip", "std::string", "parameter keys to leave in float">,
    Option<"headerOnly", "header-only", "bool", /*default=*/"false",
           "do not read the float weights: write `output` as a safetensors header (the "
           "same names, dtypes and shapes) over a hole of zeros, for benchmarks that fill "
           "weights with --random-weights">,
  ];
  let dependentDialects = ["bmsys::BmsysDialect"];
}

def BmsysLowerToRt : Pass<"bmsys-lower-to-rt", "mlir::ModuleOp"> {
  let summary = "Lower bmsys functions on tensors to bmsys_rt buffers and kernel launches";
  let description = [{
    Every parameter becomes a `bmsys_rt.weight`, every KV cache two
    `bmsys_rt.state`s (keys, values) placed in the state pool, and every
    function a `bmsys_rt.func`: arguments become `bmsys_rt.input`s, each op
    result a `bmsys_rt.alloc` with a symbolic shape written by a
    `bmsys_rt.launch` of the op's kernel, and results `bmsys_rt.output`s named
    by the `bmsys.name` result attribute. Blocks must be inlined first.

    ```mlir
    %y = bmsys.rms_norm %x, %g {eps = 1.0e-05 : f64} : (...) -> tensor<?x?x64xf32>
    // becomes
    %y = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 64]}
    bmsys_rt.launch "rms_norm" (%x, %g) -> (%y) with {eps = 1.0e-05 : f64}
    ```
  }];
  let dependentDialects = ["bmsys::rt::BmsysRtDialect"];
}

def BmsysPlanMemory : Pass<"bmsys-plan-memory", "mlir::ModuleOp"> {
  let summary = "Assign activation buffers to offsets in one pool, reusing memory by lifetime";
  let description = [{
    Computes each `bmsys_rt.alloc`'s lifetime (from its definition to its last
    use), inserts a `bmsys_rt.dealloc` after the last use, and places buffers
    in a single pool with a best-fit allocator over the bounded sizes, so
    buffers that are never alive together share memory. The pool size is
    recorded as the module attribute `bmsys_rt.activation_bytes`. Outputs
    live until the end of the function.

    Pipeline parallelism (`bmsys_rt.pipeline_stages` = P > 1): a rank runs
    only its stage's function, so each stage gets pools of its own. Stage s's
    activation pool is the largest peak of its functions
    (`bmsys_rt.pipeline_stage = s`); its state pool holds the states its
    functions reference (`pp_stage = s` on the `bmsys_rt.state`), laid out
    from offset 0, so offsets of different stages overlap. States that no
    stage function references (the KV cache of `forward`, which a pipelined
    artifact does not run) belong to no stage's pool. The sizes are recorded
    as `bmsys_rt.stage_activation_bytes` and `bmsys_rt.stage_state_bytes`
    (one per stage); `bmsys_rt.activation_bytes` and `bmsys_rt.state_bytes`
    stay the largest extents, which every offset fits. A state referenced by
    two stages is an error.

    ```mlir
    %a = bmsys_rt.alloc {dtype = f32, shape = ["B", "S", 64], offset = 0 : i64, bytes = 16384 : i64}
    ...
    bmsys_rt.dealloc %a
    // pipelined: stage 0's and stage 1's AdamW states both start at offset 0
    module attributes {bmsys_rt.stage_activation_bytes = array<i64: 4096, 6400>,
                       bmsys_rt.stage_state_bytes = array<i64: 2048, 2560>, ...}
    bmsys_rt.state @embed.exp_avg {offset = 0 : i64, pp_stage = 0 : i64, role = "optimizer", ...}
    bmsys_rt.state @ln1.exp_avg {offset = 0 : i64, pp_stage = 1 : i64, role = "optimizer", ...}
    ```
  }];
  let options = [
    Option<"alignment", "alignment", "int64_t", /*default=*/"256",
           "byte alignment of every buffer in the pool">,
  ];
}

def BmsysMemoryReport : Pass<"bmsys-memory-report", "mlir::ModuleOp"> {
  let summary = "Print where the memory of a planned module goes, per rank";
  let description = [{
    Accounts, for a planned `bmsys_rt` module, for every byte the runtime
    allocates on one rank: parameters, optimizer state, KV cache, function
    inputs, the backend workspace (`workspace`), and the activation pool
    broken down at its peak (the allocation that sets its size): parameter
    gradients, activations per block (`bmsys.block` of their location),
    activations outside blocks, activation gradients, communication buffers
    (collective results) and the fragmentation the placement left. The rows
    sum exactly to the plan's total (weights + activation pool + state pool +
    inputs + workspace). For a training step it also lists, per block, the
    bytes its forward keeps for the backward pass, as planned, if the block
    were checkpointed and if it were not. With `calibration` it also prints
    the cost model's predicted time of one call of each function at the
    bounds (the step time bmsys-fit uses). With `json` the same is written as
    JSON (docs/autofit.md). The IR is not changed.

    A pipelined module (per-stage pools of `bmsys-plan-memory`) gets one table
    per stage: a rank of stage s holds only stage s's weights, states, inputs
    and pools. The JSON's top level is the stage that needs the most (what
    `bmsys-fit` compares with the device), with every stage under `stages`.

    ```
    bmsys memory report (max_batch=4, max_seq=32, per rank of 1)
      peak of the activation pool: function 'train_step', op 412 (attention_grad)
      parameters                       1001728 B  978.25 KiB  20 tensors
      gradients                          ...
      total                              ...
    ```
  }];
  let options = [
    Option<"output", "output", "std::string", /*default=*/"\"-\"",
           "file to write the report to ('-' = stdout)">,
    Option<"json", "json", "std::string", /*default=*/"\"\"",
           "also write the report as JSON to this file">,
    Option<"workspace", "workspace", "std::string", /*default=*/"\"0\"",
           "backend workspace per rank (bytes, or with KiB/MiB/GiB)">,
    Option<"calibration", "calibration", "std::string", /*default=*/"\"\"",
           "with a calibration file (bmsys-run calibrate): also print the cost model's "
           "time of one call of each function at the bounds">,
  ];
}

def BmsysFit : Pass<"bmsys-fit", "mlir::ModuleOp"> {
  let summary = "Choose ZeRO stage, checkpointing, parallelism and batch (or INT8) for the hardware";
  let description = [{
    Auto-fit (docs/autofit.md). For an imported model, enumerates
    configurations — training: ZeRO stage (`zero-stages`, with more than one
    GPU), checkpoint policy (`checkpoint`: none, every, every-K), micro-batch
    per GPU (`micro-batches`), and where the train pipeline has them, tensor
    and pipeline degrees and optimizer offload; inference: `quantize` (none,
    int8) and the memory schedule (bmsys-memory-schedule for `gpu-memory`:
    layers swapped in from host memory) or not — and compiles each on a clone of the module with the train (infer) pipeline.
    The memory analysis of bmsys-memory-report gives each candidate's peak
    per GPU (plus the calibration's workspace), the cost model its step time
    (training) or decode-step time (inference) from the rates of
    `calibration` (a file written by `bmsys-run calibrate`; default: the
    built-in H200 numbers). The fastest candidate by tokens per second that
    fits in `gpu-memory` (and `host-memory`) is recorded as the module
    attribute `bmsys.fit` (the knobs, the exact pipeline, the predictions
    and the reason); with `apply` the module is replaced by that compiled
    module. The table of candidates goes to `table`, all predictions as JSON
    to `report`. When nothing fits it fails, naming the smallest GPU memory
    that would do with `gpus` GPUs and, for training, how many GPUs of
    `gpu-memory` would. `options` passes further pipeline options (for
    example `mixed-precision=bf16 lr=3e-4`) to every candidate.

    ```
    bmsys-opt model.mlir --bmsys-fit="gpus=2 gpu-memory=80GiB seq=2048 calibration=h200.json apply"
    // module attributes {bmsys.fit = {checkpoint = "none", data_parallel = 2 : i64,
    //   micro_batch = 4 : i64, zero_stage = 2 : i64, predicted_step_s = ..., reason = "..."}}
    ```
  }];
  let options = [
    Option<"mode", "mode", "std::string", /*default=*/"\"train\"", "train or infer">,
    Option<"gpus", "gpus", "int64_t", /*default=*/"1", "GPUs (ranks) to use">,
    Option<"gpuMemory", "gpu-memory", "std::string", /*default=*/"\"\"",
           "memory per GPU, e.g. 80GiB (default: the calibration's memory_bytes)">,
    Option<"hostMemory", "host-memory", "std::string", /*default=*/"\"\"",
           "host memory for offloaded state (default: the calibration's, 0 = unlimited)">,
    Option<"calibration", "calibration", "std::string", /*default=*/"\"\"",
           "calibration file from bmsys-run calibrate (default: built-in H200)">,
    Option<"seq", "seq", "int64_t", /*default=*/"0",
           "sequence length (max-seq of the pipeline; 0 = the model's max positions)">,
    Option<"batch", "batch", "int64_t", /*default=*/"0",
           "train: fixed global batch (0 = search micro-batches); infer: batch (0 = 1)">,
    ListOption<"microBatches", "micro-batches", "int64_t",
               "train: micro-batch sizes per GPU to try (default 1,2,4,8)">,
    ListOption<"zeroStages", "zero-stages", "int64_t",
               "train: ZeRO stages to try with several GPUs (default 0,1,2,3)">,
    ListOption<"checkpoint", "checkpoint", "std::string",
               "train: checkpoint policies to try: none, every, every-K (default none,every,every-2)">,
    ListOption<"quantize", "quantize", "std::string",
               "infer: weight formats to try (default none,int8)">,
    ListOption<"tensorParallel", "tensor-parallel", "int64_t",
               "tensor-parallel degrees to try (default: every divisor of gpus, where "
               "bmsys-tensor-parallel exists)">,
    ListOption<"memorySchedule", "memory-schedule", "std::string",
               "infer: off, on (default both, where bmsys-memory-schedule exists)">,
    Option<"extraOptions", "options", "std::string", /*default=*/"\"\"",
           "further options for every candidate's pipeline">,
    Option<"dtype", "dtype", "std::string", /*default=*/"\"\"",
           "the bmsys-run --dtype the model will run in (bf16, f16, f32): weights are "
           "counted and every float buffer priced in it (default: as compiled)">,
    Option<"apply", "apply", "bool", /*default=*/"false",
           "replace the module by the chosen configuration, compiled">,
    Option<"table", "table", "std::string", /*default=*/"\"-\"",
           "file for the table of candidates ('-' = stdout, '' = none)">,
    Option<"report", "report", "std::string", /*default=*/"\"\"",
           "file for every candidate's predictions as JSON">,
  ];
  let dependentDialects = ["bmsys::BmsysDialect", "bmsys::rt::BmsysRtDialect",
                           "mlir::func::FuncDialect"];
}

def BmsysMemorySchedule : Pass<"bmsys-memory-schedule", "mlir::ModuleOp"> {
  let summary = "Keep as many layers in device memory as a budget allows, swap the rest";
  let description = [{
    BMInf's scheduling for a model larger than the GPU: given a device memory
    `budget`, keep as many layers resident as fit and stream the others from
    host memory through 2 swap slots. Runs on a planned `bmsys_rt` module (after
    `bmsys-plan-memory`). A layer is the set of weights whose key matches
    `layer-pattern` with the same number (Hugging Face `model.layers.N.`, GPT-2
    `h.N.`); every other weight, the activation pool, the state pool (KV
    cache), the inputs and the backend `workspace` form the working set, which
    stays resident. Weights are counted in `dtype` (the `bmsys-run --dtype` the
    plan is for; linear_int8 scales stay f32).

    With s swapped layers the device holds the working set, the n - s resident
    layers and 2 slots of the largest swapped layer; the pass takes the
    smallest s that fits and spaces the swapped layers evenly (the interval
    between them as large as possible, BMInf's rule), so each copy overlaps the
    computation of the resident layers before it. A budget below the working
    set plus 2 slots is refused with the smallest budget that works.

    The plan is recorded as the module attribute `bmsys_rt.memory_schedule`
    (swapped layers in execution order — group g uses slot g % 2 —, resident
    layers, budget, slot bytes, bytes moved per token, link speed) and a
    `swap_group` attribute on each swapped weight; `bmsys-translate` writes both
    to the artifact. A report (to `report`) gives the resident and swapped
    layers, the bytes moved per token and the tokens/s the link allows.

    ```mlir
    module attributes {bmsys_rt.memory_schedule = {budget = 6442450944 : i64, bytes_per_token = 1620049920 : i64,
        link_gbps = 5.5e+01 : f64, resident = array<i64: 0, 1, 2, 4, ...>, slot_bytes = 202506240 : i64,
        swapped = array<i64: 3, 7, 11, 15, 19, 23, 27, 31>}} {
      bmsys_rt.weight @model.layers.3.mlp.up_proj.weight_int8 {dtype = i8, shape = array<i64: 11008, 4096>, ..., swap_group = 0 : i64}
    ```
  }];
  let options = [
    Option<"budget", "budget", "std::string", /*default=*/"\"\"",
           "device memory budget (bytes, or with KiB/MiB/GiB/KB/MB/GB), required">,
    Option<"linkGbps", "link-gbps", "double", /*default=*/"55.0",
           "host -> device bandwidth (GB/s) for the predicted tokens/s">,
    Option<"dtype", "dtype", "std::string", /*default=*/"\"\"",
           "float dtype the weights run in (f32, bf16, f16; default: as compiled)">,
    Option<"workspace", "workspace", "std::string", /*default=*/"\"64MiB\"",
           "device memory the backend keeps for itself (GEMM workspace, staging)">,
    Option<"layerPattern", "layer-pattern", "std::string",
           /*default=*/"\"(^|\\\\.)(layers|h|blocks)\\\\.([0-9]+)\\\\.\"",
           "regular expression over weight keys whose last group is the layer number">,
    Option<"report", "report", "std::string", /*default=*/"\"-\"",
           "file to write the report to ('-' = stdout)">,
  ];
}

def BmsysFuseElementwise : Pass<"bmsys-fuse-elementwise", "mlir::ModuleOp"> {
  let summary = "Fuse chains of memory-bound ops into single-pass kernels";
  let description = [{
    Rewrites, in every function, the memory-bound op chains of a (trained)
    transformer into the fused ops of BmsysFusedOps.td, each one kernel that
    reads its operands once and writes its results once (docs/kernels.md
    "Fused kernels"). Run it after `bmsys-autodiff` (and the optimizer and
    ZeRO passes) and `bmsys-inline-blocks`, before `bmsys-lower-to-rt`; the
    training pipeline does (`fuse=1`, its default). Patterns, each an option:

    - `swiglu`: `mul(silu(g), u)` -> `bmsys.swiglu g, u`; the backward
      `silu_grad(g, mul(dy, u))` with `mul(dy, silu(g))` ->
      `bmsys.swiglu_grad g, u, dy` (the silu is then only recomputed in
      registers, never stored).
    - `residual-norm`: `rms_norm(add(a, b), gamma)` ->
      `bmsys.add_rms_norm a, b, gamma` (its `sum` replaces the add's other
      uses); `add(r, rms_norm_grad(x, gamma, dy).dx)` ->
      `bmsys.rms_norm_grad_add x, gamma, dy, r`.
    - `loss-casts`: mixed precision's casts around the loss:
      `cross_entropy(cast(x))` -> `cross_entropy(x)` and
      `cast(cross_entropy_grad(cast(x)))` -> `cross_entropy_grad(x)` in x's
      type (the kernels compute in f32 whatever they read; the result is
      rounded once, as the cast did).
    - `rope-attention`: `attention(rope(xq, pos), rope(xk, pos), v)` ->
      `bmsys.rope_attention xq, xk, v, pos` when both ropes take the same
      positions and theta, their head_dim is the attention's, and the
      attention is the only use of each rotated tensor (in `train_step`,
      where `attention_grad` reads them too, only the forward of a
      checkpointed block fuses: its backward reads the recomputed copy). A
      decode step's two rope launches per layer go; a cache receives the
      rotated keys as before.

    A chain is fused only when the fused op can be placed where all its
    operands are defined and before all uses of what it replaces, and the
    intermediate it removes has no other use; everything else is left as is.
    The counts are pass statistics (`--mlir-pass-statistics`).

    ```mlir
    %s = bmsys.silu %g : tensor<?x?x176xbf16>
    %h = bmsys.mul %s, %u : tensor<?x?x176xbf16>
    // becomes
    %h = bmsys.swiglu %g, %u : (tensor<?x?x176xbf16>, tensor<?x?x176xbf16>) -> tensor<?x?x176xbf16>
    ```
  }];
  let dependentDialects = ["bmsys::BmsysDialect"];
  let options = [
    Option<"swiglu", "swiglu", "bool", /*default=*/"true",
           "fuse silu(gate) * up and its backward (bmsys.swiglu, bmsys.swiglu_grad)">,
    Option<"residualNorm", "residual-norm", "bool", /*default=*/"true",
           "fuse residual adds with the RMS norm after them and with rms_norm_grad">,
    Option<"lossCasts", "loss-casts", "bool", /*default=*/"true",
           "fold mixed precision's casts into cross_entropy and cross_entropy_grad">,
    Option<"ropeAttention", "rope-attention", "bool", /*default=*/"true",
           "fuse the ropes of the queries and keys into the attention (bmsys.rope_attention)">,
  ];
  let statistics = [
    Statistic<"numSwiGlu", "swiglu", "silu + mul pairs fused">,
    Statistic<"numSwiGluGrad", "swiglu-grad", "silu + mul backward triples fused">,
    Statistic<"numAddRmsNorm", "add-rms-norm", "add + rms_norm pairs fused">,
    Statistic<"numRmsNormGradAdd", "rms-norm-grad-add", "rms_norm_grad + add pairs fused">,
    Statistic<"numLossCasts", "loss-casts", "casts folded into the loss kernels">,
    Statistic<"numRopeAttention", "rope-attention", "rope + rope + attention triples fused">,
  ];
}

#endif // BMSYS_PASSES_TD
