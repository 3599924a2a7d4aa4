// The decode attention kernel against a two-pass softmax in double: GQA groups of 1 to 8,
// head sizes with and without vector tails, lengths across tile and range boundaries, masked
// slots (whole masked tiles before and after visible ones, a fully masked range and a fully
// masked head), scores so far apart that exp underflows, the parallel split of each head's
// keys forced by asking for more threads than the machine has, AVX2 and portable loops, f32
// and bf16 caches.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "kernel_levels.h"
#include "model/decode_attention.h"
#include "random_qkv.h"
#include "util/bf16.h"
#include "util/error.h"

namespace dapx {
namespace {

struct Case {
  int64_t heads, kv_heads, len, d;
  bool masked;
  float spread = 2.f;  // of q, k, v: 30 puts scores hundreds apart (exp underflows to 0)
};

// bf16: the cache holds bf16 bits; the reference reads the same values widened, so the
// tolerance is the f32 cache's (the kernel widens exactly).
void check(const Case& c, int threads, CpuKernels kernels, unsigned seed, bool bf16 = false) {
  const int64_t capacity = c.len + 3;  // heads sit `capacity` rows apart, like a cache
  RandomQkv data = random_qkv(c.heads * c.d, c.kv_heads * capacity * c.d, c.spread, seed, bf16);
  std::vector<float>&q = data.q, &k = data.k, &v = data.v;
  std::vector<float> out(c.heads * c.d, 123.f);
  const std::vector<uint16_t>&k16 = data.k16, &v16 = data.v16;
  std::vector<char> mask_bytes(c.kv_heads * capacity, 0);
  if (c.masked)
    for (int64_t h = 0; h < c.kv_heads; ++h)
      for (int64_t j = 0; j < c.len; ++j)
        // head 0: the first 150 keys (whole tiles) and every 3rd; head 1: everything from
        // len/3 except the last key (masked tiles and ranges after visible ones); head 2: all
        mask_bytes[h * capacity + j] = (h == 0 && (j < 150 || j % 3 == 0)) ||
                                       (h == 1 && j >= c.len / 3 && j + 1 < c.len) || h == 2;
  const std::unique_ptr<bool[]> mask(new bool[mask_bytes.size()]);
  for (size_t i = 0; i < mask_bytes.size(); ++i) mask[i] = mask_bytes[i] != 0;

  DecodeAttention a;
  a.q = q.data();
  a.k = bf16 ? static_cast<const void*>(k16.data()) : k.data();
  a.v = bf16 ? static_cast<const void*>(v16.data()) : v.data();
  a.bf16 = bf16;
  a.head_stride = capacity * c.d;
  a.mask = c.masked ? mask.get() : nullptr;
  a.mask_stride = capacity;
  a.heads = c.heads;
  a.kv_heads = c.kv_heads;
  a.len = c.len;
  a.d = c.d;
  a.out = out.data();
  a.kernels = kernels;
  omp_set_num_threads(threads);
  attend_one_token(a);

  const int64_t group = c.heads / c.kv_heads;
  for (int64_t h = 0; h < c.heads; ++h) {
    const int64_t g = h / group;
    std::vector<double> s(c.len, -std::numeric_limits<double>::infinity());
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < c.len; ++j) {
      if (c.masked && mask_bytes[g * capacity + j]) continue;
      double dot = 0;
      for (int64_t i = 0; i < c.d; ++i)
        dot += double(q[h * c.d + i]) * k[(g * capacity + j) * c.d + i];
      s[j] = dot / std::sqrt(double(c.d));
      m = std::max(m, s[j]);
    }
    double l = 0;
    std::vector<double> want(c.d, 0.0);
    if (m > -std::numeric_limits<double>::infinity()) {
      for (int64_t j = 0; j < c.len; ++j) {
        const double p = std::exp(s[j] - m);
        l += p;
        for (int64_t i = 0; i < c.d; ++i) want[i] += p * v[(g * capacity + j) * c.d + i];
      }
      for (auto& w : want) w /= l;
    }
    for (int64_t i = 0; i < c.d; ++i)
      // Scores in the hundreds are f32 sums of 64 products near 1000: their rounding (~1e-3)
      // moves the weights by as much; what that case checks is the underflow handling.
      ASSERT_NEAR(out[h * c.d + i], want[i], (c.spread > 2 ? 1e-2 : 2e-5) * (1 + std::abs(want[i])))
          << "heads " << c.heads << " kv " << c.kv_heads << " len " << c.len << " d " << c.d
          << " threads " << threads << " " << test::level_name(kernels) << (bf16 ? " bf16" : "")
          << ": head " << h << " dim " << i;
  }
}

TEST(DecodeAttention, MatchesTwoPassSoftmax) {
  const std::vector<CpuKernels> levels =
      test::kernel_levels({CpuKernels::kAvx2, CpuKernels::kPortable});
  const int saved = omp_get_max_threads();
  unsigned seed = 1;
  for (const Case& c : std::vector<Case>{{1, 1, 1, 8, false},
                                         {2, 1, 9, 4, false},  // d below one vector
                                         {4, 4, 5, 16, false},
                                         {6, 2, 63, 64, false},
                                         {7, 1, 64, 64, false},
                                         {14, 2, 65, 64, false},
                                         {8, 1, 1000, 100, false},  // d tail: 96 + 4
                                         {16, 2, 3000, 64, false},  // group 8, many ranges
                                         {6, 3, 700, 20, true},
                                         {12, 3, 2048, 128, true},
                                         {4, 2, 600, 64, false, 30.f}})
    for (int threads : {1, 4, 7})
      for (CpuKernels kernels : levels) check(c, threads, kernels, seed++);
  omp_set_num_threads(saved);
}

TEST(DecodeAttention, ReadsBf16Cache) {
  const std::vector<CpuKernels> levels =
      test::kernel_levels({CpuKernels::kAvx2, CpuKernels::kPortable});
  const int saved = omp_get_max_threads();
  unsigned seed = 100;
  for (const Case& c : std::vector<Case>{{2, 1, 9, 4, false},
                                         {6, 2, 63, 64, false},
                                         {8, 1, 1000, 100, false},
                                         {16, 2, 3000, 64, false},
                                         {12, 3, 2048, 128, true}})
    for (int threads : {1, 4})
      for (CpuKernels kernels : levels) check(c, threads, kernels, seed++, true);
  omp_set_num_threads(saved);
}

// A NaN in one query head makes that head's output NaN (never zeros), also when the keys
// are split into ranges; the other heads are untouched.
TEST(DecodeAttention, NanQueryGivesNanNotZeros) {
  const std::vector<CpuKernels> levels =
      test::kernel_levels({CpuKernels::kAvx2, CpuKernels::kPortable});
  const int saved = omp_get_max_threads();
  const int64_t heads = 4, kv_heads = 2, len = 2000, d = 16;
  std::vector<float> q(heads * d, 0.5f), k(kv_heads * len * d, 0.25f), v(kv_heads * len * d, 1.f),
      out(heads * d);
  q[3] = std::numeric_limits<float>::quiet_NaN();  // head 0
  for (int threads : {1, 4})
    for (CpuKernels kernels : levels) {
      DecodeAttention a;
      a.q = q.data();
      a.k = k.data();
      a.v = v.data();
      a.head_stride = len * d;
      a.heads = heads;
      a.kv_heads = kv_heads;
      a.len = len;
      a.d = d;
      a.out = out.data();
      a.kernels = kernels;
      omp_set_num_threads(threads);
      attend_one_token(a);
      EXPECT_TRUE(std::isnan(out[0])) << threads << static_cast<int>(kernels);
      EXPECT_FLOAT_EQ(out[2 * d], 1.f);
    }
  omp_set_num_threads(saved);
}

TEST(DecodeAttention, RejectsInvalidShapes) {
  std::vector<float> buf(64);
  DecodeAttention a;
  a.q = buf.data();
  a.k = a.v = buf.data();
  a.out = buf.data();
  a.heads = 3;
  a.kv_heads = 2;  // 3 query heads cannot share 2 KV heads evenly
  a.len = 1;
  a.d = 4;
  EXPECT_THROW(attend_one_token(a), Error);
}

}  // namespace
}  // namespace dapx
