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
#include "methods/prompt_selection.h"
#include "naive_scores.h"
#include "naive_transformer.h"

namespace dapx {
namespace {

using testing::attention_row;
using testing::naive_scores;
using testing::Scores;

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

// SpecPC, whole pipeline: the draft's importance written out from the naive reference's own
// greedy lookahead, queries and keys (last W prompt rows weighted i/(W-1), each decode step's
// row; softmax over the keys a row sees; max over heads and rows, then layers >= s, then steps),
// pooled centred, ranked (ties: lower position first), expanded by neighbours by distance, the
// window first, cut to C, sorted. The kept prompt positions must be exactly these.
std::vector<int> naive_specpc(const reference::NaiveTransformer& ref, int n, int W, int L, int s,
                              int kernel, int neighbors, int budget, double* min_gap) {
  const ModelConfig& c = ref.config();
  const int D = c.head_dim, group = c.num_heads / c.num_kv_heads;
  std::vector<double> importance(n, -1.0);
  for (int step = 0; step < L; ++step) {
    std::vector<std::pair<int, double>> rows;  // position, weight
    if (step == 0)
      for (int i = 0; i < W; ++i) rows.push_back({n - W + i, W > 1 ? double(i) / (W - 1) : 1.0});
    else
      rows.push_back({n + step - 1, 1.0});
    for (int l = std::min(s, c.num_layers - 1); l < c.num_layers; ++l)
      for (int h = 0; h < c.num_heads; ++h) {
        const std::vector<float>& K = ref.keys(l, h / group);
        for (auto [pos, weight] : rows) {
          const std::vector<double> p =
              attention_row(ref.queries(l).at(pos).data() + size_t(h) * D, K, D, pos);
          for (int j = 0; j < n && j <= pos; ++j)
            importance[j] = std::max(importance[j], weight * p[j]);
        }
      }
  }
  std::vector<double> pooled(n);
  for (int i = 0; i < n; ++i) {
    pooled[i] = -1e300;
    for (int j = i - (kernel - 1) / 2; j <= i + kernel - 1 - (kernel - 1) / 2; ++j)
      if (j >= 0 && j < n) pooled[i] = std::max(pooled[i], importance[j]);
  }
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return pooled[a] > pooled[b]; });
  // Distinct pooled values closer than f32 can tell apart would make the engine's order
  // legitimately differ; report the smallest gap so the test can refuse such data.
  *min_gap = 1e300;
  for (int r = 0; r + 1 < std::min(n, budget + 1); ++r) {
    const double gap = pooled[order[r]] - pooled[order[r + 1]];
    if (gap > 0) *min_gap = std::min(*min_gap, gap);
  }
  std::vector<int> offsets;
  for (int o = -((neighbors - 1) / 2); o <= neighbors - 1 - (neighbors - 1) / 2; ++o)
    offsets.push_back(o);
  std::stable_sort(offsets.begin(), offsets.end(),
                   [](int a, int b) { return std::abs(a) < std::abs(b); });
  std::vector<int> kept;
  const auto add = [&](int pos) {
    if (static_cast<int>(kept.size()) < budget &&
        std::find(kept.begin(), kept.end(), pos) == kept.end())
      kept.push_back(pos);
  };
  for (int i = n - W; i < n; ++i) add(i);
  for (int r = 0; r < budget; ++r)
    for (int o : offsets) add(std::clamp(order[r] + o, 0, n - 1));
  std::sort(kept.begin(), kept.end());
  return kept;
}

TEST(SelectionReference, SpecPCKeepsExactlyTheNaiveSelection) {
  auto target = testing::load_f32(Arch::Qwen2, 7, 16);
  auto draft = testing::load_f32(Arch::Qwen2, 9, 16);
  const WeightStore store = WeightStore::open(draft->dir);
  reference::NaiveTransformer ref(draft->config, store);
  const int n = 90, W = 8, L = 4, s = 1;
  ASSERT_GT(draft->config.num_layers, s);
  const auto prompt = testing::prompt_of(n, draft->config.vocab_size, 53, 7);
  struct Case {
    int budget, kernel, neighbors;
  };
  for (const Case k : {Case{30, 1, 1}, Case{40, 5, 3}, Case{24, 4, 4}}) {
    const std::string what = "budget " + std::to_string(k.budget) + " kernel " +
                             std::to_string(k.kernel) + " neighbours " +
                             std::to_string(k.neighbors);
    auto method = make_method("specpc",
                              {{"budget", k.budget},
                               {"window", W},
                               {"kernel", k.kernel},
                               {"neighbors", k.neighbors},
                               {"lookahead", L},
                               {"first_layer", s}},
                              testing::recording(draft.get()));
    const GenerationResult r = generate(*target, *method, prompt, testing::greedy(1));
    const auto kept = r.method_info.at("kept_prompt_positions").get<std::vector<int>>();
    // the naive draft's own greedy lookahead; its first L-1 tokens are fed as decode steps
    const std::vector<int> lookahead = ref.greedy(prompt, L);
    ref.reset();
    std::vector<int> all = prompt;
    all.insert(all.end(), lookahead.begin(), lookahead.end() - 1);
    ref.prefill(all);
    double min_gap = 0;
    const auto want = naive_specpc(ref, n, W, L, s, k.kernel, k.neighbors, k.budget, &min_gap);
    ASSERT_GT(min_gap, 1e-5) << what << ": near-tied scores; choose another prompt";
    EXPECT_EQ(static_cast<int>(want.size()), k.budget) << what;
    EXPECT_EQ(kept, want) << what;
  }
}

// The perplexity filter's per-token loss (ppl-pc) against the naive reference's own logits:
// loss[i] = -log softmax(logits of position i-1)[token i], loss[0] = +inf. 300 tokens cross
// the 256-token chunks of draft_token_loss and the model's 16-token prefill chunks.
TEST(SelectionReference, DraftTokenLossIsTheNaiveNegativeLogLikelihood) {
  auto draft = testing::load_f32(Arch::Qwen2, 9, 16);
  const WeightStore store = WeightStore::open(draft->dir);
  reference::NaiveTransformer ref(draft->config, store);
  const int n = 300;
  const auto prompt = testing::prompt_of(n, draft->config.vocab_size, 53, 7);
  const at::Tensor loss = draft_token_loss(draft->transformer, prompt);
  ASSERT_EQ(loss.size(0), n);
  EXPECT_TRUE(std::isinf(loss[0].item<float>()));
  ref.reset();
  const auto logits = ref.prefill(prompt);
  double worst = 0;
  for (int i = 1; i < n; ++i) {
    const std::vector<float>& z = logits[i - 1];
    const double mx = *std::max_element(z.begin(), z.end());
    double sum = 0;
    for (float v : z) sum += std::exp(v - mx);
    const double want = mx + std::log(sum) - z[prompt[i]];
    worst = std::max(worst, std::fabs(loss[i].item<double>() - want));
  }
  EXPECT_LT(worst, 1e-4);
}

}  // namespace
}  // namespace dapx
