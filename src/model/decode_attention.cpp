#include "model/decode_attention.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "model/cpu_features.h"
#include "util/error.h"

namespace dapx {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Key and value rows per tile: one tile of each (16 KiB) stays in L1 while every query head
// of the group uses it.
int64_t tile_rows(int64_t d) { return std::max<int64_t>(16, 4096 / d); }
// A parallel range has at least this many keys, and a layer at least this many
// multiply-adds, or the fork/join costs more than it saves.
constexpr int64_t kMinKeysPerRange = 256;
constexpr int64_t kMinParallelWork = 1 << 15;

// Plain loops: any CPU.
struct PortableOps {
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
  // acc[0..d) += sum_t p[t] * rows[t][0..d) over n rows.
  static void weighted_rows(float* acc, const float* p, const float* rows, int64_t n, int64_t d) {
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < d; ++i) acc[i] += p[t] * rows[t * d + i];
  }
};

#ifdef DAPX_X86
// Inlined into attend_range_avx2 (flatten), where the AVX2 target is enabled.
#define DAPX_AVX2 __attribute__((target("avx2,fma"))) static inline
struct Avx2Ops {
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
  DAPX_AVX2 void weighted_rows(float* acc, const float* p, const float* rows, int64_t n,
                               int64_t d) {
    int64_t i = 0;
    for (; i + 32 <= d; i += 32) {
      __m256 a0 = _mm256_loadu_ps(acc + i), a1 = _mm256_loadu_ps(acc + i + 8),
             a2 = _mm256_loadu_ps(acc + i + 16), a3 = _mm256_loadu_ps(acc + i + 24);
      for (int64_t t = 0; t < n; ++t) {
        const __m256 pt = _mm256_set1_ps(p[t]);
        const float* r = rows + t * d + i;
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
        a0 = _mm256_fmadd_ps(_mm256_set1_ps(p[t]), _mm256_loadu_ps(rows + t * d + i), a0);
      _mm256_storeu_ps(acc + i, a0);
    }
    for (; i < d; ++i)
      for (int64_t t = 0; t < n; ++t) acc[i] += p[t] * rows[t * d + i];
  }
};
#undef DAPX_AVX2
#endif

// Running softmax state of one query head over a key range: max m, sum l of exp(s - m),
// acc = sum of exp(s - m) v.
struct Partial {
  float* m;
  float* l;
  float* acc;  // [group, d]
};

// Keys [j0, j1) of KV head h for its whole query group, tile by tile.
template <typename Ops>
inline void attend_range_impl(const DecodeAttention& a, int64_t h, int64_t j0, int64_t j1,
                              const Partial& out) {
  const int64_t d = a.d, group = a.heads / a.kv_heads;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  const float* q = a.q + h * group * d;
  const float* keys = a.k + h * a.head_stride;
  const float* values = a.v + h * a.head_stride;
  const bool* mask = a.mask ? a.mask + h * a.mask_stride : nullptr;
  std::fill(out.m, out.m + group, kNegInf);
  std::fill(out.l, out.l + group, 0.f);
  std::fill(out.acc, out.acc + group * d, 0.f);
  const int64_t tile = tile_rows(d);
  std::vector<float> scores(tile);
  float* s = scores.data();
  for (int64_t t0 = j0; t0 < j1; t0 += tile) {
    const int64_t n = std::min(tile, j1 - t0);
    for (int64_t g = 0; g < group; ++g) {
      float tile_max = kNegInf;
      for (int64_t t = 0; t < n; ++t) {
        s[t] = mask && mask[t0 + t] ? kNegInf : Ops::dot(q + g * d, keys + (t0 + t) * d, d) * scale;
        if (!(s[t] <= tile_max)) tile_max = s[t];  // (a NaN score propagates)
      }
      if (tile_max == kNegInf) continue;  // every key of the tile is masked
      float* acc = out.acc + g * d;
      if (tile_max > out.m[g]) {  // rescale what was accumulated under the old max
        const float c = out.m[g] == kNegInf ? 0.f : std::exp(out.m[g] - tile_max);
        out.l[g] *= c;
        for (int64_t i = 0; i < d; ++i) acc[i] *= c;
        out.m[g] = tile_max;
      }
      out.l[g] += Ops::exp_shift(s, n, out.m[g]);
      // Masked rows enter with weight 0: LayerKV::compact fills padded slots with finite
      // copies of a real entry, so 0 * value stays 0.
      Ops::weighted_rows(acc, s, values + t0 * d, n, d);
    }
  }
}

void attend_range_portable(const DecodeAttention& a, int64_t h, int64_t j0, int64_t j1,
                           const Partial& out) {
  attend_range_impl<PortableOps>(a, h, j0, j1, out);
}

#ifdef DAPX_X86
__attribute__((target("avx2,fma"), flatten)) void attend_range_avx2(const DecodeAttention& a,
                                                                    int64_t h, int64_t j0,
                                                                    int64_t j1,
                                                                    const Partial& out) {
  attend_range_impl<Avx2Ops>(a, h, j0, j1, out);
}
#else
void attend_range_avx2(const DecodeAttention& a, int64_t h, int64_t j0, int64_t j1,
                       const Partial& out) {
  attend_range_portable(a, h, j0, j1, out);
}
#endif

}  // namespace

void attend_one_token(const DecodeAttention& a) {
  if (a.heads < 1 || a.kv_heads < 1 || a.heads % a.kv_heads != 0 || a.d < 1 || a.len < 0 || !a.q ||
      !a.k || !a.v || !a.out)
    throw Error("decode attention: heads must be a multiple of kv_heads, d >= 1, buffers set");
  if ((a.kv_heads > 1 && a.head_stride < a.len * a.d) ||
      (a.mask && a.kv_heads > 1 && a.mask_stride < a.len))
    throw Error("decode attention: head or mask stride shorter than the keys");
  const int64_t group = a.heads / a.kv_heads, d = a.d;
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  // Split each head's keys so that the items (heads x ranges) are a multiple of the threads,
  // but no range is tiny.
  const int64_t ranges =
      std::max<int64_t>(1, std::min<int64_t>(threads / std::gcd<int64_t>(threads, a.kv_heads),
                                             a.len / kMinKeysPerRange));
  const int64_t items = a.kv_heads * ranges, per_item = group * (d + 2);
  std::vector<float> partials(items * per_item);
  const bool avx2 = cpu_has_avx2() && !a.portable;
#pragma omp parallel for schedule(static) if (items > 1 && a.len * a.heads * d >= kMinParallelWork)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t h = item / ranges, r = item % ranges;
    float* base = partials.data() + item * per_item;
    const Partial p{base, base + group, base + 2 * group};
    const int64_t j0 = a.len * r / ranges, j1 = a.len * (r + 1) / ranges;
    if (avx2)
      attend_range_avx2(a, h, j0, j1, p);
    else
      attend_range_portable(a, h, j0, j1, p);
  }
  // Combine the ranges of each query head: rescale each to the common max.
  for (int64_t h = 0; h < a.kv_heads; ++h)
    for (int64_t g = 0; g < group; ++g) {
      float* o = a.out + (h * group + g) * d;
      float m = kNegInf, l = 0.f;
      for (int64_t r = 0; r < ranges; ++r)
        m = std::max(m, partials[(h * ranges + r) * per_item + g]);
      std::fill(o, o + d, 0.f);
      if (m == kNegInf) continue;  // nothing visible
      for (int64_t r = 0; r < ranges; ++r) {
        const float* base = partials.data() + (h * ranges + r) * per_item;
        if (base[g] == kNegInf) continue;
        const float c = std::exp(base[g] - m);
        l += c * base[group + g];
        const float* acc = base + 2 * group + g * d;
        for (int64_t i = 0; i < d; ++i) o[i] += c * acc[i];
      }
      for (int64_t i = 0; i < d; ++i) o[i] /= l;
    }
}

}  // namespace dapx
