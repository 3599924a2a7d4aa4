// Kernels against straightforward loops: causal attention with GQA (blocked and tiled), the decode
// attention on raw buffers, KV cache compaction and byte accounting, sampling.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "engine/sampler.h"
#include "error_message.h"
#include "io/safetensors.h"
#include "kv/kv_cache.h"
#include "model/attention.h"
#include "util/error.h"

namespace dapx {
namespace {

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
      EXPECT_TRUE(at::allclose(blocked_attention(q, k, v, max_floats), want, 1e-5, 1e-5))
          << "older " << older << " max_floats " << max_floats;
    // the CPU path: the tiled prefill kernel
    EXPECT_TRUE(at::allclose(causal_attention(q, k, v), want, 1e-5, 1e-5)) << "older " << older;
  }
  // no new tokens: an empty result; a head size that differs from the keys': an error
  const at::Tensor k = at::randn({2, 5, 8}), v = at::randn({2, 5, 8});
  EXPECT_EQ(causal_attention(at::randn({6, 0, 8}), k, v).numel(), 0);
  EXPECT_THROW(causal_attention(at::randn({6, 1, 4}), k, v), Error);
}

// The decode step's attention on raw buffers, over a head-adaptive (padded) cache that grew
// through append_token, against softmax(q k^T / sqrt(d)) v over each head's live entries; in
// an f32 and a bf16 cache (the reference then reads the bf16-rounded keys and values).
TEST(Attention, DecodeOverPaddedCacheMatchesNaive) {
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    at::manual_seed(2);
    const int64_t heads = 6, kv_heads = 2, d = 8;
    const auto stored = [&](const at::Tensor& x) { return x.to(dtype).to(at::kFloat); };
    const at::Tensor k = stored(at::randn({kv_heads, 6, d})),
                     v = stored(at::randn({kv_heads, 6, d}));
    LayerKV kv(kv_heads, d, dtype);
    kv.append(k, v, 0);
    // head 0 keeps 4 entries, head 1 keeps 2 (the rest of its row is padding)
    const std::vector<std::vector<int64_t>> kept = {{0, 2, 3, 5}, {1, 4}};
    kv.compact(at::tensor(std::vector<int64_t>{0, 2, 3, 5, 1, 4, -1, -1}, at::kLong).view({2, 4}));
    const at::Tensor k_raw = at::randn({kv_heads, d}), v_raw = at::randn({kv_heads, d});
    kv.append_token(k_raw.data_ptr<float>(), v_raw.data_ptr<float>(), 6);  // grows the buffer
    // the raw append rounds as a tensor copy does
    const at::Tensor k_new = stored(k_raw), v_new = stored(v_raw);
    EXPECT_TRUE(at::equal(kv.keys().select(1, 4).to(at::kFloat), k_new));
    ASSERT_EQ(kv.length(), 5);
    const at::Tensor q = at::randn({heads, d});
    at::Tensor out = at::empty({heads, d});
    decode_attention(q.data_ptr<float>(), heads, kv.keys(), kv.values(), kv.key_mask(),
                     out.data_ptr<float>());
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t g = h / (heads / kv_heads);
      const at::Tensor idx = at::tensor(kept[g], at::kLong);
      const at::Tensor keys = at::cat({k[g].index_select(0, idx), k_new[g].unsqueeze(0)});
      const at::Tensor vals = at::cat({v[g].index_select(0, idx), v_new[g].unsqueeze(0)});
      const at::Tensor p = at::softmax(at::matmul(keys, q[h]) / std::sqrt(double(d)), 0);
      EXPECT_TRUE(at::allclose(out[h], at::matmul(p, vals), 1e-5, 1e-5))
          << "head " << h << " " << dtype;
    }
    EXPECT_EQ(kv.live_bytes(), 2 * (4 + 2 + 2) * d * static_cast<int64_t>(c10::elementSize(dtype)));
    EXPECT_THROW(
        LayerKV(1, d, at::kHalf).append_token(k_raw.data_ptr<float>(), v_raw.data_ptr<float>(), 0),
        Error);
  }
}

TEST(KVCache, CompactGathersPerHeadAndAccountsBytes) {
  LayerKV kv(2, 4, at::kFloat);
  const at::Tensor k = at::arange(2 * 6 * 4, at::kFloat).view({2, 6, 4});
  kv.append(k, -k, 10);  // positions 10..15
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
  // appending after compaction continues behind the kept entries, at its own position
  kv.append(at::ones({2, 1, 4}), at::ones({2, 1, 4}), 16);
  EXPECT_EQ(kv.length(), 4);
  EXPECT_TRUE(at::equal(kv.keys()[1][3], at::ones({4})));
  // the cache knows each entry's original position per head
  EXPECT_TRUE(
      at::equal(kv.positions(),
                at::tensor(std::vector<int64_t>{10, 12, 15, 16, 11, 13, 14, 16}).view({2, 4})));
}

TEST(KVCache, PaddedRowsAreMaskedAndCounted) {
  LayerKV kv(2, 2, at::kFloat);
  kv.append(at::randn({2, 5, 2}), at::randn({2, 5, 2}), 0);
  kv.compact(at::tensor(std::vector<int64_t>{0, 3, 4, 1, -1, -1}, at::kLong).view({2, 3}), 1);
  EXPECT_EQ(kv.live_bytes(), 2 * 4 * 2 * 4);  // 3 + 1 entries
  kv.append(at::ones({2, 1, 2}), at::ones({2, 1, 2}), 5);
  // empty slots have position -1, and the mask is exactly where the positions are negative
  EXPECT_TRUE(at::equal(kv.positions(),
                        at::tensor(std::vector<int64_t>{0, 3, 4, 5, 1, -1, -1, 5}).view({2, 4})));
  EXPECT_TRUE(at::equal(kv.key_mask(), kv.positions() < 0));
  const at::Tensor mask = kv.key_mask();
  EXPECT_EQ(mask.sizes(), (at::IntArrayRef{2, 4}));
  EXPECT_FALSE(mask[0].any().item<bool>());
  EXPECT_TRUE(at::equal(mask[1], at::tensor(std::vector<uint8_t>{0, 1, 1, 0}).to(at::kBool)));
  // attention of a query over head 1 ignores the padded slots
  const at::Tensor q = at::randn({2, 1, 2});
  const at::Tensor out = causal_attention(q, kv.keys(), kv.values(), mask);
  const at::Tensor k1 = kv.keys()[1].index_select(0, at::tensor(std::vector<int64_t>{0, 3}));
  const at::Tensor v1 = kv.values()[1].index_select(0, at::tensor(std::vector<int64_t>{0, 3}));
  const at::Tensor want = at::matmul(at::softmax(at::matmul(k1, q[1][0]) / std::sqrt(2.0), 0), v1);
  EXPECT_TRUE(at::allclose(out[1][0], want, 1e-5, 1e-6));
}

TEST(KVCache, CompactRejectsBadIndices) {
  LayerKV kv(2, 4, at::kFloat);
  kv.append(at::zeros({2, 3, 4}), at::zeros({2, 3, 4}), 0);
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
  // NaN and infinity are rejected with a message naming the parameter (NaN fails every <)
  const auto message = [](SamplingParams p) { return test::error_of([&] { Sampler s(p); }); };
  EXPECT_EQ(
      message(SamplingParams{std::nanf(""), 0, 1.f, 0}).rfind("temperature must be a finite", 0),
      0u);
  EXPECT_EQ(message(SamplingParams{INFINITY, 0, 1.f, 0}).rfind("temperature must be a finite", 0),
            0u);
  EXPECT_EQ(message(SamplingParams{1.f, 0, std::nanf(""), 0}).rfind("top_p must be in (0, 1]", 0),
            0u);
}

// Frequency of each token over n draws of one seeded sampler on fixed logits.
std::vector<double> frequencies(const at::Tensor& logits, const SamplingParams& p, int n) {
  Sampler s(p);
  std::vector<double> f(logits.size(0), 0.0);
  for (int i = 0; i < n; ++i) f.at(s.next(logits)) += 1.0 / n;
  return f;
}

TEST(Sampler, TopPKeepsTheSmallestMostLikelySetReachingP) {
  // Probabilities 0.05, 0.30, 0.50, 0.15: by probability the order is tokens 2, 1, 3, 0, with
  // cumulative mass 0.50, 0.80, 0.95, 1.00. The kept tokens are sampled renormalised.
  const std::vector<double> probs = {0.05, 0.30, 0.50, 0.15};
  std::vector<float> lg;
  for (double q : probs) lg.push_back(static_cast<float>(std::log(q)));
  const at::Tensor logits = at::tensor(lg, at::kFloat);
  struct Case {
    float top_p;
    int top_k;
    std::vector<int> kept;
  };
  const std::vector<Case> cases = {{0.3f, 0, {2}},           {0.6f, 0, {2, 1}},
                                   {0.79f, 0, {2, 1}},       {0.9f, 0, {2, 1, 3}},
                                   {0.99f, 0, {2, 1, 3, 0}}, {0.99f, 2, {2, 1}}};
  for (const Case& c : cases) {
    const std::vector<double> f =
        frequencies(logits, SamplingParams{1.f, c.top_k, c.top_p, 11}, 4000);
    double kept_mass = 0;
    for (int t : c.kept) kept_mass += probs[t];
    for (int t = 0; t < 4; ++t) {
      const bool kept = std::find(c.kept.begin(), c.kept.end(), t) != c.kept.end();
      if (kept)
        EXPECT_NEAR(f[t], probs[t] / kept_mass, 0.03)
            << "top_p " << c.top_p << " top_k " << c.top_k << " token " << t;
      else
        EXPECT_EQ(f[t], 0.0) << "top_p " << c.top_p << " top_k " << c.top_k << " token " << t;
    }
  }
}

TEST(Sampler, TemperatureSamplesSoftmaxOfScaledLogits) {
  // Empirical frequencies over seeded draws against softmax(logits / T); the three
  // distributions differ by far more than the tolerance (about 4 standard deviations).
  const std::vector<float> lg = {0.f, 1.f, 2.f, 0.5f};
  const at::Tensor logits = at::tensor(lg, at::kFloat);
  for (float temperature : {0.5f, 1.f, 2.f}) {
    const std::vector<double> f =
        frequencies(logits, SamplingParams{temperature, 0, 1.f, 3}, 10000);
    double z = 0;
    for (float x : lg) z += std::exp(x / temperature);
    for (size_t t = 0; t < lg.size(); ++t)
      EXPECT_NEAR(f[t], std::exp(lg[t] / temperature) / z, 0.02)
          << "temperature " << temperature << " token " << t;
  }
}

}  // namespace
}  // namespace dapx
