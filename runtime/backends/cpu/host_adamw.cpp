#include "runtime/backends/cpu/host_adamw.h"

#include <cmath>

#include "runtime/backends/cpu/adamw.h"
#include "runtime/backends/cpu/cpu_kernels.h"

namespace bmsys::rt::cpu {

bool optimizer_clip(const KernelLaunch& l, double norm, double* coef) {
  const Attrs& a = *l.attrs;
  const double max_norm = a.has("max_norm") ? a.get_float("max_norm") : 0.0;
  if (a.get_int("loss_scaling", 0) == 0) {
    *coef = clip_coefficient(max_norm, norm);
    return true;
  }
  const double L = l.ctx.loss_scale;
  norm /= L;
  if (!std::isfinite(norm)) return false;
  *coef = clip_coefficient(max_norm, norm) / L;
  return true;
}

void host_adamw(const KernelLaunch& l) {
  const Attrs& a = *l.attrs;
  const auto& in = l.inputs;
  AdamWParams p;
  p.lr = LrSchedule::from_attrs(a).at(l.ctx.step);
  p.beta1 = a.get_float("beta1");
  p.beta2 = a.get_float("beta2");
  p.eps = a.get_float("eps");
  p.weight_decay = a.get_float("weight_decay");
  if (!optimizer_clip(l, *in[4].as<float>(), &p.clip)) return;  // overflow: skip the step
  p.step = l.ctx.step;
  // The master is exactly what this rank updates (the whole tensor, or its flat shard
  // whose zero padding stays zero: its gradient is zero).
  adamw(in[0].as<float>(), in[1].as<float>(), in[2].as<float>(), in[3].as<float>(), in[0].numel(), p);
}

}  // namespace bmsys::rt::cpu
