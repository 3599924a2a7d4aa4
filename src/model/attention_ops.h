#pragma once
// The inner loops the attention kernels share (decode_attention.cpp, prefill_attention.cpp):
// bf16 -> f32 widening of cache tiles, dot products, a shifted exp with its sum, weighted sums
// of value rows, and a block of scores.
// PortableOps runs on any CPU; Avx2Ops (x86 with AVX2 + FMA), Avx512Ops (AVX-512F) and
// Avx512Bf16Ops (AVX512-BF16 pair products) are inlined into each kernel's entry point for that
// target (flatten), where it is enabled.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "model/cpu_features.h"
#include "util/bf16.h"

namespace dapx {

// Plain loops: any CPU.
struct PortableOps {
  // dst[0..n) = the bf16 values src[0..n) as f32 (a tile of a bf16 KV cache).
  static void widen(const uint16_t* src, int64_t n, float* dst) {
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
  }
  static float dot(const float* a, const float* b, int64_t d) {
    float s = 0.f;
    for (int64_t i = 0; i < d; ++i) s += a[i] * b[i];
    return s;
  }
  // s[t] = exp(s[t] - m); returns the sum.
  static float exp_shift(float* s, int64_t n, float m) {
    float sum = 0.f;
    for (int64_t t = 0; t < n; ++t) sum += s[t] = std::exp(s[t] - m);
    return sum;
  }
  // acc[0..d) += sum_t p[t] * rows[t][0..d) over n rows, stride elements apart.
  static void weighted_rows(float* acc, const float* p, const float* rows, int64_t n, int64_t d,
                            int64_t stride) {
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < d; ++i) acc[i] += p[t] * rows[t * stride + i];
  }
  // s[r * s_stride + c] = q[r] . keys[c] for r < rows, c < n: q [rows, d], keys [n, d].
  static void row_scores(const float* q, int64_t rows, int64_t d, const float* keys, int64_t n,
                         float* s, int64_t s_stride) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < n; ++c) s[r * s_stride + c] = dot(q + r * d, keys + c * d, d);
  }
  // Largest of s[0..n): NaN if any is NaN; -inf for n == 0.
  static float max_of(const float* s, int64_t n) {
    float best = -INFINITY;
    for (int64_t c = 0; c < n; ++c)
      if (!(s[c] <= best)) best = s[c];
    return best;
  }
  // acc[r][0..d) += sum_c p[r][c] * values[c][0..d) for r < rows, c < n: acc [rows, d],
  // p [rows, p_stride], values [n, d].
  static void tile_weighted(float* acc, int64_t rows, int64_t d, const float* p, int64_t p_stride,
                            const float* values, int64_t n) {
    for (int64_t r = 0; r < rows; ++r)
      weighted_rows(acc + r * d, p + r * p_stride, values, n, d, d);
  }
  // s[r][c] = q[r] . kt[.][c] for r < rows, c < cols: q [rows, d], kt [d, cols] (keys
  // transposed), s [rows, cols]. cols is a multiple of 16.
  static void tile_scores(const float* q, int64_t rows, int64_t d, const float* kt, int64_t cols,
                          float* s) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        float acc = 0.f;
        for (int64_t i = 0; i < d; ++i) acc += q[r * d + i] * kt[i * cols + c];
        s[r * cols + c] = acc;
      }
  }
};

#ifdef DAPX_X86
// Inlined into attend_range_avx2 (flatten), where the AVX2 target is enabled.
#define DAPX_AVX2 __attribute__((target("avx2,fma"))) static inline
struct Avx2Ops {
  DAPX_AVX2 void widen(const uint16_t* src, int64_t n, float* dst) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
      _mm256_storeu_ps(dst + i,
                       _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
    }
    for (; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
  }
  DAPX_AVX2 float dot(const float* a, const float* b, int64_t d) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    int64_t i = 0;
    for (; i + 16 <= d; i += 16) {
      s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
      s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= d; i += 8)
      s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum8(_mm256_add_ps(s0, s1));
    for (; i < d; ++i) s += a[i] * b[i];
    return s;
  }
  // e^x for 8 lanes: x = n ln2 + r with |r| <= ln2 / 2, e^r by a degree-7 polynomial
  // (Cephes' expf coefficients, about 1 ulp), 2^n through the exponent bits. Lanes below
  // -87.3 (including -inf, masked keys) give exactly 0.
  DAPX_AVX2 __m256 exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.3f);
    const __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_max_ps(lo, x);  // this operand order lets NaN through
    const __m256 n = _mm256_floor_ps(
        _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
    const __m256i pow2n =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(pow2n));
    return _mm256_andnot_ps(underflow, y);
  }
  DAPX_AVX2 float exp_shift(float* s, int64_t n, float m) {
    const __m256 mv = _mm256_set1_ps(m);
    __m256 sum = _mm256_setzero_ps();
    int64_t t = 0;
    for (; t + 8 <= n; t += 8) {
      const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + t), mv));
      _mm256_storeu_ps(s + t, e);
      sum = _mm256_add_ps(sum, e);
    }
    float total = hsum8(sum);
    for (; t < n; ++t) total += s[t] = std::exp(s[t] - m);
    return total;
  }
  // Columns in blocks of 32 held in 4 registers across all rows, then blocks of 8, then the
  // scalar tail; the rows stay in L1 between blocks.
  DAPX_AVX2 void weighted_rows(float* acc, const float* p, const float* rows, int64_t n, int64_t d,
                               int64_t stride) {
    int64_t i = 0;
    for (; i + 32 <= d; i += 32) {
      __m256 a0 = _mm256_loadu_ps(acc + i), a1 = _mm256_loadu_ps(acc + i + 8),
             a2 = _mm256_loadu_ps(acc + i + 16), a3 = _mm256_loadu_ps(acc + i + 24);
      for (int64_t t = 0; t < n; ++t) {
        const __m256 pt = _mm256_set1_ps(p[t]);
        const float* r = rows + t * stride + i;
        a0 = _mm256_fmadd_ps(pt, _mm256_loadu_ps(r), a0);
        a1 = _mm256_fmadd_ps(pt, _mm256_loadu_ps(r + 8), a1);
        a2 = _mm256_fmadd_ps(pt, _mm256_loadu_ps(r + 16), a2);
        a3 = _mm256_fmadd_ps(pt, _mm256_loadu_ps(r + 24), a3);
      }
      _mm256_storeu_ps(acc + i, a0);
      _mm256_storeu_ps(acc + i + 8, a1);
      _mm256_storeu_ps(acc + i + 16, a2);
      _mm256_storeu_ps(acc + i + 24, a3);
    }
    for (; i + 8 <= d; i += 8) {
      __m256 a0 = _mm256_loadu_ps(acc + i);
      for (int64_t t = 0; t < n; ++t)
        a0 = _mm256_fmadd_ps(_mm256_set1_ps(p[t]), _mm256_loadu_ps(rows + t * stride + i), a0);
      _mm256_storeu_ps(acc + i, a0);
    }
    for (; i < d; ++i)
      for (int64_t t = 0; t < n; ++t) acc[i] += p[t] * rows[t * stride + i];
  }
  // As PortableOps::tile_weighted: blocks of 6 rows x 16 dims in 12 registers, each value
  // row's vectors loaded once per 6 rows (12 independent FMA chains hide the FMA latency).
  DAPX_AVX2 void tile_weighted(float* acc, int64_t rows, int64_t d, const float* p,
                               int64_t p_stride, const float* values, int64_t n) {
    constexpr int kRows = 6;
    int64_t r = 0;
    for (; r + kRows <= rows; r += kRows) {
      const float* pr = p + r * p_stride;
      int64_t x = 0;
      for (; x + 16 <= d; x += 16) {
        float* o = acc + r * d + x;
        __m256 a[kRows][2];
        for (int i = 0; i < kRows; ++i) {
          a[i][0] = _mm256_loadu_ps(o + i * d);
          a[i][1] = _mm256_loadu_ps(o + i * d + 8);
        }
        for (int64_t c = 0; c < n; ++c) {
          const __m256 v0 = _mm256_loadu_ps(values + c * d + x);
          const __m256 v1 = _mm256_loadu_ps(values + c * d + x + 8);
          for (int i = 0; i < kRows; ++i) {
            const __m256 w = _mm256_broadcast_ss(pr + i * p_stride + c);
            a[i][0] = _mm256_fmadd_ps(w, v0, a[i][0]);
            a[i][1] = _mm256_fmadd_ps(w, v1, a[i][1]);
          }
        }
        for (int i = 0; i < kRows; ++i) {
          _mm256_storeu_ps(o + i * d, a[i][0]);
          _mm256_storeu_ps(o + i * d + 8, a[i][1]);
        }
      }
      if (x < d)  // dims past the last block of 16: row by row
        for (int i = 0; i < kRows; ++i)
          weighted_rows(acc + (r + i) * d + x, pr + i * p_stride, values + x, n, d - x, d);
    }
    for (; r < rows; ++r) weighted_rows(acc + r * d, p + r * p_stride, values, n, d, d);
  }
  // As PortableOps::tile_scores: blocks of 6 rows x 16 columns in 12 registers, the keys'
  // column vectors loaded once per 6 query rows.
  DAPX_AVX2 void tile_scores(const float* q, int64_t rows, int64_t d, const float* kt, int64_t cols,
                             float* s) {
    constexpr int kRows = 6;
    int64_t r = 0;
    for (; r + kRows <= rows; r += kRows)
      for (int64_t c = 0; c < cols; c += 16) {
        __m256 a[kRows][2];
        for (int i = 0; i < kRows; ++i) a[i][0] = a[i][1] = _mm256_setzero_ps();
        const float* qr = q + r * d;
        for (int64_t x = 0; x < d; ++x) {
          const __m256 k0 = _mm256_loadu_ps(kt + x * cols + c);
          const __m256 k1 = _mm256_loadu_ps(kt + x * cols + c + 8);
          for (int i = 0; i < kRows; ++i) {
            const __m256 b = _mm256_broadcast_ss(qr + i * d + x);
            a[i][0] = _mm256_fmadd_ps(b, k0, a[i][0]);
            a[i][1] = _mm256_fmadd_ps(b, k1, a[i][1]);
          }
        }
        for (int i = 0; i < kRows; ++i) {
          _mm256_storeu_ps(s + (r + i) * cols + c, a[i][0]);
          _mm256_storeu_ps(s + (r + i) * cols + c + 8, a[i][1]);
        }
      }
    for (; r < rows; ++r)
      for (int64_t c = 0; c < cols; c += 16) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        for (int64_t x = 0; x < d; ++x) {
          const __m256 b = _mm256_broadcast_ss(q + r * d + x);
          a0 = _mm256_fmadd_ps(b, _mm256_loadu_ps(kt + x * cols + c), a0);
          a1 = _mm256_fmadd_ps(b, _mm256_loadu_ps(kt + x * cols + c + 8), a1);
        }
        _mm256_storeu_ps(s + r * cols + c, a0);
        _mm256_storeu_ps(s + r * cols + c + 8, a1);
      }
  }
  // As PortableOps::row_scores: 8 keys at a time, one accumulator each, summed across lanes
  // together (hadd tree) instead of one horizontal sum per key.
  DAPX_AVX2 void row_scores(const float* q, int64_t rows, int64_t d, const float* keys, int64_t n,
                            float* s, int64_t s_stride) {
    const int64_t blocks = d % 8 == 0 ? n / 8 : 0;
    for (int64_t r = 0; r < rows; ++r) {
      const float* qr = q + r * d;
      for (int64_t b = 0; b < blocks; ++b) {
        const float* k = keys + b * 8 * d;
        __m256 a[8];
        for (int c = 0; c < 8; ++c) a[c] = _mm256_setzero_ps();
        for (int64_t x = 0; x < d; x += 8) {
          const __m256 qv = _mm256_loadu_ps(qr + x);
          for (int c = 0; c < 8; ++c)
            a[c] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + c * d + x), a[c]);
        }
        const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
        const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
        _mm256_storeu_ps(s + r * s_stride + b * 8,
                         _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
                                       _mm256_permute2f128_ps(u0, u1, 0x31)));
      }
      for (int64_t c = blocks * 8; c < n; ++c) s[r * s_stride + c] = dot(qr, keys + c * d, d);
    }
  }
  // Largest of s[0..n): NaN if any is NaN (as the scalar loop's !(s <= max) test).
  DAPX_AVX2 float max_of(const float* s, int64_t n) {
    __m256 m = _mm256_set1_ps(-INFINITY), nan = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 8 <= n; c += 8) {
      const __m256 x = _mm256_loadu_ps(s + c);
      m = _mm256_max_ps(m, x);
      nan = _mm256_or_ps(nan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    float best = _mm_cvtss_f32(h);
    if (_mm256_movemask_ps(nan)) return NAN;
    for (; c < n; ++c)
      if (!(s[c] <= best)) best = s[c];
    return best;
  }
};
#undef DAPX_AVX2

// The prefill tiles' block products and exp 16 lanes wide (x86 with AVX-512F: twice AVX2's
// multiply-adds per instruction); the rest as Avx2Ops. Inlined into the prefill kernels'
// AVX-512 entry points (flatten).
#define DAPX_AVX512 __attribute__((target("avx512f,avx2,fma"))) static inline
struct Avx512Ops : Avx2Ops {
  // R rows x V vectors of 16 columns of PortableOps::tile_scores, in R * V registers.
  template <int R, int V>
  DAPX_AVX512 void scores_block(const float* q, int64_t d, const float* kt, int64_t cols,
                                float* s) {
    __m512 a[R][V];
    for (int i = 0; i < R; ++i)
      for (int v = 0; v < V; ++v) a[i][v] = _mm512_setzero_ps();
    for (int64_t x = 0; x < d; ++x) {
      __m512 k[V];
      for (int v = 0; v < V; ++v) k[v] = _mm512_loadu_ps(kt + x * cols + 16 * v);
      for (int i = 0; i < R; ++i) {
        const __m512 b = _mm512_set1_ps(q[i * d + x]);
        for (int v = 0; v < V; ++v) a[i][v] = _mm512_fmadd_ps(b, k[v], a[i][v]);
      }
    }
    for (int i = 0; i < R; ++i)
      for (int v = 0; v < V; ++v) _mm512_storeu_ps(s + i * cols + 16 * v, a[i][v]);
  }
  template <int R>
  DAPX_AVX512 void scores_rows(const float* q, int64_t d, const float* kt, int64_t cols, float* s) {
    int64_t c = 0;
    for (; c + 32 <= cols; c += 32) scores_block<R, 2>(q, d, kt + c, cols, s + c);
    for (; c < cols; c += 16) scores_block<R, 1>(q, d, kt + c, cols, s + c);
  }
  // As PortableOps::tile_scores: blocks of 12 rows x 32 columns (24 of the 32 registers).
  DAPX_AVX512 void tile_scores(const float* q, int64_t rows, int64_t d, const float* kt,
                               int64_t cols, float* s) {
    constexpr int kRows = 12;
    int64_t r = 0;
    for (; r + kRows <= rows; r += kRows) scores_rows<kRows>(q + r * d, d, kt, cols, s + r * cols);
    for (; r < rows; ++r) scores_rows<1>(q + r * d, d, kt, cols, s + r * cols);
  }
  // R rows x V vectors of 16 dims of PortableOps::tile_weighted (acc and values start at the
  // block's first dim; rows d apart).
  template <int R, int V>
  DAPX_AVX512 void weighted_block(float* acc, int64_t d, const float* p, int64_t p_stride,
                                  const float* values, int64_t n) {
    __m512 a[R][V];
    for (int i = 0; i < R; ++i)
      for (int v = 0; v < V; ++v) a[i][v] = _mm512_loadu_ps(acc + i * d + 16 * v);
    for (int64_t c = 0; c < n; ++c) {
      __m512 val[V];
      for (int v = 0; v < V; ++v) val[v] = _mm512_loadu_ps(values + c * d + 16 * v);
      for (int i = 0; i < R; ++i) {
        const __m512 w = _mm512_set1_ps(p[i * p_stride + c]);
        for (int v = 0; v < V; ++v) a[i][v] = _mm512_fmadd_ps(w, val[v], a[i][v]);
      }
    }
    for (int i = 0; i < R; ++i)
      for (int v = 0; v < V; ++v) _mm512_storeu_ps(acc + i * d + 16 * v, a[i][v]);
  }
  template <int R>
  DAPX_AVX512 void weighted_rows_block(float* acc, int64_t d, const float* p, int64_t p_stride,
                                       const float* values, int64_t n) {
    int64_t x = 0;
    for (; x + 64 <= d; x += 64) weighted_block<R, 4>(acc + x, d, p, p_stride, values + x, n);
    for (; x + 16 <= d; x += 16) weighted_block<R, 1>(acc + x, d, p, p_stride, values + x, n);
    if (x < d)  // dims past the last block of 16: row by row
      for (int i = 0; i < R; ++i)
        weighted_rows(acc + i * d + x, p + i * p_stride, values + x, n, d - x, d);
  }
  // As PortableOps::tile_weighted: blocks of 6 rows x 64 dims (24 registers).
  DAPX_AVX512 void tile_weighted(float* acc, int64_t rows, int64_t d, const float* p,
                                 int64_t p_stride, const float* values, int64_t n) {
    constexpr int kRows = 6;
    int64_t r = 0;
    for (; r + kRows <= rows; r += kRows)
      weighted_rows_block<kRows>(acc + r * d, d, p + r * p_stride, p_stride, values, n);
    for (; r < rows; ++r)
      weighted_rows_block<1>(acc + r * d, d, p + r * p_stride, p_stride, values, n);
  }
  // Avx2Ops::exp8 on 16 lanes (same polynomial, same underflow and NaN handling).
  DAPX_AVX512 __m512 exp16(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-87.3f);
    const __mmask16 underflow = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    x = _mm512_max_ps(lo, x);  // this operand order lets NaN through
    const __m512 n = _mm512_roundscale_ps(
        _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f)),
        _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.f)));
    const __m512i pow2n =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    y = _mm512_mul_ps(y, _mm512_castsi512_ps(pow2n));
    return _mm512_maskz_mov_ps(static_cast<__mmask16>(~underflow), y);
  }
  DAPX_AVX512 float exp_shift(float* s, int64_t n, float m) {
    const __m512 mv = _mm512_set1_ps(m);
    __m512 sum = _mm512_setzero_ps();
    int64_t t = 0;
    for (; t + 16 <= n; t += 16) {
      const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(s + t), mv));
      _mm512_storeu_ps(s + t, e);
      sum = _mm512_add_ps(sum, e);
    }
    float total = _mm512_reduce_add_ps(sum);
    return total + Avx2Ops::exp_shift(s + t, n - t, m);
  }
};
#undef DAPX_AVX512

// The prefill tiles' block products on bf16 pairs (x86 with AVX512-BF16: vdpbf16ps multiplies 16
// pairs of bf16 and adds both products to each f32 lane, twice the f32 multiply-adds of an
// AVX-512 FMA). Operands are 32-bit words holding two bf16 values: a query's dims (2p, 2p+1),
// a key's dims (2p, 2p+1), a probability row's keys (2c, 2c+1), or the values of keys (2c, 2c+1)
// at one dim. Sums stay f32. Used only where the prefill's GEMM already rounds to bf16.
#define DAPX_AVX512BF16 \
  __attribute__((target("avx512bf16,avx512bw,avx512f,avx2,fma"))) static inline
struct Avx512Bf16Ops {
  // The word of the bf16 pair at[0], at[1] (memcpy: the buffers hold uint16_t).
  static int pair(const uint16_t* at) {
    int word;
    std::memcpy(&word, at, sizeof word);
    return word;
  }
  // dst[0..n) = src[0..n) rounded to bf16 (nearest even, as f32_to_bf16).
  DAPX_AVX512BF16 void round(const float* src, int64_t n, uint16_t* dst) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                          (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i)));
    for (; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
  }
  // dst[x] = the word (a[x], b[x]) for x < n: two value rows interleaved. n a multiple of 16.
  DAPX_AVX512BF16 void interleave(const uint16_t* a, const uint16_t* b, int64_t n, uint32_t* dst) {
    for (int64_t x = 0; x < n; x += 16) {
      const __m512i lo =
          _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + x)));
      const __m512i hi =
          _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + x)));
      _mm512_storeu_si512(dst + x, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
  }
  // R rows x V vectors of 16 columns: s[i][c] = sum over p < dw of q[i][p] . kp[p][c] (each a
  // pair product), q [rows, 2 dw] bf16 (dw words a row), kp [dw, cols] words, s [rows, cols] f32.
  template <int R, int V>
  DAPX_AVX512BF16 void scores_block(const uint16_t* q, int64_t dw, const uint32_t* kp, int64_t cols,
                                    float* s) {
    __m512 a[R][V];
    for (int i = 0; i < R; ++i)
      for (int v = 0; v < V; ++v) a[i][v] = _mm512_setzero_ps();
    for (int64_t p = 0; p < dw; ++p) {
      __m512bh k[V];
      for (int v = 0; v < V; ++v) k[v] = (__m512bh)_mm512_loadu_si512(kp + p * cols + 16 * v);
      for (int i = 0; i < R; ++i) {
        const __m512bh b = (__m512bh)_mm512_set1_epi32(pair(q + 2 * (i * dw + p)));
        for (int v = 0; v < V; ++v) a[i][v] = _mm512_dpbf16_ps(a[i][v], b, k[v]);
      }
    }
    for (int i = 0; i < R; ++i)
      for (int v = 0; v < V; ++v) _mm512_storeu_ps(s + i * cols + 16 * v, a[i][v]);
  }
  template <int R>
  DAPX_AVX512BF16 void scores_rows(const uint16_t* q, int64_t dw, const uint32_t* kp, int64_t cols,
                                   float* s) {
    for (int64_t c = 0; c < cols; c += 32) scores_block<R, 2>(q, dw, kp + c, cols, s + c);
  }
  // s [rows, cols] = q [rows, dw] . kp [dw, cols] in 12 x 32 blocks; cols a multiple of 32.
  DAPX_AVX512BF16 void tile_scores(const uint16_t* q, int64_t rows, int64_t dw, const uint32_t* kp,
                                   int64_t cols, float* s) {
    constexpr int kRows = 12;
    int64_t r = 0;
    for (; r + kRows <= rows; r += kRows)
      scores_rows<kRows>(q + 2 * r * dw, dw, kp, cols, s + r * cols);
    for (; r < rows; ++r) scores_rows<1>(q + 2 * r * dw, dw, kp, cols, s + r * cols);
  }
  // R rows x V vectors of 16 dims: acc[i][x] += sum over c < pairs of p[i][c] . vp[c][x], p
  // [rows, 2 p_stride] bf16 (p_stride words a row), vp [pairs, d] words (acc and vp start at the
  // block's first dim).
  template <int R, int V>
  DAPX_AVX512BF16 void weighted_block(float* acc, int64_t d, const uint16_t* p, int64_t p_stride,
                                      const uint32_t* vp, int64_t pairs) {
    __m512 a[R][V];
    for (int i = 0; i < R; ++i)
      for (int v = 0; v < V; ++v) a[i][v] = _mm512_loadu_ps(acc + i * d + 16 * v);
    for (int64_t c = 0; c < pairs; ++c) {
      __m512bh val[V];
      for (int v = 0; v < V; ++v) val[v] = (__m512bh)_mm512_loadu_si512(vp + c * d + 16 * v);
      for (int i = 0; i < R; ++i) {
        const __m512bh w = (__m512bh)_mm512_set1_epi32(pair(p + 2 * (i * p_stride + c)));
        for (int v = 0; v < V; ++v) a[i][v] = _mm512_dpbf16_ps(a[i][v], w, val[v]);
      }
    }
    for (int i = 0; i < R; ++i)
      for (int v = 0; v < V; ++v) _mm512_storeu_ps(acc + i * d + 16 * v, a[i][v]);
  }
  template <int R>
  DAPX_AVX512BF16 void weighted_rows(float* acc, int64_t d, const uint16_t* p, int64_t p_stride,
                                     const uint32_t* vp, int64_t pairs) {
    int64_t x = 0;
    for (; x + 64 <= d; x += 64) weighted_block<R, 4>(acc + x, d, p, p_stride, vp + x, pairs);
    for (; x < d; x += 16) weighted_block<R, 1>(acc + x, d, p, p_stride, vp + x, pairs);
  }
  // acc [rows, d] += p [rows, p_stride] . vp [pairs, d] in 6 x 64 blocks; d a multiple of 16.
  DAPX_AVX512BF16 void tile_weighted(float* acc, int64_t rows, int64_t d, const uint16_t* p,
                                     int64_t p_stride, const uint32_t* vp, int64_t pairs) {
    constexpr int kRows = 6;
    int64_t r = 0;
    for (; r + kRows <= rows; r += kRows)
      weighted_rows<kRows>(acc + r * d, d, p + 2 * r * p_stride, p_stride, vp, pairs);
    for (; r < rows; ++r)
      weighted_rows<1>(acc + r * d, d, p + 2 * r * p_stride, p_stride, vp, pairs);
  }
};
#undef DAPX_AVX512BF16
#endif

}  // namespace dapx
