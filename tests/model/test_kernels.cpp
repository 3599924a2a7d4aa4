// Kernels against straightforward loops: GEMV (bf16/f32, odd sizes, several rows), blocked
// causal attention with GQA, KV cache compaction and byte accounting, sampling.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/sampler.h"
#include "io/safetensors.h"
#include "kv/kv_cache.h"
#include "model/attention.h"
#include "model/gemv.h"
#include "util/error.h"

namespace dapx {
namespace {

TEST(Gemv, MatchesNaiveLoopsForBf16AndF32) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  for (int64_t n : {1, 5, 33}) {
    for (int64_t k : {1, 7, 8, 61, 256}) {
      for (int rows : {1, 3, kMaxGemvRows}) {
        std::vector<float> w(n * k), x(rows * k), y32(rows * n), y16(rows * n);
        std::vector<uint16_t> wb(n * k);
        for (auto& v : w) v = nd(rng);
        for (auto& v : x) v = nd(rng);
        for (size_t i = 0; i < w.size(); ++i) wb[i] = float_to_bf16(w[i]);
        gemv_f32(w.data(), n, k, x.data(), rows, y32.data());
        gemv_bf16(wb.data(), n, k, x.data(), rows, y16.data());
        for (int r = 0; r < rows; ++r)
          for (int64_t i = 0; i < n; ++i) {
            double e32 = 0, e16 = 0;
            for (int64_t j = 0; j < k; ++j) {
              e32 += double(w[i * k + j]) * x[r * k + j];
              e16 += double(bf16_to_float(wb[i * k + j])) * x[r * k + j];
            }
            EXPECT_NEAR(y32[r * n + i], e32, 1e-4 * (1 + std::sqrt(double(k))));
            EXPECT_NEAR(y16[r * n + i], e16, 1e-4 * (1 + std::sqrt(double(k))));
          }
      }
    }
  }
}

// Naive attention: query i of t new tokens sees keys [0, older + i].
at::Tensor naive_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const int64_t heads = q.size(0), t = q.size(1), d = q.size(2), kvh = k.size(0), len = k.size(1);
  at::Tensor out = at::zeros_like(q);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < t; ++i) {
      const int64_t vis = len - t + i + 1;
      const int64_t g = h / (heads / kvh);
      at::Tensor s = at::matmul(k[g].narrow(0, 0, vis), q[h][i]) / std::sqrt(double(d));
      out[h][i] = at::matmul(at::softmax(s, 0), v[g].narrow(0, 0, vis));
    }
  return out;
}

TEST(Attention, BlockedCausalGqaMatchesNaive) {
  at::manual_seed(1);
  for (int64_t older : {0, 5}) {
    const at::Tensor q = at::randn({6, 7, 8}), k = at::randn({2, older + 7, 8}),
                     v = at::randn({2, older + 7, 8});
    const at::Tensor want = naive_attention(q, k, v);
    for (int64_t max_floats : {int64_t{1} << 20, int64_t{1}, int64_t{100}})  // blocks of 1.. all
      EXPECT_TRUE(at::allclose(causal_attention(q, k, v, max_floats), want, 1e-5, 1e-5))
          << "older " << older << " max_floats " << max_floats;
  }
}

TEST(KVCache, CompactGathersPerHeadAndAccountsBytes) {
  LayerKV kv(2, 4, at::kFloat);
  const at::Tensor k = at::arange(2 * 6 * 4, at::kFloat).view({2, 6, 4});
  kv.append(k, -k);
  EXPECT_EQ(kv.length(), 6);
  EXPECT_EQ(kv.live_bytes(), 2 * 2 * 6 * 4 * 4);
  kv.compact(at::tensor(std::vector<int64_t>{0, 2, 5, 1, 3, 4}, at::kLong).view({2, 3}), 2);
  EXPECT_EQ(kv.length(), 3);
  EXPECT_EQ(kv.capacity(), 5);
  EXPECT_EQ(kv.allocated_bytes(), 2 * 2 * 5 * 4 * 4);
  EXPECT_TRUE(
      at::equal(kv.keys()[0], k[0].index_select(0, at::tensor(std::vector<int64_t>{0, 2, 5}))));
  EXPECT_TRUE(
      at::equal(kv.values()[1], -k[1].index_select(0, at::tensor(std::vector<int64_t>{1, 3, 4}))));
  // appending after compaction continues behind the kept entries
  kv.append(at::ones({2, 1, 4}), at::ones({2, 1, 4}));
  EXPECT_EQ(kv.length(), 4);
  EXPECT_TRUE(at::equal(kv.keys()[1][3], at::ones({4})));
}

TEST(KVCache, PaddedRowsAreMaskedAndCounted) {
  LayerKV kv(2, 2, at::kFloat);
  kv.append(at::randn({2, 5, 2}), at::randn({2, 5, 2}));
  kv.compact(at::tensor(std::vector<int64_t>{0, 3, 4, 1, -1, -1}, at::kLong).view({2, 3}), 1);
  EXPECT_EQ(kv.live_bytes(), 2 * 4 * 2 * 4);  // 3 + 1 entries
  kv.append(at::ones({2, 1, 2}), at::ones({2, 1, 2}));
  const at::Tensor mask = kv.key_mask();
  EXPECT_EQ(mask.sizes(), (at::IntArrayRef{2, 4}));
  EXPECT_FALSE(mask[0].any().item<bool>());
  EXPECT_TRUE(at::equal(mask[1], at::tensor(std::vector<uint8_t>{0, 1, 1, 0}).to(at::kBool)));
  // attention of a query over head 1 ignores the padded slots
  const at::Tensor q = at::randn({2, 1, 2});
  const at::Tensor out = causal_attention(q, kv.keys(), kv.values(), 1 << 20, mask);
  const at::Tensor k1 = kv.keys()[1].index_select(0, at::tensor(std::vector<int64_t>{0, 3}));
  const at::Tensor v1 = kv.values()[1].index_select(0, at::tensor(std::vector<int64_t>{0, 3}));
  const at::Tensor want = at::matmul(at::softmax(at::matmul(k1, q[1][0]) / std::sqrt(2.0), 0), v1);
  EXPECT_TRUE(at::allclose(out[1][0], want, 1e-5, 1e-6));
}

TEST(KVCache, CompactRejectsBadIndices) {
  LayerKV kv(2, 4, at::kFloat);
  kv.append(at::zeros({2, 3, 4}), at::zeros({2, 3, 4}));
  EXPECT_THROW(kv.compact(at::tensor(std::vector<int64_t>{0, 3}, at::kLong).view({2, 1})), Error);
  EXPECT_THROW(kv.compact(at::tensor(std::vector<int64_t>{0, -2}, at::kLong).view({2, 1})), Error);
  EXPECT_THROW(kv.compact(at::zeros({3, 1}, at::kLong)), Error);
  EXPECT_THROW(kv.compact(at::zeros({2, 4}, at::kLong)), Error);
}

TEST(Sampler, GreedyTopKTopPAndSeeds) {
  const at::Tensor logits = at::tensor(std::vector<float>{0.f, 3.f, 1.f, 2.9f}, at::kFloat);
  EXPECT_EQ(Sampler(SamplingParams{}).next(logits), 1);
  SamplingParams top1{1.0f, 1, 1.f, 5};
  EXPECT_EQ(Sampler(top1).next(logits), 1);  // top-k 1 is greedy
  SamplingParams top2{1.0f, 2, 1.f, 5};
  Sampler s2(top2);
  for (int i = 0; i < 50; ++i) {
    const int t = s2.next(logits);
    EXPECT_TRUE(t == 1 || t == 3);
  }
  SamplingParams a{1.0f, 0, 0.9f, 42}, b{1.0f, 0, 0.9f, 42};
  Sampler sa(a), sb(b);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(sa.next(logits), sb.next(logits));
  EXPECT_THROW(Sampler(SamplingParams{-1.f, 0, 1.f, 0}), Error);
  EXPECT_THROW(Sampler(SamplingParams{1.f, 0, 0.f, 0}), Error);
}

}  // namespace
}  // namespace dapx
