#include "model/prefill_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "model/attention_ops.h"
#include "util/error.h"

namespace dapx {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kKeyTile = 64;  // keys per tile (a multiple of 16: tile_scores' blocks)
// Query rows per tile across the group: 128 rows x d floats of queries and accumulators stay
// in L2 while the key tiles stream through L1.
int64_t positions_per_tile(int64_t group) { return std::max<int64_t>(1, 128 / group); }

// One worker's buffers, sized once per call.
struct Scratch {
  std::vector<float> q, kt, s, acc, m, l;
  Scratch(int64_t rows, int64_t d)
      : q(rows * d), kt(d * kKeyTile), s(rows * kKeyTile), acc(rows * d), m(rows), l(rows) {}
};

// Positions [i0, i1) of every query head of KV head h. Row r = g * n + (i - i0).
template <typename Ops>
inline void attend_tile_impl(const PrefillAttention& a, int64_t h, int64_t i0, int64_t i1,
                             Scratch& w) {
  const int64_t d = a.d, group = a.heads / a.kv_heads, n = i1 - i0, rows = group * n;
  const int64_t older = a.len - a.t;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  const float* keys = a.k + h * a.head_stride;
  const float* values = a.v + h * a.head_stride;
  const bool* mask = a.mask ? a.mask + h * a.mask_stride : nullptr;
  for (int64_t g = 0; g < group; ++g)  // gather the queries, pre-scaled
    for (int64_t i = 0; i < n; ++i) {
      const float* src = a.q + ((h * group + g) * a.t + i0 + i) * d;
      float* dst = w.q.data() + (g * n + i) * d;
      for (int64_t x = 0; x < d; ++x) dst[x] = src[x] * scale;
    }
  std::fill(w.m.begin(), w.m.begin() + rows, kNegInf);
  std::fill(w.l.begin(), w.l.begin() + rows, 0.f);
  std::fill(w.acc.begin(), w.acc.begin() + rows * d, 0.f);
  const int64_t end = older + i1;  // keys the tile's last position sees
  for (int64_t j0 = 0; j0 < end; j0 += kKeyTile) {
    const int64_t nk = std::min(kKeyTile, end - j0);
    // keys transposed: kt[x][c] = key j0 + c, element x (zero past nk)
    for (int64_t c = 0; c < kKeyTile; ++c) {
      if (c < nk) {
        const float* key = keys + (j0 + c) * d;
        for (int64_t x = 0; x < d; ++x) w.kt[x * kKeyTile + c] = key[x];
      } else {
        for (int64_t x = 0; x < d; ++x) w.kt[x * kKeyTile + c] = 0.f;
      }
    }
    Ops::tile_scores(w.q.data(), rows, d, w.kt.data(), kKeyTile, w.s.data());
    // Scores -> weights in place, row by row; a weight past what its row sees is 0, so one
    // block product adds every row's weighted values.
    for (int64_t r = 0; r < rows; ++r) {
      // position i0 + r % n sees keys < older + i0 + r % n + 1: a prefix of this tile
      const int64_t seen = std::min(nk, older + i0 + r % n + 1 - j0);
      float* s = w.s.data() + r * kKeyTile;
      if (mask)
        for (int64_t c = 0; c < seen; ++c)
          if (mask[j0 + c]) s[c] = kNegInf;
      const float tile_max = Ops::max_of(s, std::max<int64_t>(seen, 0));  // NaN propagates
      if (tile_max == kNegInf) {  // nothing visible in this tile (causal or masked)
        std::fill(s, s + nk, 0.f);
        continue;
      }
      if (tile_max > w.m[r]) {  // rescale what was accumulated under the old max
        const float c = w.m[r] == kNegInf ? 0.f : std::exp(w.m[r] - tile_max);
        w.l[r] *= c;
        float* acc = w.acc.data() + r * d;
        for (int64_t x = 0; x < d; ++x) acc[x] *= c;
        w.m[r] = tile_max;
      }
      w.l[r] += Ops::exp_shift(s, seen, w.m[r]);
      std::fill(s + seen, s + nk, 0.f);
    }
    Ops::tile_weighted(w.acc.data(), rows, d, w.s.data(), kKeyTile, values + j0 * d, nk);
  }
  for (int64_t g = 0; g < group; ++g)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = g * n + i;
      float* o = a.out + ((h * group + g) * a.t + i0 + i) * d;
      const float* acc = w.acc.data() + r * d;
      const float inv = w.l[r] > 0.f ? 1.f / w.l[r] : 0.f;
      for (int64_t x = 0; x < d; ++x) o[x] = acc[x] * inv;
    }
}

void attend_tile_portable(const PrefillAttention& a, int64_t h, int64_t i0, int64_t i1,
                          Scratch& w) {
  attend_tile_impl<PortableOps>(a, h, i0, i1, w);
}

#ifdef DAPX_X86
__attribute__((target("avx2,fma"), flatten)) void attend_tile_avx2(const PrefillAttention& a,
                                                                   int64_t h, int64_t i0,
                                                                   int64_t i1, Scratch& w) {
  attend_tile_impl<Avx2Ops>(a, h, i0, i1, w);
}
#else
void attend_tile_avx2(const PrefillAttention& a, int64_t h, int64_t i0, int64_t i1, Scratch& w) {
  attend_tile_portable(a, h, i0, i1, w);
}
#endif

}  // namespace

void attend_causal(const PrefillAttention& a) {
  if (a.heads < 1 || a.kv_heads < 1 || a.heads % a.kv_heads != 0 || a.d < 1 || a.t < 0 ||
      a.len < a.t || !a.q || !a.k || !a.v || !a.out)
    throw Error(
        "prefill attention: heads must be a multiple of kv_heads, d >= 1, t <= len, buffers set");
  if ((a.kv_heads > 1 && a.head_stride < a.len * a.d) ||
      (a.mask && a.kv_heads > 1 && a.mask_stride < a.len))
    throw Error("prefill attention: head or mask stride shorter than the keys");
  const int64_t group = a.heads / a.kv_heads, per_tile = positions_per_tile(group);
  const int64_t tiles = (a.t + per_tile - 1) / per_tile, items = a.kv_heads * tiles;
  const bool avx2 = cpu_has_avx2() && !a.portable;
  // Later tiles see more keys: dynamic scheduling balances the causal triangle.
#pragma omp parallel if (items > 1 && a.t * a.len * a.heads * a.d >= (int64_t{1} << 18))
  {
    Scratch w(group * std::min(per_tile, a.t), a.d);
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t h = item % a.kv_heads, tile = tiles - 1 - item / a.kv_heads;  // big first
      const int64_t i0 = tile * per_tile, i1 = std::min(a.t, i0 + per_tile);
      if (avx2)
        attend_tile_avx2(a, h, i0, i1, w);
      else
        attend_tile_portable(a, h, i0, i1, w);
    }
  }
}

}  // namespace dapx
