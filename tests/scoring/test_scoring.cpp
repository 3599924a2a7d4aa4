// Scoring primitives on hand-computed cases: observation attention against a naive loop (GQA,
// causal mask among the observation rows, shifted key positions), reductions, pooling at the
// edges for both paddings (and against ATen's max_pool1d / avg_pool1d, the functions the
// references call), deterministic top-k with ties, the protected window, PyramidKV and AdaKV
// budgets, StreamingLLM positions, and the errors on bad parameters.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "scoring/scoring.h"
#include "util/error.h"

namespace dapx {
namespace {

at::Tensor f32(const std::vector<float>& v, std::vector<int64_t> shape) {
  return at::tensor(v, at::kFloat).view(shape).clone();
}

at::Tensor i64(const std::vector<int64_t>& v) { return at::tensor(v, at::kLong); }

std::vector<float> vec_f(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kFloat).contiguous().view(-1);
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

std::vector<int64_t> vec_i(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kLong).contiguous().view(-1);
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

void expect_near_vec(const std::vector<float>& got, const std::vector<float>& want,
                     double tol = 1e-6) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isinf(want[i]))
      EXPECT_EQ(got[i], want[i]) << "at " << i;
    else
      EXPECT_NEAR(got[i], want[i], tol) << "at " << i;
  }
}

// ---- observation attention ----------------------------------------------------------------

TEST(ObservationAttention, MatchesNaiveLoopWithGqaCausalRowsAndKeyOffset) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  const int64_t heads = 6, kv_heads = 2, rows = 3, n = 7, d = 5;
  for (int64_t key_pos0 : {0, 11}) {
    const at::Tensor q = at::randn({heads, rows, d});
    const at::Tensor k = at::randn({kv_heads, n, d});
    // The rows are the last three key positions, so they see each other causally.
    std::vector<int64_t> pos = {key_pos0 + n - 3, key_pos0 + n - 2, key_pos0 + n - 1};
    const at::Tensor a = observation_attention(q, k, i64(pos), key_pos0);
    ASSERT_EQ(a.sizes(), (at::IntArrayRef{heads, rows, n}));
    ASSERT_EQ(a.scalar_type(), at::kFloat);
    const auto qa = q.accessor<float, 3>();
    const auto ka = k.accessor<float, 3>();
    const auto aa = a.accessor<float, 3>();
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t kh = h / (heads / kv_heads);
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<double> s(n);
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j < n; ++j) {
          if (key_pos0 + j > pos[r]) continue;
          double dot = 0;
          for (int64_t x = 0; x < d; ++x) dot += double(qa[h][r][x]) * ka[kh][j][x];
          s[j] = dot / std::sqrt(double(d));
          mx = std::max(mx, s[j]);
        }
        for (int64_t j = 0; j < n; ++j)
          if (key_pos0 + j <= pos[r]) sum += std::exp(s[j] - mx);
        for (int64_t j = 0; j < n; ++j) {
          const double want = key_pos0 + j > pos[r] ? 0.0 : std::exp(s[j] - mx) / sum;
          EXPECT_NEAR(aa[h][r][j], want, 1e-5) << "h " << h << " r " << r << " j " << j;
          if (key_pos0 + j > pos[r]) {
            EXPECT_EQ(aa[h][r][j], 0.0f);  // exactly hidden
          }
        }
      }
    }
  }
}

TEST(ObservationAttention, ZeroQueriesSpreadUniformlyOverVisibleKeys) {
  // q = 0: every visible key gets 1 / (visible count); row at position p sees keys
  // key_pos0..p.
  const at::Tensor q = at::zeros({2, 3, 4});
  const at::Tensor k = at::randn({1, 5, 4});
  const at::Tensor a = observation_attention(q, k, i64({20, 22, 30}), /*key_pos0=*/20);
  expect_near_vec(vec_f(a[0][0]), {1, 0, 0, 0, 0});
  expect_near_vec(vec_f(a[1][1]), {1.f / 3, 1.f / 3, 1.f / 3, 0, 0});
  expect_near_vec(vec_f(a[1][2]), {0.2f, 0.2f, 0.2f, 0.2f, 0.2f});
}

TEST(ObservationAttention, RejectsBadShapesAndRowsThatSeeNothing) {
  const at::Tensor k = at::randn({2, 4, 8});
  EXPECT_THROW(observation_attention(at::randn({3, 1, 8}), k, i64({3})), Error);     // 3 % 2
  EXPECT_THROW(observation_attention(at::randn({2, 1, 4}), k, i64({3})), Error);     // head_dim
  EXPECT_THROW(observation_attention(at::randn({2, 2, 8}), k, i64({3})), Error);     // positions
  EXPECT_THROW(observation_attention(at::randn({2, 1, 8}), k, i64({4}), 5), Error);  // sees none
  EXPECT_THROW(observation_attention(at::randn({2, 1, 8}), k, i64({4}), -1), Error);
}

// ---- reduction ------------------------------------------------------------------------------

TEST(ReduceOverGroup, MaxMeanSumOverHeadsAndRowsOfEachGroup) {
  // 4 query heads, 2 KV heads (group 2), 2 rows, 3 keys.
  const at::Tensor attn = f32({1, 0, 0, 0, 2, 0,   // head 0 (kv 0)
                               0, 0, 3, 1, 1, 1,   // head 1 (kv 0)
                               4, 4, 4, 0, 0, 0,   // head 2 (kv 1)
                               0, 8, 0, 0, 0, 2},  // head 3 (kv 1)
                              {4, 2, 3});
  expect_near_vec(vec_f(reduce_over_group(attn, 2, Reduce::Max)), {1, 2, 3, 4, 8, 4});
  expect_near_vec(vec_f(reduce_over_group(attn, 2, Reduce::Mean)),
                  {0.5f, 0.75f, 1.0f, 1.0f, 3.0f, 1.5f});
  expect_near_vec(vec_f(reduce_over_group(attn, 2, Reduce::Sum)), {2, 3, 4, 4, 12, 6});
  // kv_heads = 1: one vector over all heads (SpecPC).
  expect_near_vec(vec_f(reduce_over_group(attn, 1, Reduce::Max)), {4, 8, 4});
}

TEST(ReduceOverGroup, RowWeightsScaleRowsBeforeReducing) {
  const at::Tensor w = linear_row_weights(3);
  expect_near_vec(vec_f(w), {0, 0.5f, 1});
  expect_near_vec(vec_f(linear_row_weights(1)), {1});
  // 2 heads, 3 rows, 2 keys; the oldest row (weight 0) holds the largest values.
  const at::Tensor attn = f32({9, 9, 2, 0, 0, 1,  //
                               9, 9, 0, 4, 1, 0},
                              {2, 3, 2});
  expect_near_vec(vec_f(reduce_over_group(attn, 1, Reduce::Max, w)), {1, 2});
  expect_near_vec(vec_f(reduce_over_group(attn, 1, Reduce::Mean, w)),
                  {(1 + 0 + 1 + 0 + 0) / 6.f, (0 + 1 + 0 + 2 + 0) / 6.f});
  expect_near_vec(vec_f(reduce_over_group(attn, 2, Reduce::Max)), {9, 9, 9, 9});
  EXPECT_THROW(reduce_over_group(attn, 1, Reduce::Max, linear_row_weights(2)), Error);
  EXPECT_THROW(reduce_over_group(attn, 3, Reduce::Max), Error);
  EXPECT_THROW(linear_row_weights(0), Error);
}

// ---- pooling ----------------------------------------------------------------------------------

TEST(PoolScores, SymmetricEdgesMaxPadsMinusInfAvgPadsZeros) {
  const at::Tensor s = f32({1, 3, 2, 0, 5}, {5});
  expect_near_vec(vec_f(pool_scores(s, 3, Pool::Max, PoolPadding::Symmetric)), {3, 3, 3, 5, 5});
  expect_near_vec(vec_f(pool_scores(s, 3, Pool::Avg, PoolPadding::Symmetric)),
                  {4.f / 3, 2, 5.f / 3, 7.f / 3, 5.f / 3});
  // Negative scores tell -inf padding (max_pool1d) from zero padding.
  const at::Tensor neg = f32({-1, -3, -2}, {3});
  expect_near_vec(vec_f(pool_scores(neg, 3, Pool::Max, PoolPadding::Symmetric)), {-1, -1, -2});
  expect_near_vec(vec_f(pool_scores(neg, 3, Pool::Avg, PoolPadding::Symmetric)),
                  {-4.f / 3, -2, -5.f / 3});
  // Kernel wider than the sequence.
  const at::Tensor t = f32({1, 3, 2}, {3});
  expect_near_vec(vec_f(pool_scores(t, 7, Pool::Max, PoolPadding::Symmetric)), {3, 3, 3});
  expect_near_vec(vec_f(pool_scores(t, 7, Pool::Avg, PoolPadding::Symmetric)),
                  {6.f / 7, 6.f / 7, 6.f / 7});
}

TEST(PoolScores, CenteredEdgesPadZerosLeftShortRightLong) {
  const at::Tensor s = f32({1, 3, 2, 0, 5}, {5});
  // kernel 4: one zero on the left, two on the right: [0 1 3 2 0 5 0 0].
  expect_near_vec(vec_f(pool_scores(s, 4, Pool::Max, PoolPadding::Centered)), {3, 3, 5, 5, 5});
  expect_near_vec(vec_f(pool_scores(s, 4, Pool::Avg, PoolPadding::Centered)),
                  {1.5f, 1.5f, 2.5f, 1.75f, 1.25f});
  // kernel 3 (odd): same as symmetric for non-negative scores.
  expect_near_vec(vec_f(pool_scores(s, 3, Pool::Max, PoolPadding::Centered)), {3, 3, 3, 5, 5});
  // SpecPC pads max pooling with the constant 0 (F.pad), not -inf.
  const at::Tensor neg = f32({-1, -3, -2}, {3});
  expect_near_vec(vec_f(pool_scores(neg, 3, Pool::Max, PoolPadding::Centered)), {0, -1, 0});
  // kernel 2: nothing on the left, one on the right.
  expect_near_vec(vec_f(pool_scores(s, 2, Pool::Max, PoolPadding::Centered)), {3, 3, 2, 5, 5});
}

TEST(PoolScores, MatchesAtenPool1dLikeTheReferences) {
  const at::Tensor s = at::rand({2, 3, 40}).sub_(0.3);  // some negative values
  for (int64_t k : {1, 3, 5, 7, 63}) {
    const at::Tensor want_max = at::max_pool1d(s, {k}, {1}, {k / 2});
    const at::Tensor want_avg = at::avg_pool1d(s, {k}, {1}, {k / 2});  // count_include_pad
    EXPECT_TRUE(at::equal(pool_scores(s, k, Pool::Max, PoolPadding::Symmetric), want_max)) << k;
    EXPECT_TRUE(
        at::allclose(pool_scores(s, k, Pool::Avg, PoolPadding::Symmetric), want_avg, 1e-5, 1e-6))
        << k;
  }
  for (int64_t k : {1, 2, 4, 7, 64}) {
    const at::Tensor padded = at::constant_pad_nd(s, {(k - 1) / 2, k - 1 - (k - 1) / 2}, 0);
    EXPECT_TRUE(at::equal(pool_scores(s, k, Pool::Max, PoolPadding::Centered),
                          at::max_pool1d(padded, {k}, {1})))
        << k;
    EXPECT_TRUE(at::allclose(pool_scores(s, k, Pool::Avg, PoolPadding::Centered),
                             at::avg_pool1d(padded, {k}, {1}), 1e-5, 1e-6))
        << k;
  }
}

TEST(PoolScores, NoneIsIdentityAndBadKernelsThrow) {
  const at::Tensor s = f32({1, 3, 2}, {3});
  EXPECT_TRUE(at::equal(pool_scores(s, 7, Pool::None, PoolPadding::Symmetric), s));
  EXPECT_THROW(pool_scores(s, 4, Pool::Max, PoolPadding::Symmetric), Error);  // even
  EXPECT_THROW(pool_scores(s, 0, Pool::Max, PoolPadding::Centered), Error);
  EXPECT_THROW(pool_scores(s, -3, Pool::Avg, PoolPadding::Symmetric), Error);
}

// ---- selection ------------------------------------------------------------------------------

TEST(Selection, RankAndTopkBreakTiesByLowestIndexAndSortAscending) {
  const at::Tensor s = f32({1, 5, 5, 2, 5,  //
                            0, 0, 0, 0, 0,  //
                            3, 1, 4, 1, 5},
                           {3, 5});
  EXPECT_EQ(vec_i(rank_descending(s)),
            (std::vector<int64_t>{1, 2, 4, 3, 0, 0, 1, 2, 3, 4, 4, 2, 0, 1, 3}));
  EXPECT_EQ(vec_i(topk_keep(s, 2)), (std::vector<int64_t>{1, 2, 0, 1, 2, 4}));
  EXPECT_EQ(vec_i(topk_keep(s, 3)), (std::vector<int64_t>{1, 2, 4, 0, 1, 2, 0, 2, 4}));
  EXPECT_EQ(topk_keep(s, 0).sizes(), (at::IntArrayRef{3, 0}));
  EXPECT_EQ(topk_keep(s, 3).scalar_type(), at::kLong);
  // Many ties in a long row: still the lowest indices, every time.
  const at::Tensor flat = at::zeros({2, 1000});
  EXPECT_EQ(vec_i(topk_keep(flat, 3)), (std::vector<int64_t>{0, 1, 2, 0, 1, 2}));
  EXPECT_THROW(topk_keep(s, 6), Error);
  EXPECT_THROW(topk_keep(s, -1), Error);
  EXPECT_THROW(topk_keep(f32({1, NAN}, {1, 2}), 1), Error);
}

TEST(Selection, KeepWithWindowAlwaysKeepsTheWindow) {
  // SpecKV layout: 6 scored keys, window [6, 8) (not scored), budget 5 -> top 3 + window.
  const at::Tensor s = f32({0.1f, 0.9f, 0.3f, 0.8f, 0.2f, 0.7f,  //
                            0.5f, 0.5f, 0.5f, 0.1f, 0.9f, 0.0f},
                           {2, 6});
  EXPECT_EQ(vec_i(keep_with_window(s, 5, 6, 8)),
            (std::vector<int64_t>{1, 3, 5, 6, 7, 0, 1, 4, 6, 7}));
  // Budget == window: only the window.
  EXPECT_EQ(vec_i(keep_with_window(s, 2, 6, 8)), (std::vector<int64_t>{6, 7, 6, 7}));
  // Window inside the scored range (SnapKV layout): the window is not picked twice.
  EXPECT_EQ(vec_i(keep_with_window(s, 4, 4, 6)), (std::vector<int64_t>{1, 3, 4, 5, 0, 1, 4, 5}));
  // Budget beyond the keys: everything is kept.
  EXPECT_EQ(vec_i(keep_with_window(s, 50, 6, 8)),
            (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_THROW(keep_with_window(s, 1, 6, 8), Error);   // budget < window
  EXPECT_THROW(keep_with_window(s, 5, 8, 6), Error);   // reversed
  EXPECT_THROW(keep_with_window(s, 5, -1, 2), Error);  // negative
}

TEST(Selection, StreamingKeepsSinksAndRecent) {
  EXPECT_EQ(vec_i(streaming_keep(2, 10, 2, 5)),
            (std::vector<int64_t>{0, 1, 7, 8, 9, 0, 1, 7, 8, 9}));
  EXPECT_EQ(vec_i(streaming_keep(1, 10, 4, 4)), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(vec_i(streaming_keep(1, 10, 0, 3)), (std::vector<int64_t>{7, 8, 9}));
  EXPECT_EQ(vec_i(streaming_keep(1, 3, 4, 8)), (std::vector<int64_t>{0, 1, 2}));  // all
  EXPECT_THROW(streaming_keep(1, 10, 5, 4), Error);
  EXPECT_THROW(streaming_keep(1, 10, -1, 4), Error);
  EXPECT_THROW(streaming_keep(0, 10, 1, 4), Error);
  EXPECT_THROW(streaming_keep(1, 10, 1, -4), Error);
}

// ---- budgets --------------------------------------------------------------------------------

int64_t total(const std::vector<int64_t>& v) { return std::accumulate(v.begin(), v.end(), 0L); }

TEST(Budgets, PyramidHandChecked) {
  // B = 30, min = 15, max = 45, step 10.
  EXPECT_EQ(pyramid_budgets(4, 40, 10, 2.0), (std::vector<int64_t>{55, 45, 35, 25}));
  // B = 10, min = 2.5, max = 17.5, step 7.5: Python's round (half to even) gives 18, 10, 2.
  EXPECT_EQ(pyramid_budgets(3, 15, 5, 4.0), (std::vector<int64_t>{23, 15, 7}));
  // Paper-size case: 32 layers, budget 256, window 32, beta 20.
  const std::vector<int64_t> p = pyramid_budgets(32, 256, 32);
  EXPECT_EQ(p.front(), 32 + 437);  // round(436.8)
  EXPECT_EQ(p.back(), 32 + 11);    // round(11.2)
  EXPECT_TRUE(std::is_sorted(p.rbegin(), p.rend()));
  EXPECT_EQ(total(p), 32 * 256);
  for (int64_t layers : {2, 5, 7, 28, 32, 80})
    for (int64_t budget : {64, 100, 257, 1024, 2048}) {
      const auto q = pyramid_budgets(layers, budget, 32);
      EXPECT_NEAR(double(total(q)), double(layers * budget), 1.0) << layers << " " << budget;
      EXPECT_GE(q.back(), 32);
    }
}

TEST(Budgets, PyramidPromptLengthCases) {
  EXPECT_EQ(pyramid_budgets(4, 40, 10, 20, 35), (std::vector<int64_t>(4, 35)));  // n <= budget
  EXPECT_EQ(pyramid_budgets(4, 40, 10, 20, 59), (std::vector<int64_t>(4, 40)));  // n < 2B
  // n = 65: max = 58.5 >= n - W = 55 -> max 55, min 5, step 50/3.
  const auto c = pyramid_budgets(4, 40, 10, 20, 65);
  EXPECT_EQ(c, (std::vector<int64_t>{65, 48, 32, 15}));
  EXPECT_EQ(total(c), 160);
  EXPECT_EQ(pyramid_budgets(1, 40, 10), (std::vector<int64_t>{40}));
}

TEST(Budgets, PyramidRejectsBadParameters) {
  EXPECT_THROW(pyramid_budgets(4, 10, 10), Error);  // budget <= window
  EXPECT_THROW(pyramid_budgets(4, 5, 10), Error);
  EXPECT_THROW(pyramid_budgets(0, 40, 10), Error);
  EXPECT_THROW(pyramid_budgets(4, 40, -1), Error);
  EXPECT_THROW(pyramid_budgets(4, 40, 10, 0.5), Error);  // beta < 1
  EXPECT_THROW(pyramid_budgets(4, 40, 10, 20, -2), Error);
}

TEST(Budgets, AdaptiveHeadBudgetsHandMade) {
  const at::Tensor s = f32({9, 8, 7, 6,           //
                            1, 0.5f, 0.2f, 0.1f,  //
                            5, 4, 0, 0},
                           {3, 4});
  // per head 2, safeguard floor(2 * 0.2) = 0: the joint top 6 are 9 8 7 6 5 4.
  EXPECT_EQ(vec_i(adaptive_head_budgets(s, 6)), (std::vector<int64_t>{4, 0, 2}));
  // alpha 0.5: each head keeps its best one, then 8 7 6 jointly.
  EXPECT_EQ(vec_i(adaptive_head_budgets(s, 6, 0.5)), (std::vector<int64_t>{4, 1, 1}));
  EXPECT_EQ(vec_i(adaptive_head_budgets(s, 12, 0.5)), (std::vector<int64_t>{4, 4, 4}));
  EXPECT_EQ(vec_i(adaptive_head_budgets(s, 0)), (std::vector<int64_t>{0, 0, 0}));
  // Ties across heads go to the lower head.
  EXPECT_EQ(vec_i(adaptive_head_budgets(at::ones({2, 3}), 3, 0.0)), (std::vector<int64_t>{3, 0}));
  EXPECT_THROW(adaptive_head_budgets(s, 13), Error);
  EXPECT_THROW(adaptive_head_budgets(s, -1), Error);
  EXPECT_THROW(adaptive_head_budgets(s, 6, 1.5), Error);
}

TEST(Budgets, AdaptiveDefaultSafeguardAndPerHeadTopkMatchJointSelection) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u;
  const int64_t kv = 4, n = 50, keep = 60;  // per head 15, safeguard floor(15 * 0.2) = 3
  std::vector<float> v(kv * n);
  for (auto& x : v) x = u(rng);
  // Head 3 scores low everywhere: only the safeguard keeps it alive.
  for (int64_t j = 0; j < n; ++j) v[3 * n + j] *= 1e-3f;
  const at::Tensor s = f32(v, {kv, n});
  const std::vector<int64_t> b = vec_i(adaptive_head_budgets(s, keep));
  EXPECT_EQ(total(b), keep);
  EXPECT_EQ(b[3], 3);
  // Naive joint selection: each head's top 3 forced, then the best of the rest overall.
  std::vector<std::vector<bool>> kept(kv, std::vector<bool>(n, false));
  std::vector<std::pair<float, int64_t>> rest;
  for (int64_t h = 0; h < kv; ++h) {
    std::vector<int64_t> idx(n);
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(),
                     [&](int64_t a, int64_t c) { return v[h * n + a] > v[h * n + c]; });
    for (int i = 0; i < 3; ++i) kept[h][idx[i]] = true;
    for (int i = 3; i < n; ++i) rest.push_back({v[h * n + idx[i]], h * n + idx[i]});
  }
  std::stable_sort(rest.begin(), rest.end(),
                   [](const auto& a, const auto& c) { return a.first > c.first; });
  for (int64_t i = 0; i < keep - kv * 3; ++i) kept[rest[i].second / n][rest[i].second % n] = true;
  for (int64_t h = 0; h < kv; ++h) {
    const std::vector<int64_t> top = vec_i(topk_keep(s[h].unsqueeze(0), b[h]));
    std::vector<int64_t> want;
    for (int64_t j = 0; j < n; ++j)
      if (kept[h][j]) want.push_back(j);
    EXPECT_EQ(top, want) << "head " << h;
  }
}

}  // namespace
}  // namespace dapx
