// The pipeline-parallel kernels on the CPU (docs/kernels.md "Pipeline parallelism"):
// point-to-point activations and gradients between neighbouring stages, the loss
// broadcast from the last stage, and the micro-batch mean of accumulated sums.
#pragma once

#include "runtime/core/kernels.h"

namespace bmsys::rt::cpu {

// pp_send, pp_recv, pp_broadcast, pp_mean (after check_launch).
void pipeline_kernel(const KernelLaunch& l);

}  // namespace bmsys::rt::cpu
