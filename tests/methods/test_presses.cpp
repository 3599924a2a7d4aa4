// Presses on fixed random layers against a straightforward computation written here with
// plain loops: softmax rows, max/mean over a KV group's heads x rows, pooling, top-k, window.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "methods/adakv_press.h"
#include "methods/h2o_press.h"
#include "methods/knorm_press.h"
#include "methods/observation_press.h"
#include "methods/streaming_press.h"
#include "methods/tova_press.h"

namespace dapx {
namespace {

struct Layer {
  at::Tensor keys, obs;  // [kv, n, d], [heads, rows, d]
  CompressionPlan plan;
};

Layer random_layer(int64_t heads, int64_t kv, int64_t n, int64_t d, int64_t window, uint64_t seed) {
  at::manual_seed(seed);
  Layer L;
  L.keys = at::randn({kv, n, d});
  L.obs = at::randn({heads, window, d}) * 2;
  L.plan.prompt_len = n;
  for (int64_t i = n - window; i < n; ++i) L.plan.obs_positions.push_back(i);
  L.plan.tokens.assign(n, 0);
  L.plan.window_begin = L.plan.scored_end = n - window;
  L.plan.window_end = n;
  return L;
}

// Independent SnapKV selection for one KV head.
std::vector<int64_t> naive_snapkv(const Layer& L, int64_t kv_head, int64_t budget, int64_t kernel,
                                  bool max_reduce, bool max_pool) {
  const int64_t heads = L.obs.size(0), kv = L.keys.size(0), n = L.keys.size(1), d = L.keys.size(2);
  const int64_t rows = L.obs.size(1), group = heads / kv, scored = L.plan.scored_end;
  const auto K = L.keys.accessor<float, 3>();
  const auto Q = L.obs.accessor<float, 3>();
  std::vector<double> red(scored, max_reduce ? -1e30 : 0.0);
  for (int64_t h = kv_head * group; h < (kv_head + 1) * group; ++h)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t qpos = L.plan.obs_positions[r];
      std::vector<double> s(n, -std::numeric_limits<double>::infinity());
      double mx = -1e30;
      for (int64_t j = 0; j <= qpos; ++j) {
        double dot = 0;
        for (int64_t c = 0; c < d; ++c) dot += double(Q[h][r][c]) * K[kv_head][j][c];
        s[j] = dot / std::sqrt(double(d));
        mx = std::max(mx, s[j]);
      }
      double z = 0;
      for (int64_t j = 0; j <= qpos; ++j) z += std::exp(s[j] - mx);
      for (int64_t j = 0; j < scored; ++j) {
        const double p = std::exp(s[j] - mx) / z;
        red[j] = max_reduce ? std::max(red[j], p) : red[j] + p / double(group * rows);
      }
    }
  std::vector<double> pooled(scored);
  for (int64_t j = 0; j < scored; ++j) {
    double acc = max_pool ? -1e30 : 0.0;
    for (int64_t o = -kernel / 2; o <= kernel / 2; ++o) {
      const int64_t t = j + o;
      if (t < 0 || t >= scored) continue;  // max: -inf pad; avg: zero pad, divide by kernel
      acc = max_pool ? std::max(acc, red[t]) : acc + red[t] / double(kernel);
    }
    pooled[j] = acc;
  }
  std::vector<int64_t> order(scored);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return pooled[a] > pooled[b]; });
  const int64_t window = L.plan.window_end - L.plan.window_begin;
  std::vector<int64_t> keep(order.begin(), order.begin() + (budget - window));
  for (int64_t j = L.plan.window_begin; j < L.plan.window_end; ++j) keep.push_back(j);
  std::sort(keep.begin(), keep.end());
  return keep;
}

std::vector<int64_t> row(const at::Tensor& t, int64_t h) {
  const at::Tensor r = t[h].contiguous();
  return std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
}

struct Variant {
  bool max_reduce, max_pool;
  int64_t kernel;
};

TEST(ObservationPress, SelectionEqualsNaiveComputationForEveryVariant) {
  for (const Variant v : {Variant{true, true, 7}, Variant{false, false, 7}, Variant{true, false, 3},
                          Variant{false, true, 1}}) {
    const Layer L = random_layer(/*heads=*/6, /*kv=*/2, /*n=*/64, /*d=*/8, /*window=*/8, 5);
    ScoreParams p;
    p.window = 8;
    p.kernel = v.kernel;
    p.reduce = v.max_reduce ? Reduce::Max : Reduce::Mean;
    p.pool = v.max_pool ? Pool::Max : Pool::Avg;
    ObservationPress press(p, {20});
    const at::Tensor keep = press.select(LayerContext{0, L.keys, L.obs, L.plan});
    ASSERT_EQ(keep.sizes(), (at::IntArrayRef{2, 20}));
    for (int64_t h = 0; h < 2; ++h)
      EXPECT_EQ(row(keep, h), naive_snapkv(L, h, 20, v.kernel, v.max_reduce, v.max_pool))
          << "head " << h << " kernel " << v.kernel;
  }
}

TEST(ObservationPress, BudgetIsExactAndWindowAlwaysKept) {
  const Layer L = random_layer(4, 2, 100, 8, 16, 9);
  ScoreParams p;
  p.window = 16;
  for (int64_t budget : {17, 40, 84}) {
    ObservationPress press(p, {budget});
    const at::Tensor keep = press.select(LayerContext{0, L.keys, L.obs, L.plan});
    EXPECT_EQ(keep.size(1), budget);
    for (int64_t h = 0; h < 2; ++h) {
      const auto r = row(keep, h);
      EXPECT_TRUE(std::is_sorted(r.begin(), r.end()));
      for (int64_t j = 84; j < 100; ++j) EXPECT_TRUE(std::binary_search(r.begin(), r.end(), j));
    }
  }
}

TEST(HeavyHitterPress, AccumulatesAttentionOfEveryPromptQuery) {
  // keys/queries chosen so that key 3 is attended by every query, key 5 by none
  const int64_t n = 12, d = 4;
  Layer L;
  L.keys = at::zeros({1, n, d});
  L.keys[0][3][0] = 5.f;
  L.keys[0][5][0] = -5.f;
  L.obs = at::zeros({2, n, d});
  L.obs.select(2, 0).fill_(1.f);
  L.plan.prompt_len = n;
  for (int64_t i = 0; i < n; ++i) L.plan.obs_positions.push_back(i);
  L.plan.window_begin = L.plan.scored_end = n - 2;
  L.plan.window_end = n;
  ScoreParams p;
  p.window = 2;
  p.kernel = 1;
  p.pool = Pool::None;
  HeavyHitterPress press(p, {4});
  const auto keep = row(press.select(LayerContext{0, L.keys, L.obs, L.plan}), 0);
  // key 3 (heavy hitter) and key 0 win, then the window. Key 0 is seen by every query and is
  // alone for query 0: its column sum is 1 + 1/2 + 1/3 + ..., above key 1's (1/2 + 1/3 + ...)
  // and every later zero key's; key 5 (-5) gets the least.
  const std::vector<int64_t> want = {0, 3, 10, 11};
  EXPECT_EQ(keep, want);
}

TEST(StreamingPress, SinksPlusRecentAsAScorer) {
  Layer L = random_layer(2, 2, 30, 4, 4, 1);
  L.plan.obs_positions.clear();  // StreamingLLM reads no query and keeps no separate window
  L.plan.window_begin = L.plan.window_end = L.plan.scored_end = 30;
  StreamingPress press(4, {10});
  const at::Tensor keep = press.select(LayerContext{0, L.keys, L.obs, L.plan});
  const std::vector<int64_t> want = {0, 1, 2, 3, 24, 25, 26, 27, 28, 29};
  EXPECT_EQ(row(keep, 0), want);
  EXPECT_EQ(row(keep, 1), want);
  EXPECT_EQ(row(keep, 1), row(streaming_keep(2, 30, 4, 10), 1));  // the scoring library's rule
  // as a scorer it can be wrapped: AdaKV over equal per-head scores changes nothing
  AdaptivePress ada(std::make_unique<StreamingPress>(4, std::vector<int64_t>{10}));
  EXPECT_EQ(row(ada.select(LayerContext{0, L.keys, L.obs, L.plan}), 1), want);
}

// TOVA is SnapKV's computation with the last prompt query as the only observation row, the
// mean over the group's heads and no pooling.
TEST(TOVAPress, SelectionEqualsNaiveLastQueryAttention) {
  for (uint64_t seed : {1, 2, 3}) {
    Layer L = random_layer(4, 2, 40, 8, 6, seed);
    L.obs = at::randn({4, 1, 8}) * 2;  // the last prompt token's query, per head
    L.plan.obs_positions = {39};
    TOVAPress press({16});
    const at::Tensor keep = press.select(LayerContext{0, L.keys, L.obs, L.plan});
    for (int64_t h = 0; h < 2; ++h)
      EXPECT_EQ(row(keep, h), naive_snapkv(L, h, 16, 1, /*max_reduce=*/false, true))
          << "seed " << seed << " head " << h;
  }
}

TEST(KNormPress, KeepsTheLowestKeyNormsAndTheWindow) {
  Layer L = random_layer(2, 2, 30, 8, 4, 5);
  L.obs = at::empty({2, 0, 8});
  L.plan.obs_positions.clear();
  KNormPress press({12});
  const at::Tensor keep = press.select(LayerContext{0, L.keys, L.obs, L.plan});
  const auto K = L.keys.accessor<float, 3>();
  for (int64_t h = 0; h < 2; ++h) {
    std::vector<std::pair<double, int64_t>> norms;
    for (int64_t j = 0; j < L.plan.scored_end; ++j) {
      double sq = 0;
      for (int64_t c = 0; c < 8; ++c) sq += double(K[h][j][c]) * K[h][j][c];
      norms.push_back({std::sqrt(sq), j});
    }
    std::stable_sort(norms.begin(), norms.end());
    std::vector<int64_t> want;
    for (int i = 0; i < 12 - 4; ++i) want.push_back(norms[i].second);
    for (int64_t j = 26; j < 30; ++j) want.push_back(j);
    std::sort(want.begin(), want.end());
    EXPECT_EQ(row(keep, h), want) << "head " << h;
  }
}

}  // namespace
}  // namespace dapx
