#include "model/activation_rows.h"

#include <algorithm>
#include <cmath>

#include "model/attention_ops.h"
#include "model/vector_ops.h"
#include "util/bf16.h"

namespace dapx {
namespace {

// Values per parallel block of the SiLU product: large enough that a fork/join is noise.
constexpr int64_t kSiluBlock = 1 << 14;

inline float silu_times(float a, float b) { return a / (1.f + std::exp(-a)) * b; }

void silu_mul_portable(float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] = silu_times(a[i], b[i]);
}
void silu_mul_portable(uint16_t* a, const uint16_t* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    a[i] = f32_to_bf16(silu_times(bf16_to_f32(a[i]), bf16_to_f32(b[i])));
}

#ifdef DAPX_X86
#define DAPX_AVX2 __attribute__((target("avx2,fma"))) static inline
// silu(v) * u for 8 lanes; exp's argument is capped at 88 (e^88 is finite in f32), where
// silu(v) is -0 to f32 precision anyway.
DAPX_AVX2 __m256 silu_times8(__m256 v, __m256 u) {
  const __m256 e =
      Avx2Ops::exp8(_mm256_min_ps(_mm256_sub_ps(_mm256_setzero_ps(), v), _mm256_set1_ps(88.f)));
  return _mm256_mul_ps(_mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.f), e)), u);
}
DAPX_AVX2 __m256 widen8(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
// f32_to_bf16 on 8 lanes: round to nearest even; NaN stays a quiet NaN.
DAPX_AVX2 void narrow8(__m256 f, uint16_t* p) {
  const __m256i bits = _mm256_castps_si256(f);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_srli_epi32(
      _mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x40));
  r = _mm256_blendv_epi8(r, quiet, _mm256_castps_si256(_mm256_cmp_ps(f, f, _CMP_UNORD_Q)));
  const __m128i packed =
      _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), packed);
}
DAPX_AVX2 void silu_mul_avx2(float* a, const float* b, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(a + i, silu_times8(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  silu_mul_portable(a + i, b + i, n - i);
}
DAPX_AVX2 void silu_mul_avx2(uint16_t* a, const uint16_t* b, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) narrow8(silu_times8(widen8(a + i), widen8(b + i)), a + i);
  silu_mul_portable(a + i, b + i, n - i);
}
#undef DAPX_AVX2
#endif

template <typename T>
void silu_mul_block(T* a, const T* b, int64_t n) {
#ifdef DAPX_X86
  if (cpu_has_avx2()) return silu_mul_avx2(a, b, n);
#endif
  silu_mul_portable(a, b, n);
}

template <typename T>
void silu_mul_parallel(T* a, const T* b, int64_t n) {
  const int64_t blocks = (n + kSiluBlock - 1) / kSiluBlock;
#pragma omp parallel for schedule(static) if (blocks > 1)
  for (int64_t k = 0; k < blocks; ++k) {
    const int64_t i0 = k * kSiluBlock;
    silu_mul_block(a + i0, b + i0, std::min(kSiluBlock, n - i0));
  }
}

}  // namespace

void rms_norm_rows(const float* x, const float* w, int64_t rows, int64_t n, float eps, float* out) {
#pragma omp parallel for schedule(static) if (rows > 1)
  for (int64_t r = 0; r < rows; ++r) rms_norm_row(x + r * n, w, n, eps, out + r * n);
}

void rms_norm_rows(const float* x, const float* w, int64_t rows, int64_t n, float eps,
                   uint16_t* out) {
#pragma omp parallel for schedule(static) if (rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    const float s = rms_inverse(xr, n, eps);
    for (int64_t i = 0; i < n; ++i) out[r * n + i] = f32_to_bf16(xr[i] * s * w[i]);
  }
}

void silu_mul_rows(float* a, const float* b, int64_t n) { silu_mul_parallel(a, b, n); }
void silu_mul_rows(uint16_t* a, const uint16_t* b, int64_t n) { silu_mul_parallel(a, b, n); }

}  // namespace dapx
