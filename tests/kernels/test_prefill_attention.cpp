// The prefill attention kernel against a two-pass causal softmax in double: GQA groups of 1 to
// 8, head sizes with and without vector tails, chunks with and without older keys, several
// query tiles and key tiles (and partial ones), masked slots (a query whose every visible key
// is masked gets zeros), scores so far apart that exp underflows, heads padded apart like a
// cache, 1 to 7 threads, AVX-512, AVX2 and portable loops (where the CPU has them), f32 and
// bf16 caches.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "kernel_levels.h"
#include "model/prefill_attention.h"
#include "random_qkv.h"
#include "util/bf16.h"
#include "util/error.h"

namespace dapx {
namespace {

// Every kernel level the CPU has (kernel_levels.h: the others are left out, and said so).
const char* kernel_name(CpuKernels k) {
  switch (cpu_kernels(k)) {
    case CpuKernels::kAvx512:
      return " avx512";
    case CpuKernels::kAvx2:
      return " avx2";
    default:
      return " portable";
  }
}

struct Case {
  int64_t heads, kv_heads, t, older, d;
  bool masked;
  float spread = 2.f;  // of q, k, v: 30 puts scores hundreds apart (exp underflows to 0)
  // Sparse when band > 0: n_vertical random vertical keys per KV head; `later` keys follow
  // the queries' own (the sparse prefill appends a whole layer's keys first).
  int64_t band = 0, n_vertical = 0, later = 0;
};

// bf16: the cache holds bf16 bits; the reference reads the same values widened (the kernel
// widens exactly), so the tolerance is the f32 cache's.
// bf16_products: the kernel multiplies bf16-rounded queries (scaled by 1/sqrt(d) in f32 first),
// keys and weights; the reference rounds queries, keys and values the same way, so what remains
// is each weight's rounding (relative 2^-8, 8 significant bits): dim x moves by at most 2^-8 of
// sum_j p_j |v_jx| / sum_j p_j. The f32 products on the same data must differ somewhere (the
// pair products ran) unless there is a single key.
void check(const Case& c, int threads, CpuKernels kernels, unsigned seed, bool bf16 = false,
           bool bf16_products = false) {
  const int64_t len = c.older + c.t + c.later, capacity = len + 5;  // heads `capacity` apart
  RandomQkv data =
      random_qkv(c.heads * c.t * c.d, c.kv_heads * capacity * c.d, c.spread, seed, bf16);
  std::vector<float>&q = data.q, &k = data.k, &v = data.v;
  std::vector<float> out(c.heads * c.t * c.d, 123.f);
  const std::vector<uint16_t>&k16 = data.k16, &v16 = data.v16;
  std::vector<char> hidden(c.kv_heads * capacity, 0);
  if (c.masked)
    for (int64_t h = 0; h < c.kv_heads; ++h)
      for (int64_t j = 0; j < len; ++j)
        // head 0: the first 70 keys (a whole key tile) and every 3rd; head 1: keys 1 to
        // len/2 (masked tiles between visible keys); head 2: every key but the last (all
        // queries but the last see nothing and get zeros)
        hidden[h * capacity + j] = (h == 0 && (j < 70 || j % 3 == 0)) ||
                                   (h == 1 && j >= 1 && j < len / 2) || (h == 2 && j + 1 < len);
  const std::unique_ptr<bool[]> mask(new bool[hidden.size()]);
  for (size_t i = 0; i < hidden.size(); ++i) mask[i] = hidden[i] != 0;
  std::vector<int64_t> vertical;  // [kv_heads, n_vertical], ascending per head
  std::mt19937 rng(seed + 1);
  for (int64_t h = 0; h < c.kv_heads; ++h) {
    std::vector<int64_t> all(len);
    for (int64_t j = 0; j < len; ++j) all[j] = j;
    std::shuffle(all.begin(), all.end(), rng);
    all.resize(c.n_vertical);
    std::sort(all.begin(), all.end());
    vertical.insert(vertical.end(), all.begin(), all.end());
  }

  PrefillAttention a;
  a.q = q.data();
  a.k = bf16 ? static_cast<const void*>(k16.data()) : k.data();
  a.v = bf16 ? static_cast<const void*>(v16.data()) : v.data();
  a.bf16 = bf16;
  a.head_stride = capacity * c.d;
  a.mask = c.masked ? mask.get() : nullptr;
  a.mask_stride = capacity;
  a.heads = c.heads;
  a.kv_heads = c.kv_heads;
  a.t = c.t;
  a.len = len;
  a.d = c.d;
  a.pos0 = c.older;
  a.band = c.band;
  a.vertical = vertical.data();
  a.n_vertical = a.vertical_stride = c.n_vertical;
  a.out = out.data();
  a.kernels = kernels;
  a.bf16_products = bf16_products;
  omp_set_num_threads(threads);
  attend_prefill(a);
  if (bf16_products) {
    std::vector<float> f32_out(out.size());
    PrefillAttention f32 = a;
    f32.bf16_products = false;
    f32.out = f32_out.data();
    attend_prefill(f32);
    if (len > 1) {  // (one key: its weight is exactly 1 either way)
      ASSERT_NE(out, f32_out) << "the bf16 pair products did not run";
    }
    // the reference's operands as the kernel rounds them
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.d)));
    for (auto& x : q) x = bf16_to_f32(f32_to_bf16(x * scale));
    for (auto& x : k) x = bf16_to_f32(f32_to_bf16(x));
    for (auto& x : v) x = bf16_to_f32(f32_to_bf16(x));
  }

  const int64_t group = c.heads / c.kv_heads;
  constexpr double kNegInf = -std::numeric_limits<double>::infinity();
  for (int64_t h = 0; h < c.heads; ++h)
    for (int64_t i = 0; i < c.t; ++i) {
      const int64_t g = h / group, seen = c.older + i + 1;
      const float* qi = q.data() + (h * c.t + i) * c.d;
      std::vector<double> s(seen, kNegInf), want(c.d, 0.0);
      double m = kNegInf;
      for (int64_t j = 0; j < seen; ++j) {
        if (c.masked && hidden[g * capacity + j]) continue;
        if (c.band > 0 && j <= c.older + i - c.band &&  // older than the band: vertical only
            !std::binary_search(vertical.begin() + g * c.n_vertical,
                                vertical.begin() + (g + 1) * c.n_vertical, j))
          continue;
        double dot = 0;
        for (int64_t x = 0; x < c.d; ++x) dot += double(qi[x]) * k[(g * capacity + j) * c.d + x];
        s[j] = bf16_products ? dot : dot / std::sqrt(double(c.d));
        m = std::max(m, s[j]);
      }
      std::vector<double> abs_avg(c.d, 0.0);  // sum_j p_j |v_jx| / sum_j p_j
      if (m > kNegInf) {
        double l = 0;
        for (int64_t j = 0; j < seen; ++j) {
          const double p = std::exp(s[j] - m);
          l += p;
          for (int64_t x = 0; x < c.d; ++x) {
            want[x] += p * v[(g * capacity + j) * c.d + x];
            abs_avg[x] += p * std::abs(v[(g * capacity + j) * c.d + x]);
          }
        }
        for (auto& w : want) w /= l;
        for (auto& w : abs_avg) w /= l;
      }
      // Scores in the hundreds are f32 sums of 64 products near 1000: their rounding (~1e-3)
      // moves the weights by as much; what that case checks is the underflow handling.
      for (int64_t x = 0; x < c.d; ++x)
        ASSERT_NEAR(out[(h * c.t + i) * c.d + x], want[x],
                    (c.spread > 2 ? 1e-2 : 2e-5) * (1 + std::abs(want[x])) +
                        (bf16_products ? std::ldexp(abs_avg[x], -8) : 0.0))
            << "heads " << c.heads << " kv " << c.kv_heads << " t " << c.t << " older " << c.older
            << " d " << c.d << " threads " << threads << kernel_name(kernels)
            << (bf16 ? " bf16" : "") << (bf16_products ? " bf16 products" : "") << ": head " << h
            << " query " << i << " dim " << x;
    }
}

TEST(PrefillAttention, MatchesTwoPassCausalSoftmax) {
  const std::vector<CpuKernels> levels =
      test::kernel_levels({CpuKernels::kAvx512, CpuKernels::kAvx2, CpuKernels::kPortable});
  const int saved = omp_get_max_threads();
  unsigned seed = 1;
  for (const Case& c : std::vector<Case>{{1, 1, 1, 0, 8, false},
                                         {2, 1, 9, 0, 4, false},  // d below one vector
                                         {4, 4, 5, 3, 16, false},
                                         {6, 2, 63, 0, 64, false},
                                         {7, 1, 20, 64, 64, false},  // query tiles of 18
                                         {14, 2, 150, 100, 64, false},
                                         {8, 1, 40, 200, 100, false},  // d tail: 96 + 4
                                         {16, 2, 130, 0, 64, false},   // group 8: tiles of 16
                                         {1, 1, 300, 0, 32, false},    // group 1: tiles of 128
                                         {6, 3, 90, 40, 20, true},
                                         {12, 3, 70, 0, 128, true},
                                         {4, 2, 100, 30, 64, false, 30.f}})
    for (int threads : {1, 3, 7}) {  // the same data through every kernel
      for (CpuKernels kernels : levels) check(c, threads, kernels, seed);
      ++seed;
    }
  omp_set_num_threads(saved);
}

TEST(PrefillAttention, ReadsBf16Cache) {
  const std::vector<CpuKernels> levels =
      test::kernel_levels({CpuKernels::kAvx512, CpuKernels::kAvx2, CpuKernels::kPortable});
  const int saved = omp_get_max_threads();
  unsigned seed = 50;
  //                                      heads kv t older d  mask spread band vert later
  for (const Case& c : std::vector<Case>{{2, 1, 9, 0, 4, false},
                                         {14, 2, 150, 100, 64, false},
                                         {8, 1, 40, 200, 100, false},
                                         {6, 3, 90, 40, 20, true},
                                         {6, 2, 90, 0, 16, false, 2.f, 5, 12, 30},
                                         {14, 2, 130, 200, 64, false, 2.f, 70, 100, 50}})
    for (int threads : {1, 3}) {
      for (CpuKernels kernels : levels) check(c, threads, kernels, seed, true);
      ++seed;
    }
  omp_set_num_threads(saved);
}

// Pair products on AVX512-BF16 (what --gemm bf16 runs): dense and sparse, f32 and bf16 caches,
// masks, odd key counts (a pair's second key past the tile), d of 16 to 128.
TEST(PrefillAttention, Bf16PairProductsMatchRoundedSoftmax) {
  if (!cpu_has_avx512_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  const int saved = omp_get_max_threads();
  unsigned seed = 300;
  //                                      heads kv t older d  mask spread band vert later
  for (const Case& c : std::vector<Case>{{1, 1, 1, 0, 16, false},
                                         {7, 1, 20, 64, 64, false},
                                         {14, 2, 151, 100, 64, false},
                                         {12, 3, 70, 0, 128, true},
                                         {6, 3, 91, 41, 32, true},
                                         {4, 2, 100, 30, 64, false, 30.f},
                                         {6, 2, 90, 0, 16, false, 2.f, 5, 13, 30},
                                         {14, 2, 130, 201, 64, false, 2.f, 70, 101, 50}})
    for (int threads : {1, 3}) {
      for (bool bf16_cache : {false, true})
        check(c, threads, CpuKernels::kBest, seed, bf16_cache, true);
      ++seed;
    }
  omp_set_num_threads(saved);
}

// SpecKV's sparse prefill: the band (p - band, p] plus vertical keys <= p - band.
TEST(PrefillAttention, SparseMatchesBandPlusVerticalSoftmax) {
  const std::vector<CpuKernels> levels =
      test::kernel_levels({CpuKernels::kAvx512, CpuKernels::kAvx2, CpuKernels::kPortable});
  const int saved = omp_get_max_threads();
  unsigned seed = 100;
  //                                      heads kv t older d  mask spread band vert later
  for (const Case& c : std::vector<Case>{{4, 2, 40, 0, 8, false, 2.f, 1, 5, 0},
                                         {6, 2, 90, 0, 16, false, 2.f, 5, 12, 30},
                                         {14, 2, 130, 200, 64, false, 2.f, 70, 100, 50},
                                         {8, 8, 20, 150, 32, false, 2.f, 300, 64, 0},  // band > p
                                         {7, 1, 60, 100, 64, false, 2.f, 16, 0, 10},   // band only
                                         {2, 1, 100, 0, 64, false, 2.f, 8, 100, 0}})   // all keys
    for (int threads : {1, 3}) {  // the same data through every kernel
      for (CpuKernels kernels : levels) check(c, threads, kernels, seed);
      ++seed;
    }
  omp_set_num_threads(saved);
}

// H2O's scores: per KV head, the group's softmax probabilities summed over rows, per key,
// against double loops; and the same bits in a second run with the same threads.
TEST(PrefillAttention, ColumnSumsMatchSummedSoftmax) {
  const std::vector<CpuKernels> levels =
      test::kernel_levels({CpuKernels::kAvx512, CpuKernels::kAvx2, CpuKernels::kPortable});
  const int saved = omp_get_max_threads();
  struct Sums {
    int64_t heads, kv_heads, len, d, n_scored, stride;  // rows: positions 0, stride, 2 stride...
  };
  unsigned seed = 200;
  for (const Sums& c : std::vector<Sums>{{2, 1, 10, 8, 10, 1},
                                         {6, 2, 150, 16, 120, 1},
                                         {14, 2, 300, 64, 268, 1},
                                         {8, 4, 200, 20, 200, 3},
                                         {7, 1, 90, 64, 40, 2}})
    for (int threads : {1, 3})
      for (CpuKernels kernels : levels)
        for (bool bf16 : {false, true}) {
          std::mt19937 rng(seed++);
          std::normal_distribution<float> nd(0.f, 2.f);
          std::vector<int64_t> positions;
          for (int64_t p = 0; p < c.len; p += c.stride) positions.push_back(p);
          const int64_t rows = positions.size(), capacity = c.len + 2;
          std::vector<float> q(c.heads * rows * c.d), k(c.kv_heads * capacity * c.d),
              out(c.kv_heads * c.n_scored, 123.f), again(out.size());
          for (auto& x : q) x = nd(rng);
          for (auto& x : k) x = nd(rng);
          std::vector<uint16_t> k16(k.size());
          if (bf16)  // the reference reads the bf16 keys widened
            for (size_t i = 0; i < k.size(); ++i) k[i] = bf16_to_f32(k16[i] = f32_to_bf16(k[i]));
          AttentionColumnSums a;
          a.q = q.data();
          a.k = bf16 ? static_cast<const void*>(k16.data()) : k.data();
          a.bf16 = bf16;
          a.head_stride = capacity * c.d;
          a.positions = positions.data();
          a.heads = c.heads;
          a.kv_heads = c.kv_heads;
          a.rows = rows;
          a.len = c.len;
          a.d = c.d;
          a.n_scored = c.n_scored;
          a.out = out.data();
          a.kernels = kernels;
          omp_set_num_threads(threads);
          attention_column_sums(a);
          a.out = again.data();
          attention_column_sums(a);
          EXPECT_EQ(out, again) << "not the same bits twice";
          const int64_t group = c.heads / c.kv_heads;
          std::vector<double> want(c.kv_heads * c.n_scored, 0.0);
          for (int64_t h = 0; h < c.heads; ++h)
            for (int64_t r = 0; r < rows; ++r) {
              const int64_t g = h / group, seen = positions[r] + 1;
              std::vector<double> s(seen);
              double m = -std::numeric_limits<double>::infinity(), l = 0;
              for (int64_t j = 0; j < seen; ++j) {
                double dot = 0;
                for (int64_t x = 0; x < c.d; ++x)
                  dot += double(q[(h * rows + r) * c.d + x]) * k[(g * capacity + j) * c.d + x];
                s[j] = dot / std::sqrt(double(c.d));
                m = std::max(m, s[j]);
              }
              for (int64_t j = 0; j < seen; ++j) l += std::exp(s[j] - m);
              for (int64_t j = 0; j < std::min(seen, c.n_scored); ++j)
                want[g * c.n_scored + j] += std::exp(s[j] - m) / l;
            }
          for (size_t i = 0; i < want.size(); ++i)
            ASSERT_NEAR(out[i], want[i], 1e-5 * (1 + want[i]))
                << "heads " << c.heads << " kv " << c.kv_heads << " len " << c.len << " d " << c.d
                << " threads " << threads << kernel_name(kernels) << (bf16 ? " bf16" : "")
                << ": entry " << i;
        }
  omp_set_num_threads(saved);
}

// A NaN in one query makes that query's output NaN (never zeros), in the attention and in
// H2O's sums; the other heads are untouched.
TEST(PrefillAttention, NanQueryGivesNanNotZeros) {
  const std::vector<CpuKernels> levels =
      test::kernel_levels({CpuKernels::kAvx512, CpuKernels::kAvx2, CpuKernels::kPortable});
  const int64_t heads = 4, kv_heads = 2, t = 70, d = 16;
  std::vector<float> q(heads * t * d, 0.5f), k(kv_heads * t * d, 0.25f), v(kv_heads * t * d, 1.f),
      out(heads * t * d), sums(kv_heads * t);
  q[(0 * t + 40) * d + 3] = std::numeric_limits<float>::quiet_NaN();  // head 0, query 40
  for (CpuKernels kernels : levels) {
    PrefillAttention a;
    a.q = q.data();
    a.k = k.data();
    a.v = v.data();
    a.head_stride = t * d;
    a.heads = heads;
    a.kv_heads = kv_heads;
    a.t = a.len = t;
    a.d = d;
    a.out = out.data();
    a.kernels = kernels;
    attend_prefill(a);
    EXPECT_TRUE(std::isnan(out[(0 * t + 40) * d])) << kernel_name(kernels);
    EXPECT_FLOAT_EQ(out[(0 * t + 39) * d], 1.f);
    EXPECT_FLOAT_EQ(out[(2 * t + 40) * d], 1.f);
    std::vector<int64_t> positions(t);
    for (int64_t i = 0; i < t; ++i) positions[i] = i;
    AttentionColumnSums c;
    c.q = q.data();
    c.k = k.data();
    c.head_stride = t * d;
    c.positions = positions.data();
    c.heads = heads;
    c.kv_heads = kv_heads;
    c.rows = c.len = c.n_scored = t;
    c.d = d;
    c.out = sums.data();
    c.kernels = kernels;
    attention_column_sums(c);
    EXPECT_TRUE(std::isnan(sums[0])) << kernel_name(kernels);  // KV head 0: row 40 sees key 0
    EXPECT_FALSE(std::isnan(sums[t])) << kernel_name(kernels);
  }
}

TEST(PrefillAttention, RejectsInvalidShapes) {
  std::vector<float> buf(64);
  PrefillAttention a;
  a.q = buf.data();
  a.k = a.v = buf.data();
  a.out = buf.data();
  a.heads = 3;
  a.kv_heads = 2;  // 3 query heads cannot share 2 KV heads evenly
  a.t = a.len = 1;
  a.d = 4;
  EXPECT_THROW(attend_prefill(a), Error);
  a.kv_heads = 1;
  a.t = 2;  // more queries than keys
  EXPECT_THROW(attend_prefill(a), Error);
  a.t = 1;
  a.band = 2;  // sparse with vertical positions out of order
  const int64_t unordered[] = {0, 0};
  a.vertical = unordered;
  a.n_vertical = a.vertical_stride = 2;
  a.len = 4;
  EXPECT_THROW(attend_prefill(a), Error);
  const int64_t ordered[] = {0, 1};
  a.vertical = ordered;
  const bool mask[4] = {};
  a.mask = mask;  // sparse prefill takes no mask
  EXPECT_THROW(attend_prefill(a), Error);
}

}  // namespace
}  // namespace dapx
