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

// 8 elements per iteration: floats widened to 8 doubles in one zmm register.
__attribute__((target("avx512f"))) void range_avx512(float* param, const float* grad, float* m, float* v,
                                                     int64_t begin, int64_t end, const Coef& c) {
  const __m512d lr = _mm512_set1_pd(c.lr), b1 = _mm512_set1_pd(c.beta1), ob1 = _mm512_set1_pd(c.one_minus_beta1),
                b2 = _mm512_set1_pd(c.beta2), ob2 = _mm512_set1_pd(c.one_minus_beta2), eps = _mm512_set1_pd(c.eps),
                clip = _mm512_set1_pd(c.clip), decay = _mm512_set1_pd(c.decay), bc1 = _mm512_set1_pd(c.bc1),
                bc2 = _mm512_set1_pd(c.bc2);
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    __m512d g = _mm512_mul_pd(clip, _mm512_cvtps_pd(_mm256_loadu_ps(grad + i)));
    __m512d w = _mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(param + i)), decay);
    __m512d mi = _mm512_add_pd(_mm512_mul_pd(b1, _mm512_cvtps_pd(_mm256_loadu_ps(m + i))), _mm512_mul_pd(ob1, g));
    __m512d vi = _mm512_add_pd(_mm512_mul_pd(b2, _mm512_cvtps_pd(_mm256_loadu_ps(v + i))),
                               _mm512_mul_pd(_mm512_mul_pd(ob2, g), g));
    __m512d num = _mm512_mul_pd(lr, _mm512_div_pd(mi, bc1));
    __m512d den = _mm512_add_pd(_mm512_sqrt_pd(_mm512_div_pd(vi, bc2)), eps);
    w = _mm512_sub_pd(w, _mm512_div_pd(num, den));
    _mm256_storeu_ps(m + i, _mm512_cvtpd_ps(mi));
    _mm256_storeu_ps(v + i, _mm512_cvtpd_ps(vi));
    _mm256_storeu_ps(param + i, _mm512_cvtpd_ps(w));
  }
  range_scalar(param, grad, m, v, i, end, c);
}

// 4 elements per iteration: floats widened to 4 doubles in one ymm register.
// "avx2" without "fma": nothing to contract even if the flag were missing.
__attribute__((target("avx2"))) void range_avx2(float* param, const float* grad, float* m, float* v, int64_t begin,
                                                int64_t end, const Coef& c) {
  const __m256d lr = _mm256_set1_pd(c.lr), b1 = _mm256_set1_pd(c.beta1), ob1 = _mm256_set1_pd(c.one_minus_beta1),
                b2 = _mm256_set1_pd(c.beta2), ob2 = _mm256_set1_pd(c.one_minus_beta2), eps = _mm256_set1_pd(c.eps),
                clip = _mm256_set1_pd(c.clip), decay = _mm256_set1_pd(c.decay), bc1 = _mm256_set1_pd(c.bc1),
                bc2 = _mm256_set1_pd(c.bc2);
  int64_t i = begin;
  for (; i + 4 <= end; i += 4) {
    __m256d g = _mm256_mul_pd(clip, _mm256_cvtps_pd(_mm_loadu_ps(grad + i)));
    __m256d w = _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(param + i)), decay);
    __m256d mi = _mm256_add_pd(_mm256_mul_pd(b1, _mm256_cvtps_pd(_mm_loadu_ps(m + i))), _mm256_mul_pd(ob1, g));
    __m256d vi = _mm256_add_pd(_mm256_mul_pd(b2, _mm256_cvtps_pd(_mm_loadu_ps(v + i))),
                               _mm256_mul_pd(_mm256_mul_pd(ob2, g), g));
    __m256d num = _mm256_mul_pd(lr, _mm256_div_pd(mi, bc1));
    __m256d den = _mm256_add_pd(_mm256_sqrt_pd(_mm256_div_pd(vi, bc2)), eps);
    w = _mm256_sub_pd(w, _mm256_div_pd(num, den));
    _mm_storeu_ps(m + i, _mm256_cvtpd_ps(mi));
    _mm_storeu_ps(v + i, _mm256_cvtpd_ps(vi));
    _mm_storeu_ps(param + i, _mm256_cvtpd_ps(w));
  }
  range_scalar(param, grad, m, v, i, end, c);
}

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
