#pragma once
// What the kernels need to know about the CPU: whether AVX2 + FMA and AVX-512 run (x86 only;
// other CPUs take the portable loops), and the AVX2 helpers the kernels share.
#if defined(__x86_64__) || defined(__i386__)
#define DAPX_X86 1
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*() and warn that it "may be used
// uninitialized" wherever they are inlined (a false positive, GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

namespace dapx {

// The loops a kernel runs: the widest the CPU has (kBest), at most AVX2 + FMA, or the plain
// loops. Tests run each where the CPU has it; the results agree within rounding.
enum class CpuKernels { kBest, kAvx512, kAvx2, kPortable };

#ifdef DAPX_X86
inline bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}
inline bool cpu_has_avx512() {
  static const bool has = cpu_has_avx2() && __builtin_cpu_supports("avx512f");
  return has;
}
// AVX-512 with byte operations and VNNI's u8 x s8 dot products (the int8 GEMV).
inline bool cpu_has_avx512_vnni() {
  static const bool has = cpu_has_avx512() && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vnni");
  return has;
}
// AVX-512 with bf16 pair products (vdpbf16ps) and byte/word operations.
inline bool cpu_has_avx512_bf16() {
  static const bool has = cpu_has_avx512() && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512bf16");
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
inline bool cpu_has_avx512() { return false; }
inline bool cpu_has_avx512_vnni() { return false; }
inline bool cpu_has_avx512_bf16() { return false; }
#endif

// The loops that run when `want` is asked for: never wider than the CPU has.
inline CpuKernels cpu_kernels(CpuKernels want) {
  if (want == CpuKernels::kPortable || !cpu_has_avx2()) return CpuKernels::kPortable;
  if (want == CpuKernels::kAvx2 || !cpu_has_avx512()) return CpuKernels::kAvx2;
  return CpuKernels::kAvx512;
}

}  // namespace dapx
