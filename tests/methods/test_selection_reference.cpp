// End-to-end selections checked against an independent computation: the naive reference
// (tests/reference, scalar loops) runs its own forward pass, and its own post-RoPE queries and
// keys give the observation attention, reduced over the KV group's heads and the rows, pooled
// and ranked here. The method's kept positions must be a valid top-k of those scores (ties
// allowed: every kept scored key scores at least as high as every dropped one), plus the window.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "engine/generator.h"
#include "method_test_util.h"
#include "methods/catalogue.h"
#include "naive_transformer.h"

namespace dapx {
namespace {

using Scores = std::vector<std::vector<double>>;  // [kv_head][scored key]

// SnapKV-style scores of one layer: softmax over the keys each row sees (row r at position
// rows[r] sees keys 0..rows[r]), max over the group's heads and the rows, max-pooled over
// kernel (padding that never wins), for keys [0, scored_end).
Scores naive_scores(const reference::NaiveTransformer& ref, int layer, const std::vector<int>& rows,
                    int scored_end, int kernel) {
  const ModelConfig& c = ref.config();
  const int D = c.head_dim, group = c.num_heads / c.num_kv_heads;
  Scores out(c.num_kv_heads);
  for (int g = 0; g < c.num_kv_heads; ++g) {
    const std::vector<float>& K = ref.keys(layer, g);
    std::vector<double> red(scored_end, -1.0);
    for (int h = g * group; h < (g + 1) * group; ++h)
      for (int pos : rows) {
        const float* q = ref.queries(layer).at(pos).data() + size_t(h) * D;
        std::vector<double> s(pos + 1);
        double mx = -std::numeric_limits<double>::infinity(), z = 0;
        for (int j = 0; j <= pos; ++j) {
          double dot = 0;
          for (int e = 0; e < D; ++e) dot += double(q[e]) * K[size_t(j) * D + e];
          s[j] = dot / std::sqrt(double(D));
          mx = std::max(mx, s[j]);
        }
        for (int j = 0; j <= pos; ++j) z += std::exp(s[j] - mx);
        for (int j = 0; j < scored_end && j <= pos; ++j)
          red[j] = std::max(red[j], std::exp(s[j] - mx) / z);
      }
    out[g].resize(scored_end);
    for (int j = 0; j < scored_end; ++j) {
      double m = -1.0;
      for (int o = -kernel / 2; o <= kernel / 2; ++o)
        if (j + o >= 0 && j + o < scored_end) m = std::max(m, red[j + o]);
      out[g][j] = m;
    }
  }
  return out;
}

// kept (ascending positions of one head) = the window [wb, we) + a valid top-(budget - W) of
// `scores` over [0, scored_end).
void expect_valid_top_k(const std::vector<int>& kept, const std::vector<double>& scores, int wb,
                        int we, int budget, const std::string& what) {
  const std::set<int> k(kept.begin(), kept.end());
  for (int j = wb; j < we; ++j) EXPECT_TRUE(k.count(j)) << what << ": window position " << j;
  double kept_min = 1e9, dropped_max = -1e9;
  int scored_kept = 0;
  for (int j = 0; j < static_cast<int>(scores.size()); ++j) {
    if (k.count(j)) {
      kept_min = std::min(kept_min, scores[j]);
      ++scored_kept;
    } else {
      dropped_max = std::max(dropped_max, scores[j]);
    }
  }
  EXPECT_EQ(scored_kept, budget - (we - wb)) << what;
  EXPECT_EQ(static_cast<int>(kept.size()), budget) << what;
  EXPECT_GE(kept_min, dropped_max - 1e-6) << what << ": a dropped key scores above a kept one";
}

std::vector<std::vector<std::vector<int>>> kept_of(const GenerationResult& r) {
  std::vector<std::vector<std::vector<int>>> out;
  for (const auto& layer : r.method_info.at("layers"))
    out.push_back(layer.at("kept").get<std::vector<std::vector<int>>>());
  return out;
}

// The observation queries the engine captures (what every observing method scores with) equal
// the naive reference's own post-RoPE queries, for chunked prefill and for decode steps.
TEST(SelectionReference, CapturedQueriesEqualTheNaiveReference) {
  for (Arch arch : {Arch::Qwen2, Arch::Qwen3, Arch::Llama}) {
    auto m = testing::load_f32(arch, 7, 16);
    const WeightStore store = WeightStore::open(m->dir);
    reference::NaiveTransformer ref(m->config, store);
    const int n = 50;
    const auto prompt = testing::prompt_of(n, m->config.vocab_size, 53, 7);
    KVCache cache = m->transformer.make_cache();
    QueryCapture cap;
    cap.positions = {0, 15, 16, 31, 40, 49};  // across the 16-token chunks
    m->transformer.forward(prompt, 0, cache, &cap);
    QueryCapture step;
    step.positions = {n};
    m->transformer.forward({prompt[3]}, n, cache, &step);
    ref.reset();
    std::vector<int> all = prompt;
    all.push_back(prompt[3]);
    ref.prefill(all);
    const int heads = m->config.num_heads, D = m->config.head_dim;
    for (int l = 0; l < m->config.num_layers; ++l) {
      const auto check = [&](const QueryCapture& c) {
        const at::Tensor q = c.per_layer.at(l).contiguous();  // [heads, rows, D]
        for (size_t r = 0; r < c.positions.size(); ++r) {
          const std::vector<float>& want = ref.queries(l).at(c.positions[r]);
          double worst = 0;
          for (int h = 0; h < heads; ++h)
            for (int e = 0; e < D; ++e)
              worst = std::max(
                  worst, std::fabs(double(q[h][r][e].item<float>()) - want[size_t(h) * D + e]));
          EXPECT_LT(worst, 1e-4) << short_name(arch) << " layer " << l << " position "
                                 << c.positions[r];
        }
      };
      check(cap);
      check(step);
    }
  }
}

TEST(SelectionReference, SnapKVKeepsAValidTopKOfTheNaiveObservationScores) {
  for (Arch arch : {Arch::Qwen2, Arch::Llama}) {
    auto m = testing::load_f32(arch, 7, 16);
    const WeightStore store = WeightStore::open(m->dir);
    reference::NaiveTransformer ref(m->config, store);
    const int n = 60, W = 8, budget = 24;
    const auto prompt = testing::prompt_of(n, m->config.vocab_size, 53, 7);
    auto method = make_method("snapkv", {{"budget", budget}, {"window", W}}, testing::recording());
    const auto kept = kept_of(generate(*m, *method, prompt, testing::greedy(1)));
    ref.reset();
    ref.prefill(prompt);
    std::vector<int> rows;
    for (int i = n - W; i < n; ++i) rows.push_back(i);
    for (int l = 0; l < m->config.num_layers; ++l) {
      const Scores s = naive_scores(ref, l, rows, n - W, 7);
      for (int g = 0; g < m->config.num_kv_heads; ++g)
        expect_valid_top_k(
            kept[l][g], s[g], n - W, n, budget,
            short_name(arch) + " layer " + std::to_string(l) + " head " + std::to_string(g));
    }
  }
}

// SpecKV with a lookahead: the rows are the last W + 1 prompt tokens and the L draft tokens,
// whose queries the target computes over prompt + lookahead; keys [0, n-W-1) compete and
// [n-W-1, n-1) is the window.
TEST(SelectionReference, SpecKVWithALookaheadKeepsAValidTopKOfTheNaiveScores) {
  auto target = testing::load_f32(Arch::Qwen2, 7, 16);
  auto draft = testing::load_f32(Arch::Qwen2, 9, 16);
  const WeightStore store = WeightStore::open(target->dir);
  reference::NaiveTransformer ref(target->config, store);
  const int n = 64, W = 8, L = 5, budget = 24;
  const auto prompt = testing::prompt_of(n, target->config.vocab_size, 53, 7);
  auto method = make_method("speckv", {{"budget", budget}, {"window", W}, {"lookahead", L}},
                            testing::recording(draft.get()));
  const GenerationResult r = generate(*target, *method, prompt, testing::greedy(1));
  const auto kept = kept_of(r);
  std::vector<int> all = prompt;
  for (int t : r.method_info.at("lookahead_tokens").get<std::vector<int>>()) all.push_back(t);
  ASSERT_EQ(static_cast<int>(all.size()), n + L);
  ref.reset();
  ref.prefill(all);
  std::vector<int> rows;
  for (int i = n - W - 1; i < n + L; ++i) rows.push_back(i);
  for (int l = 0; l < target->config.num_layers; ++l) {
    const Scores s = naive_scores(ref, l, rows, n - W - 1, 7);
    for (int g = 0; g < target->config.num_kv_heads; ++g)
      expect_valid_top_k(kept[l][g], s[g], n - W - 1, n - 1, budget,
                         "layer " + std::to_string(l) + " head " + std::to_string(g));
  }
}

}  // namespace
}  // namespace dapx
