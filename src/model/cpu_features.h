#pragma once
// What the decode kernels need to know about the CPU: whether AVX2 + FMA run (x86 only; other
// CPUs take the portable loops), and the AVX2 helpers the kernels share.
#if defined(__x86_64__) || defined(__i386__)
#define DAPX_X86 1
#include <immintrin.h>
#endif

namespace dapx {

#ifdef DAPX_X86
inline bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

// Sum of the 8 lanes.
__attribute__((target("avx2,fma"))) inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#else
inline bool cpu_has_avx2() { return false; }
#endif

}  // namespace dapx
