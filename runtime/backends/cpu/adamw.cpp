#include "runtime/backends/cpu/adamw.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "runtime/core/error.h"

// Compiled with -ffp-contract=off (runtime/CMakeLists.txt): a fused multiply-add
// rounds once where the scalar reference rounds twice, and the paths must agree
// bit for bit. The AVX-512 and AVX2 functions carry target attributes, so the
// rest of the runtime keeps its baseline x86-64 code and the choice is made at
// run time (__builtin_cpu_supports).

namespace bmsys::rt::cpu {
namespace {

// Per-call constants, computed once in double like the reference.
struct Coef {
  double lr, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, clip, decay, bc1, bc2;
};

Coef coef(const AdamWParams& p) {
  Coef c;
  c.lr = p.lr;
  c.beta1 = p.beta1;
  c.one_minus_beta1 = 1.0 - p.beta1;
  c.beta2 = p.beta2;
  c.one_minus_beta2 = 1.0 - p.beta2;
  c.eps = p.eps;
  c.clip = p.clip;
  c.decay = 1.0 - p.lr * p.weight_decay;
  c.bc1 = 1.0 - std::pow(p.beta1, static_cast<double>(p.step));
  c.bc2 = 1.0 - std::pow(p.beta2, static_cast<double>(p.step));
  return c;
}

// The reference: one element, every operation in double.
inline void step_scalar(float* param, const float* grad, float* m, float* v, int64_t i, const Coef& c) {
  double g = c.clip * grad[i];
  double w = param[i] * c.decay;
  double mi = c.beta1 * m[i] + c.one_minus_beta1 * g;
  double vi = c.beta2 * v[i] + c.one_minus_beta2 * g * g;
  w -= c.lr * (mi / c.bc1) / (std::sqrt(vi / c.bc2) + c.eps);
  m[i] = static_cast<float>(mi);
  v[i] = static_cast<float>(vi);
  param[i] = static_cast<float>(w);
}

void range_scalar(float* param, const float* grad, float* m, float* v, int64_t begin, int64_t end, const Coef& c) {
  for (int64_t i = begin; i < end; ++i) step_scalar(param, grad, m, v, i, c);
}

// The vector loop, written once for both widths: W floats widened to W doubles in
// one register per step, each operation the reference's, in its order. P is the
// intrinsics' prefix of the double register (512: zmm, 256: ymm), H that of the
// register holding W floats (256: ymm, empty: xmm). A macro, not a template: the
// intrinsics need the function's target attribute, which cannot depend on a
// template parameter, and GCC does not inline them into a function without it.
#define BMSYS_ADAMW_RANGE(name, isa, P, H, W)                                                                     \
  __attribute__((target(isa))) void name(float* param, const float* grad, float* m, float* v, int64_t begin,     \
                                         int64_t end, const Coef& c) {                                           \
    using Vd = __m##P##d;                                                                                        \
    const Vd lr = _mm##P##_set1_pd(c.lr), b1 = _mm##P##_set1_pd(c.beta1),                                        \
             ob1 = _mm##P##_set1_pd(c.one_minus_beta1), b2 = _mm##P##_set1_pd(c.beta2),                          \
             ob2 = _mm##P##_set1_pd(c.one_minus_beta2), eps = _mm##P##_set1_pd(c.eps),                           \
             clip = _mm##P##_set1_pd(c.clip), decay = _mm##P##_set1_pd(c.decay), bc1 = _mm##P##_set1_pd(c.bc1), \
             bc2 = _mm##P##_set1_pd(c.bc2);                                                                      \
    int64_t i = begin;                                                                                           \
    for (; i + W <= end; i += W) {                                                                               \
      Vd g = _mm##P##_mul_pd(clip, _mm##P##_cvtps_pd(_mm##H##_loadu_ps(grad + i)));                              \
      Vd w = _mm##P##_mul_pd(_mm##P##_cvtps_pd(_mm##H##_loadu_ps(param + i)), decay);                            \
      Vd mi = _mm##P##_add_pd(_mm##P##_mul_pd(b1, _mm##P##_cvtps_pd(_mm##H##_loadu_ps(m + i))),                  \
                              _mm##P##_mul_pd(ob1, g));                                                          \
      Vd vi = _mm##P##_add_pd(_mm##P##_mul_pd(b2, _mm##P##_cvtps_pd(_mm##H##_loadu_ps(v + i))),                  \
                              _mm##P##_mul_pd(_mm##P##_mul_pd(ob2, g), g));                                      \
      Vd num = _mm##P##_mul_pd(lr, _mm##P##_div_pd(mi, bc1));                                                    \
      Vd den = _mm##P##_add_pd(_mm##P##_sqrt_pd(_mm##P##_div_pd(vi, bc2)), eps);                                 \
      w = _mm##P##_sub_pd(w, _mm##P##_div_pd(num, den));                                                         \
      _mm##H##_storeu_ps(m + i, _mm##P##_cvtpd_ps(mi));                                                          \
      _mm##H##_storeu_ps(v + i, _mm##P##_cvtpd_ps(vi));                                                          \
      _mm##H##_storeu_ps(param + i, _mm##P##_cvtpd_ps(w));                                                       \
    }                                                                                                            \
    range_scalar(param, grad, m, v, i, end, c);                                                                  \
  }

// 8 elements per iteration in zmm registers.
BMSYS_ADAMW_RANGE(range_avx512, "avx512f", 512, 256, 8)
// 4 elements per iteration in ymm registers. "avx2" without "fma": nothing to
// contract even if the flag were missing.
BMSYS_ADAMW_RANGE(range_avx2, "avx2", 256, , 4)

#undef BMSYS_ADAMW_RANGE

using RangeFn = void (*)(float*, const float*, float*, float*, int64_t, int64_t, const Coef&);

RangeFn range_fn(AdamWIsa isa) {
  switch (isa) {
    case AdamWIsa::Avx512: return range_avx512;
    case AdamWIsa::Avx2: return range_avx2;
    case AdamWIsa::Scalar: break;
  }
  return range_scalar;
}

// Below this many elements one thread does it all (forking costs more).
constexpr int64_t kSerialElements = 1 << 15;
// Each thread's range starts at a multiple of 16 elements (64 bytes).
constexpr int64_t kChunkAlign = 16;

}  // namespace

const char* adamw_isa_name(AdamWIsa isa) {
  switch (isa) {
    case AdamWIsa::Scalar: return "scalar";
    case AdamWIsa::Avx2: return "avx2";
    case AdamWIsa::Avx512: return "avx512";
  }
  return "?";
}

bool adamw_isa_supported(AdamWIsa isa) {
  switch (isa) {
    case AdamWIsa::Scalar: return true;
    case AdamWIsa::Avx2: return __builtin_cpu_supports("avx2");
    case AdamWIsa::Avx512: return __builtin_cpu_supports("avx512f");
  }
  return false;
}

AdamWIsa adamw_default_isa() {
  static const AdamWIsa isa = [] {
    if (const char* env = std::getenv("BMSYS_CPU_ADAMW_ISA"); env && *env) {
      for (AdamWIsa i : {AdamWIsa::Scalar, AdamWIsa::Avx2, AdamWIsa::Avx512})
        if (std::strcmp(env, adamw_isa_name(i)) == 0) {
          if (!adamw_isa_supported(i)) fail("BMSYS_CPU_ADAMW_ISA={}: this CPU does not support it", env);
          return i;
        }
      fail("BMSYS_CPU_ADAMW_ISA={}: not one of scalar, avx2, avx512", env);
    }
    if (adamw_isa_supported(AdamWIsa::Avx512)) return AdamWIsa::Avx512;
    if (adamw_isa_supported(AdamWIsa::Avx2)) return AdamWIsa::Avx2;
    return AdamWIsa::Scalar;
  }();
  return isa;
}

void adamw(AdamWIsa isa, float* param, const float* grad, float* m, float* v, int64_t n, const AdamWParams& p) {
  if (!adamw_isa_supported(isa)) fail("cpu adamw: this CPU does not support {}", adamw_isa_name(isa));
  if (n <= 0) return;
  const Coef c = coef(p);
  const RangeFn fn = range_fn(isa);
  if (n < kSerialElements || omp_get_max_threads() == 1) {
    fn(param, grad, m, v, 0, n, c);
    return;
  }
#pragma omp parallel
  {
    const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
    int64_t chunk = (n + T - 1) / T;
    chunk = (chunk + kChunkAlign - 1) / kChunkAlign * kChunkAlign;
    const int64_t begin = std::min(n, t * chunk), end = std::min(n, begin + chunk);
    if (begin < end) fn(param, grad, m, v, begin, end, c);
  }
}

void adamw(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWParams& p) {
  adamw(adamw_default_isa(), param, grad, m, v, n, p);
}

}  // namespace bmsys::rt::cpu
