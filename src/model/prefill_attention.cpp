#include "model/prefill_attention.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "model/attention_ops.h"
#include "model/cache_rows.h"
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
  std::vector<float> q, kt, widened, s, acc, m, l;
  std::vector<int64_t> lo, hi;  // per position of the tile: the visible keys [lo, hi)
  // bf16 pair products only (Bf16Products): queries, a key tile's and a value tile's pair
  // words, the probabilities as bf16, two rows rounded from f32.
  std::vector<uint16_t> qb, pb, rounded;
  std::vector<uint32_t> kp, vp;
  Scratch(int64_t rows, int64_t positions, int64_t d, bool bf16_products)
      : q(rows * d),
        kt(d * kKeyTile),
        widened(2 * kKeyTile * d),
        s(rows * kKeyTile),
        acc(rows * d),
        m(rows),
        l(rows),
        lo(positions),
        hi(positions) {
    if (!bf16_products) return;
    qb.resize(rows * d);
    pb.resize(rows * kKeyTile);
    rounded.resize(2 * d);
    kp.resize(d / 2 * kKeyTile);
    vp.resize(kKeyTile / 2 * d);
  }
};

// The tile's query rows, pre-scaled by 1/sqrt(d): dst row g * n + i is head h * group + g's
// row r0 + i of q [heads, rows_per_head, d].
inline void gather_queries(const float* q, int64_t rows_per_head, int64_t h, int64_t group,
                           int64_t r0, int64_t n, int64_t d, float* dst) {
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  for (int64_t g = 0; g < group; ++g)
    for (int64_t i = 0; i < n; ++i) {
      const float* src = q + ((h * group + g) * rows_per_head + r0 + i) * d;
      float* out = dst + (g * n + i) * d;
      for (int64_t x = 0; x < d; ++x) out[x] = src[x] * scale;
    }
}

// kt[x][c] = element x of key c for c < nk, 0 for nk <= c < kKeyTile.
inline void transpose_keys(const float* keys, int64_t nk, int64_t d, float* kt) {
  for (int64_t c = 0; c < kKeyTile; ++c) {
    if (c < nk) {
      const float* key = keys + c * d;
      for (int64_t x = 0; x < d; ++x) kt[x * kKeyTile + c] = key[x];
    } else {
      for (int64_t x = 0; x < d; ++x) kt[x * kKeyTile + c] = 0.f;
    }
  }
}

// Keys j of one source (rows j * d of keys/values); position i of the tile sees [lo[i], hi[i]).
struct KeySource {
  CacheRows keys, values;
  const bool* mask;  // optional
};

// The tile's two block products, in f32 with the loops of Ops (exact for an f32 cache).
template <typename LoopOps>
struct F32Products {
  using Ops = LoopOps;
  static void queries(int64_t, int64_t, Scratch&) {}  // w.q as gathered
  // w.s [rows, kKeyTile] = the rows' queries . keys [j0, j0 + nk).
  static void scores(const CacheRows& keys, int64_t j0, int64_t nk, int64_t rows, int64_t d,
                     Scratch& w) {
    transpose_keys(keys.rows<Ops>(j0, nk, w.widened.data()), nk, d, w.kt.data());
    Ops::tile_scores(w.q.data(), rows, d, w.kt.data(), kKeyTile, w.s.data());
  }
  // w.acc += the weights w.s [rows, nk] . values [j0, j0 + nk).
  static void weighted(const CacheRows& values, int64_t j0, int64_t nk, int64_t rows, int64_t d,
                       Scratch& w) {
    const float* v = values.rows<Ops>(j0, nk, w.widened.data() + kKeyTile * d);
    Ops::tile_weighted(w.acc.data(), rows, d, w.s.data(), kKeyTile, v, nk);
  }
};

#ifdef DAPX_X86
// The same products on bf16 pairs (Avx512Bf16Ops): queries, keys and weights rounded to bf16,
// sums in f32, as flash attention does on GPUs. Needs an even d (a multiple of 16).
struct Bf16Products {
  using Ops = Avx512Ops;  // the softmax's max and exp
  using Pairs = Avx512Bf16Ops;
  // Row j of a source as bf16: the cache's own bits, or f32 rounded into `tmp`.
  static const uint16_t* bf16_row(const CacheRows& src, int64_t j, uint16_t* tmp) {
    const int64_t at = src.offset + j * src.d;
    if (src.bf16) return static_cast<const uint16_t*>(src.base) + at;
    Pairs::round(static_cast<const float*>(src.base) + at, src.d, tmp);
    return tmp;
  }
  static void queries(int64_t rows, int64_t d, Scratch& w) {
    Pairs::round(w.q.data(), rows * d, w.qb.data());
  }
  // kp[p][c] = key c's word p (dims 2p, 2p + 1); zeros past nk.
  static void scores(const CacheRows& keys, int64_t j0, int64_t nk, int64_t rows, int64_t d,
                     Scratch& w) {
    const int64_t dw = d / 2;
    for (int64_t c = 0; c < kKeyTile; ++c) {
      if (c < nk) {
        const uint16_t* row = bf16_row(keys, j0 + c, w.rounded.data());
        for (int64_t p = 0; p < dw; ++p)
          std::memcpy(&w.kp[p * kKeyTile + c], row + 2 * p, sizeof(uint32_t));
      } else {
        for (int64_t p = 0; p < dw; ++p) w.kp[p * kKeyTile + c] = 0;
      }
    }
    Pairs::tile_scores(w.qb.data(), rows, dw, w.kp.data(), kKeyTile, w.s.data());
  }
  // vp[c][x] = the values of keys 2c and 2c + 1 at dim x (zero past nk); the weights w.s rounded
  // to bf16 (columns past nk zero).
  static void weighted(const CacheRows& values, int64_t j0, int64_t nk, int64_t rows, int64_t d,
                       Scratch& w) {
    const int64_t pairs = (nk + 1) / 2;
    uint16_t* second = w.rounded.data() + d;
    for (int64_t c = 0; c < pairs; ++c) {
      // an f32 source rounds both keys of the pair: two scratch rows
      const uint16_t* a = bf16_row(values, j0 + 2 * c, w.rounded.data());
      const uint16_t* b = second;
      if (2 * c + 1 < nk)
        b = bf16_row(values, j0 + 2 * c + 1, second);
      else
        std::fill(second, second + d, uint16_t{0});
      Pairs::interleave(a, b, d, w.vp.data() + c * d);
    }
    for (int64_t r = 0; r < rows; ++r) {
      uint16_t* pr = w.pb.data() + r * kKeyTile;
      Pairs::round(w.s.data() + r * kKeyTile, nk, pr);
      std::fill(pr + nk, pr + kKeyTile, uint16_t{0});
    }
    Pairs::tile_weighted(w.acc.data(), rows, d, w.pb.data(), kKeyTile / 2, w.vp.data(), pairs);
  }
};
#endif

// Adds one source's keys to the running softmax state of the tile's rows (r = g * n + i).
template <typename P>
inline void add_source(const KeySource& src, int64_t rows, int64_t n, int64_t d, Scratch& w) {
  using Ops = typename P::Ops;
  int64_t first = w.lo[0], end = w.hi[0];
  for (int64_t i = 1; i < n; ++i) {
    first = std::min(first, w.lo[i]);
    end = std::max(end, w.hi[i]);
  }
  for (int64_t j0 = first; j0 < end; j0 += kKeyTile) {
    const int64_t nk = std::min(kKeyTile, end - j0);
    P::scores(src.keys, j0, nk, rows, d, w);
    // Scores -> weights in place, row by row; a weight outside what its row sees is 0, so
    // one block product adds every row's weighted values.
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = r % n;
      const int64_t c0 = std::clamp<int64_t>(w.lo[i] - j0, 0, nk);
      const int64_t c1 = std::clamp<int64_t>(w.hi[i] - j0, 0, nk);
      float* s = w.s.data() + r * kKeyTile;
      if (src.mask)
        for (int64_t c = c0; c < c1; ++c)
          if (src.mask[j0 + c]) s[c] = kNegInf;
      const float tile_max = Ops::max_of(s + c0, std::max<int64_t>(c1 - c0, 0));  // NaN stays
      if (tile_max == kNegInf) {  // nothing visible in this tile (causal, band or masked)
        std::fill(s, s + nk, 0.f);
        continue;
      }
      if (!(tile_max <= w.m[r])) {  // rescale to the new max (a NaN max stays)
        const float c = w.m[r] == kNegInf ? 0.f : std::exp(w.m[r] - tile_max);
        w.l[r] *= c;
        float* acc = w.acc.data() + r * d;
        for (int64_t x = 0; x < d; ++x) acc[x] *= c;
        w.m[r] = tile_max;
      }
      w.l[r] += Ops::exp_shift(s + c0, c1 - c0, w.m[r]);
      std::fill(s, s + c0, 0.f);
      std::fill(s + c1, s + nk, 0.f);
    }
    P::weighted(src.values, j0, nk, rows, d, w);
  }
}

// Positions [i0, i1) of every query head of KV head h. Row r = g * n + (i - i0).
// gathered: KV head h's vertical keys and values, [n_vertical, d] each (sparse only).
template <typename P>
inline void attend_tile_impl(const PrefillAttention& a, int64_t h, int64_t i0, int64_t i1,
                             const float* gathered_k, const float* gathered_v, Scratch& w) {
  const int64_t d = a.d, group = a.heads / a.kv_heads, n = i1 - i0, rows = group * n;
  gather_queries(a.q, a.t, h, group, i0, n, d, w.q.data());
  P::queries(rows, d, w);
  std::fill(w.m.begin(), w.m.begin() + rows, kNegInf);
  std::fill(w.l.begin(), w.l.begin() + rows, 0.f);
  std::fill(w.acc.begin(), w.acc.begin() + rows * d, 0.f);
  const KeySource cache{CacheRows{a.k, a.bf16, h * a.head_stride, d},
                        CacheRows{a.v, a.bf16, h * a.head_stride, d},
                        a.mask ? a.mask + h * a.mask_stride : nullptr};
  if (a.band <= 0) {  // dense causal: keys [0, p]
    for (int64_t i = 0; i < n; ++i) {
      w.lo[i] = 0;
      w.hi[i] = a.pos0 + i0 + i + 1;
    }
    add_source<P>(cache, rows, n, d, w);
  } else {
    // vertical keys at positions <= p - band: a prefix of the ascending list
    const int64_t* vpos = a.vertical + h * a.vertical_stride;
    for (int64_t i = 0; i < n; ++i) {
      w.lo[i] = 0;
      w.hi[i] = std::upper_bound(vpos, vpos + a.n_vertical, a.pos0 + i0 + i - a.band) - vpos;
    }
    add_source<P>(
        KeySource{CacheRows{gathered_k, false, 0, d}, CacheRows{gathered_v, false, 0, d}, nullptr},
        rows, n, d, w);
    for (int64_t i = 0; i < n; ++i) {  // the band (p - band, p]
      const int64_t p = a.pos0 + i0 + i;
      w.lo[i] = std::max<int64_t>(0, p - a.band + 1);
      w.hi[i] = p + 1;
    }
    add_source<P>(cache, rows, n, d, w);
  }
  for (int64_t g = 0; g < group; ++g)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = g * n + i;
      float* o = a.out + ((h * group + g) * a.t + i0 + i) * d;
      const float* acc = w.acc.data() + r * d;
      const float inv = w.l[r] <= 0.f ? 0.f : 1.f / w.l[r];  // (NaN stays NaN)
      for (int64_t x = 0; x < d; ++x) o[x] = acc[x] * inv;
    }
}

void attend_tile_portable(const PrefillAttention& a, int64_t h, int64_t i0, int64_t i1,
                          const float* gk, const float* gv, Scratch& w) {
  attend_tile_impl<F32Products<PortableOps>>(a, h, i0, i1, gk, gv, w);
}

#ifdef DAPX_X86
__attribute__((target("avx2,fma"), flatten)) void attend_tile_avx2(const PrefillAttention& a,
                                                                   int64_t h, int64_t i0,
                                                                   int64_t i1, const float* gk,
                                                                   const float* gv, Scratch& w) {
  attend_tile_impl<F32Products<Avx2Ops>>(a, h, i0, i1, gk, gv, w);
}
__attribute__((target("avx512f,avx2,fma"), flatten)) void attend_tile_avx512(
    const PrefillAttention& a, int64_t h, int64_t i0, int64_t i1, const float* gk, const float* gv,
    Scratch& w) {
  attend_tile_impl<F32Products<Avx512Ops>>(a, h, i0, i1, gk, gv, w);
}
__attribute__((target("avx512bf16,avx512bw,avx512f,avx2,fma"), flatten)) void
attend_tile_avx512_bf16(const PrefillAttention& a, int64_t h, int64_t i0, int64_t i1,
                        const float* gk, const float* gv, Scratch& w) {
  attend_tile_impl<Bf16Products>(a, h, i0, i1, gk, gv, w);
}
#endif

// Whether bf16 pair products run: asked for, AVX-512 loops allowed, the CPU has them, and d
// fits their 16-dim blocks.
bool uses_bf16_products(const PrefillAttention& a, CpuKernels kernels) {
  return a.bf16_products && kernels == CpuKernels::kAvx512 && cpu_has_avx512_bf16() &&
         a.d % 16 == 0;
}

// Positions [i0, i1) of KV head h with the loops `kernels` names (cpu_kernels resolved).
void attend_tile(CpuKernels kernels, bool bf16_products, const PrefillAttention& a, int64_t h,
                 int64_t i0, int64_t i1, const float* gk, const float* gv, Scratch& w) {
#ifdef DAPX_X86
  if (bf16_products) return attend_tile_avx512_bf16(a, h, i0, i1, gk, gv, w);
  if (kernels == CpuKernels::kAvx512) return attend_tile_avx512(a, h, i0, i1, gk, gv, w);
  if (kernels == CpuKernels::kAvx2) return attend_tile_avx2(a, h, i0, i1, gk, gv, w);
#endif
  attend_tile_portable(a, h, i0, i1, gk, gv, w);
}

// Rows [r0, r1) of every query head of KV head h (row g * n + i is head g's row r0 + i):
// adds their probabilities over keys [0, n_scored) to col[0, n_scored).
template <typename Ops>
inline void column_sums_impl(const AttentionColumnSums& a, int64_t h, int64_t r0, int64_t r1,
                             Scratch& w, float* col) {
  const int64_t d = a.d, group = a.heads / a.kv_heads, n = r1 - r0, rows = group * n;
  gather_queries(a.q, a.rows, h, group, r0, n, d, w.q.data());
  int64_t end = 0;
  for (int64_t i = 0; i < n; ++i) {
    w.hi[i] = a.positions[r0 + i] + 1;
    end = std::max(end, w.hi[i]);
  }
  std::fill(w.m.begin(), w.m.begin() + rows, kNegInf);
  std::fill(w.l.begin(), w.l.begin() + rows, 0.f);
  const CacheRows keys{a.k, a.bf16, h * a.head_stride, d};
  for (int pass = 0; pass < 2; ++pass) {  // 0: row max and sum; 1: probabilities per key
    const int64_t pass_end = pass == 0 ? end : std::min(end, a.n_scored);
    for (int64_t j0 = 0; j0 < pass_end; j0 += kKeyTile) {
      const int64_t nk = std::min(kKeyTile, pass_end - j0);
      transpose_keys(keys.rows<Ops>(j0, nk, w.widened.data()), nk, d, w.kt.data());
      Ops::tile_scores(w.q.data(), rows, d, w.kt.data(), kKeyTile, w.s.data());
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t c1 = std::clamp<int64_t>(w.hi[r % n] - j0, 0, nk);
        float* s = w.s.data() + r * kKeyTile;
        if (pass == 0) {
          const float tile_max = Ops::max_of(s, c1);
          if (tile_max == kNegInf) continue;
          if (!(tile_max <= w.m[r])) {
            w.l[r] *= w.m[r] == kNegInf ? 0.f : std::exp(w.m[r] - tile_max);
            w.m[r] = tile_max;
          }
          w.l[r] += Ops::exp_shift(s, c1, w.m[r]);
        } else if (c1 > 0 && !(w.l[r] <= 0.f)) {  // (a NaN row stays NaN)
          Ops::exp_shift(s, c1, w.m[r]);
          const float inv = 1.f / w.l[r];
          for (int64_t c = 0; c < c1; ++c) col[j0 + c] += s[c] * inv;
        }
      }
    }
  }
}

void column_sums_portable(const AttentionColumnSums& a, int64_t h, int64_t r0, int64_t r1,
                          Scratch& w, float* col) {
  column_sums_impl<PortableOps>(a, h, r0, r1, w, col);
}

#ifdef DAPX_X86
__attribute__((target("avx2,fma"), flatten)) void column_sums_avx2(const AttentionColumnSums& a,
                                                                   int64_t h, int64_t r0,
                                                                   int64_t r1, Scratch& w,
                                                                   float* col) {
  column_sums_impl<Avx2Ops>(a, h, r0, r1, w, col);
}
__attribute__((target("avx512f,avx2,fma"), flatten)) void column_sums_avx512(
    const AttentionColumnSums& a, int64_t h, int64_t r0, int64_t r1, Scratch& w, float* col) {
  column_sums_impl<Avx512Ops>(a, h, r0, r1, w, col);
}
#endif

void column_sums(CpuKernels kernels, const AttentionColumnSums& a, int64_t h, int64_t r0,
                 int64_t r1, Scratch& w, float* col) {
#ifdef DAPX_X86
  if (kernels == CpuKernels::kAvx512) return column_sums_avx512(a, h, r0, r1, w, col);
  if (kernels == CpuKernels::kAvx2) return column_sums_avx2(a, h, r0, r1, w, col);
#endif
  column_sums_portable(a, h, r0, r1, w, col);
}

// dst[0..d) = the row at element offset `at` of a cache buffer, as f32.
void widen_row(const PrefillAttention& a, const void* base, int64_t at, float* dst) {
  if (a.bf16)
    PortableOps::widen(static_cast<const uint16_t*>(base) + at, a.d, dst);
  else
    std::copy_n(static_cast<const float*>(base) + at, a.d, dst);
}

void check(const PrefillAttention& a) {
  const auto fail = [](const std::string& why) { throw Error("prefill attention: " + why); };
  if (a.heads < 1 || a.kv_heads < 1 || a.heads % a.kv_heads != 0)
    fail("heads must be a positive multiple of kv_heads");
  if (a.d < 1 || a.t < 0 || !a.k || !a.v || (a.t > 0 && (!a.q || !a.out)))
    fail("needs d >= 1, t >= 0, buffers");
  if (a.pos0 < 0 || a.pos0 + a.t > a.len) fail("query positions must lie within the keys");
  if ((a.kv_heads > 1 && a.head_stride < a.len * a.d) ||
      (a.mask && a.kv_heads > 1 && a.mask_stride < a.len))
    fail("head or mask stride shorter than the keys");
  if (a.band > 0) {
    if (a.mask) fail("sparse prefill runs on a fresh cache: no key mask");
    if (a.n_vertical < 0 || (a.n_vertical > 0 && !a.vertical) ||
        (a.kv_heads > 1 && a.vertical_stride < a.n_vertical))
      fail("vertical keys must be [kv_heads, n_vertical] positions");
    for (int64_t h = 0; h < a.kv_heads; ++h)
      for (int64_t j = 0; j < a.n_vertical; ++j) {
        const int64_t p = a.vertical[h * a.vertical_stride + j];
        if (p < 0 || p >= a.len || (j > 0 && p <= a.vertical[h * a.vertical_stride + j - 1]))
          fail("vertical key positions must be ascending and within the keys");
      }
  }
}

}  // namespace

void attend_prefill(const PrefillAttention& args) {
  PrefillAttention a = args;
  if (a.pos0 == -1) a.pos0 = a.len - a.t;
  check(a);
  const int64_t group = a.heads / a.kv_heads, per_tile = positions_per_tile(group), d = a.d;
  const int64_t tiles = (a.t + per_tile - 1) / per_tile, items = a.kv_heads * tiles;
  const CpuKernels kernels = cpu_kernels(a.kernels);
  const bool bf16_products = uses_bf16_products(a, kernels);
  // Sparse: each KV head's vertical keys and values gathered once, contiguous.
  const int64_t nv = a.band > 0 ? a.n_vertical : 0;
  std::vector<float> gathered(2 * a.kv_heads * nv * d);
  for (int64_t h = 0; h < a.kv_heads; ++h)
    for (int64_t j = 0; j < nv; ++j) {
      const int64_t p = a.vertical[h * a.vertical_stride + j];
      const int64_t src = h * a.head_stride + p * d;
      widen_row(a, a.k, src, gathered.data() + (h * nv + j) * d);
      widen_row(a, a.v, src, gathered.data() + ((a.kv_heads + h) * nv + j) * d);
    }
    // Later tiles see more keys: dynamic scheduling, biggest first, balances the triangle.
#pragma omp parallel if (items > 1 && a.t * a.len * a.heads * d >= (int64_t{1} << 18))
  {
    Scratch w(group * std::min(per_tile, a.t), std::min(per_tile, a.t), d, bf16_products);
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t h = item % a.kv_heads, tile = tiles - 1 - item / a.kv_heads;
      const int64_t i0 = tile * per_tile, i1 = std::min(a.t, i0 + per_tile);
      const float* gk = gathered.data() + h * nv * d;
      const float* gv = gathered.data() + (a.kv_heads + h) * nv * d;
      attend_tile(kernels, bf16_products, a, h, i0, i1, gk, gv, w);
    }
  }
}

void attention_column_sums(const AttentionColumnSums& a) {
  const auto fail = [](const std::string& why) { throw Error("attention column sums: " + why); };
  if (a.heads < 1 || a.kv_heads < 1 || a.heads % a.kv_heads != 0)
    fail("heads must be a positive multiple of kv_heads");
  if (a.d < 1 || a.rows < 0 || a.n_scored < 0 || a.n_scored > a.len || !a.q || !a.k || !a.out ||
      (a.rows > 0 && !a.positions))
    fail("needs d >= 1, rows >= 0, 0 <= n_scored <= len, buffers");
  if (a.kv_heads > 1 && a.head_stride < a.len * a.d) fail("head stride shorter than the keys");
  for (int64_t r = 0; r < a.rows; ++r)
    if (a.positions[r] < 0 || a.positions[r] >= a.len)
      fail("row position " + std::to_string(a.positions[r]) + " outside the " +
           std::to_string(a.len) + " keys");
  const int64_t group = a.heads / a.kv_heads, per_tile = positions_per_tile(group);
  const int64_t tiles = (a.rows + per_tile - 1) / per_tile, items = a.kv_heads * tiles;
  const int64_t width = a.kv_heads * a.n_scored;
  const CpuKernels kernels = cpu_kernels(a.kernels);
  // Each thread sums into its own row of partial, items dealt round-robin (schedule(static,
  // 1)), rows added in thread order: the same scores in every run with the same threads.
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  const bool parallel = items > 1 && a.rows * a.len * a.heads * a.d >= (int64_t{1} << 18);
  if (!parallel) threads = 1;
  std::vector<float> partial(threads * width, 0.f);
#pragma omp parallel num_threads(threads) if (parallel)
  {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    Scratch w(group * std::min(per_tile, a.rows), std::min(per_tile, a.rows), a.d, false);
#pragma omp for schedule(static, 1)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t h = item % a.kv_heads, tile = tiles - 1 - item / a.kv_heads;
      const int64_t r0 = tile * per_tile, r1 = std::min(a.rows, r0 + per_tile);
      float* col = partial.data() + tid * width + h * a.n_scored;
      column_sums(kernels, a, h, r0, r1, w, col);
    }
  }
  std::fill(a.out, a.out + width, 0.f);
  for (int t = 0; t < threads; ++t)
    for (int64_t i = 0; i < width; ++i) a.out[i] += partial[t * width + i];
}

}  // namespace dapx
