#include "model/decode_attention.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "model/attention_ops.h"
#include "model/cache_rows.h"
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

// Running softmax state of one query head over a key range: max m, sum l of exp(s - m),
// acc = sum of exp(s - m) v.
struct Partial {
  float* m;
  float* l;
  float* acc;  // [group, d]
};

// Keys [j0, j1) of KV head h for its whole query group, tile by tile: the group's scores for
// a tile in one pass over its keys, the weighted values in one pass over its values.
template <typename Ops>
inline void attend_range_impl(const DecodeAttention& a, int64_t h, int64_t j0, int64_t j1,
                              const Partial& out) {
  const int64_t d = a.d, group = a.heads / a.kv_heads;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  const CacheRows keys{a.k, a.bf16, h * a.head_stride, d},
      values{a.v, a.bf16, h * a.head_stride, d};
  const bool* mask = a.mask ? a.mask + h * a.mask_stride : nullptr;
  std::fill(out.m, out.m + group, kNegInf);
  std::fill(out.l, out.l + group, 0.f);
  std::fill(out.acc, out.acc + group * d, 0.f);
  const int64_t tile = tile_rows(d);
  std::vector<float> scaled_q(group * d), scores(group * tile), widened(a.bf16 ? 2 * tile * d : 0);
  for (int64_t i = 0; i < group * d; ++i) scaled_q[i] = a.q[h * group * d + i] * scale;
  for (int64_t t0 = j0; t0 < j1; t0 += tile) {
    const int64_t n = std::min(tile, j1 - t0);
    const float* k = keys.rows<Ops>(t0, n, widened.data());
    const float* v = values.rows<Ops>(t0, n, widened.data() + tile * d);
    Ops::row_scores(scaled_q.data(), group, d, k, n, scores.data(), tile);
    for (int64_t g = 0; g < group; ++g) {
      float* s = scores.data() + g * tile;
      if (mask)
        for (int64_t t = 0; t < n; ++t)
          if (mask[t0 + t]) s[t] = kNegInf;
      const float tile_max = Ops::max_of(s, n);  // (a NaN score propagates)
      if (tile_max == kNegInf) {                 // every key of the tile is masked: weights 0
        std::fill(s, s + n, 0.f);
        continue;
      }
      if (!(tile_max <= out.m[g])) {  // rescale to the new max (a NaN max stays)
        const float c = out.m[g] == kNegInf ? 0.f : std::exp(out.m[g] - tile_max);
        out.l[g] *= c;
        float* acc = out.acc + g * d;
        for (int64_t i = 0; i < d; ++i) acc[i] *= c;
        out.m[g] = tile_max;
      }
      out.l[g] += Ops::exp_shift(s, n, out.m[g]);
    }
    // Masked keys enter with weight 0: LayerKV::compact fills padded slots with finite copies
    // of a real entry, so 0 * value stays 0.
    Ops::tile_weighted(out.acc, group, d, scores.data(), tile, v, n);
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
  const bool avx2 = cpu_kernels(a.kernels) != CpuKernels::kPortable;
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
        if (const float x = partials[(h * ranges + r) * per_item + g]; !std::isnan(m) && !(x <= m))
          m = x;  // (a NaN max, once seen, stays)
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
