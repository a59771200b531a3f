// The optimizer step of bmsys-offload on the host (docs/distributed.md "Optimizer
// offload"): an adamw launch with offload = 1, whose operands are all host memory: the
// fp32 master weights (the whole parameter, or this rank's flat ZeRO shard), the
// gradient copied from the device, both moments and the global norm. It runs the
// vectorized, multithreaded CPU AdamW (adamw.h) over the whole master. Every backend
// runs it the same way (CPU: its "host" buffers are separate buffers of the same
// memory; CUDA: pinned memory, after the gradient's copy has arrived).
#pragma once

#include "runtime/core/kernels.h"

namespace bmsys::rt::cpu {

// The gradient coefficient of adamw/sgd from the global norm: the clipping coefficient
// c, and with loss_scaling = 1 the norm first divided by L and c/L returned (the
// gradient is L times the true one; exact for a power-of-two L). False when the
// unscaled norm is not finite: the update is skipped (docs/kernels.md).
bool optimizer_clip(const KernelLaunch& l, double norm, double* coef);

// Runs an offloaded adamw launch (checked by check_launch; operands in host memory).
void host_adamw(const KernelLaunch& l);

}  // namespace bmsys::rt::cpu
