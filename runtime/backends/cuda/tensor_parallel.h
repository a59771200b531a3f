// Tensor parallelism on the CUDA backend (bmsys-tensor-parallel; docs/distributed.md
// "Tensor parallelism", docs/cuda.md): the vocab-parallel embedding, embedding_grad,
// cross_entropy and cross_entropy_grad (attribute vocab_shards = T > 1), and
// global_norm over tensor-parallel shards (tp_sharded). tp_all_reduce itself is a
// collective kernel like all_reduce (collectives.h), on the tensor-parallel group.
//
// A vocab-parallel kernel needs collectives between its parts, so the backend queues it
// as a plan of steps (plan_tensor_parallel): compute steps (TrainOps with tp_step set,
// run by run_tp_step on the compute stream) and all-reduces over the tensor-parallel
// (or data-parallel) group on the collective stream, ordered by the event logic of
// collectives.h through the steps' operands. Cross-entropy over the vocabulary split
// in T slices of V rows, rank t holding rows [t·V, (t+1)·V):
//
//   1. mx[i]   = max over this rank's columns of scored row i      (compute)
//   2. mx      = all-reduce max over the group                      (collective, f32)
//   3. sums[i] = sum of exp(x - mx[i]) over this rank's columns;    (compute, f64)
//      forward also sums[n+i] = the label's logit if this rank holds it, else 0
//   4. sums    = all-reduce sum over the group                      (collective, f64)
//   5. loss = mean(mx + log(sum) - label's logit), or               (compute)
//      dlogits = (exp(x - mx) / sum - onehot) / count (· L with loss_scaling)
//
// as the CPU reference (backends/cpu/cpu_tensor_parallel.cpp) does; exponentials in
// f32, sums in f64. Rows not scored (shift: the last position) get zero gradients.
// global_norm {tp_sharded}: the norm of the sharded inputs, squared, summed over the
// tensor-parallel group; plus the squared norm of the replicated ones; summed over the
// data-parallel group with `ranks` (ZeRO shards); then the root.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "runtime/backends/cuda/cuda_common.h"
#include "runtime/backends/cuda/train_ops.h"
#include "runtime/collectives/communicator.h"
#include "runtime/core/kernels.h"

namespace bmsys::rt::cuda {

// TrainOp::tp_step values.
enum TpStep : int {
  kTpNone = 0,
  kTpEmbedding,      // in {ids, table}, out {y}
  kTpEmbeddingGrad,  // in {ids, dy}, out {dtable} (kernel EmbeddingGrad: its scratch)
  kTpXentMax,        // in {logits, labels}, out {mx f32 [n]}
  kTpXentSums,       // in {logits, labels, mx}, out {sums f64 [n] or, forward, [2n]}
  kTpXentLoss,       // in {mx, sums}, out {loss}
  kTpXentGrad,       // in {logits, labels, mx, sums}, out {dlogits}
  kTpNormSquare,     // out {y f32 [1]}: y = y·y
  kTpNormAddSquare,  // in {t f32 [1]}, out {y}: y += t·t
  kTpNormSqrt,       // out {y}: y = sqrt(y)
};

// Whether the launch is one of the kernels above with its tensor-parallel attribute
// (vocab_shards > 1; global_norm with a nonzero tp_sharded flag).
bool is_tensor_parallel_launch(const KernelLaunch& l);

// One item of a plan: a compute step, or an all-reduce (in place) of `count` elements
// at `data` over the tensor-parallel group (tp) or the data-parallel one.
struct TpItem {
  std::shared_ptr<const TrainOp> step;
  void* data = nullptr;
  DType dtype = DType::F32;
  int64_t count = 0;
  ReduceOp reduce = ReduceOp::Sum;
  bool tp = true;
};

// The plan of a tensor-parallel launch (is_tensor_parallel_launch). `buffer(bytes)`
// returns device memory for the statistics (valid until the plan has run; the
// backend's, reused by later plans: the steps name it as an operand, so the ordering
// covers the reuse). Throws naming the kernel on an unsupported combination.
std::vector<TpItem> plan_tensor_parallel(const KernelLaunch& l, const std::function<void*(size_t)>& buffer);

// Runs a compute step (TrainOp::tp_step != 0) on L.stream.
void run_tp_step(const TrainOp& op, const Launch& L, const TrainEnv& env);

}  // namespace bmsys::rt::cuda
