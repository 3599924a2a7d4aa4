// SpecKV and LAQ: the plan's rows and ranges, L = 0 reduces to SnapKV's selection, short
// prompts reproduce full KV, and generation equals the naive reference restricted to the kept
// entries with the last prompt token fed again; lookaheads equal the models' own greedy output.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "engine/generator.h"
#include "method_test_util.h"
#include "methods/catalogue.h"
#include "methods/speckv.h"
#include "naive_scores.h"
#include "naive_transformer.h"
#include "util/error.h"

namespace dapx {
namespace {

using testing::greedy;
using testing::load_f32;
using testing::prompt_of;

std::vector<std::vector<std::vector<int>>> kept_of(const GenerationResult& r) {
  std::vector<std::vector<std::vector<int>>> keep;
  for (const auto& layer : r.method_info.at("layers"))
    keep.push_back(layer.at("kept").get<std::vector<std::vector<int>>>());
  return keep;
}

TEST(SpecKVPlan, RowsScoredKeysAndWindow) {
  const CompressionPlan p = speckv_plan(std::vector<int>(20, 1), {7, 8, 9}, 4);
  EXPECT_EQ(p.tokens.size(), 23u);
  EXPECT_EQ(p.obs_positions, (std::vector<int64_t>{15, 16, 17, 18, 19, 20, 21, 22}));  // W+L+1
  EXPECT_EQ(p.scored_end, 15);
  EXPECT_EQ(p.window_begin, 15);
  EXPECT_EQ(p.window_end, 19);  // the last prompt token (19) is fed again, not kept
  EXPECT_TRUE(p.refeed_last_prompt_token);
}

TEST(SpecKV, ZeroLookaheadIsSnapKVSelectionWithoutTheLastToken) {
  auto target = load_f32(Arch::Qwen2, 7);
  const auto prompt = prompt_of(70, target->config.vocab_size);
  auto speckv = make_method("speckv", {{"budget", 20}, {"window", 6}, {"lookahead", 0}},
                            testing::recording(target.get()));
  const auto spec = kept_of(generate(*target, *speckv, prompt, greedy(1)));
  // SnapKV's observation window = the W + 1 rows SpecKV observes with L = 0
  auto snap = make_method("snapkv", {{"budget", 21}, {"window", 7}}, testing::recording());
  const auto snapk = kept_of(generate(*target, *snap, prompt, greedy(1)));
  for (size_t l = 0; l < spec.size(); ++l)
    for (size_t h = 0; h < spec[l].size(); ++h) {
      std::vector<int> want = snapk[l][h];
      want.pop_back();  // position n-1
      EXPECT_EQ(spec[l][h], want) << "layer " << l << " head " << h;
    }
}

TEST(SpecKV, BudgetAtLeastPromptReproducesFullKV) {
  auto target = load_f32(Arch::Llama, 7);
  auto draft = load_f32(Arch::Llama, 8);
  const auto prompt = prompt_of(30, target->config.vocab_size);
  FullKV full;
  const auto want = generate(*target, full, prompt, greedy(6)).tokens;
  MethodOptions o;
  o.draft = &draft->transformer;
  for (const std::string name : {"speckv", "laq"}) {
    auto m = make_method(name, {{"budget", 30}, {"window", 4}}, o);
    EXPECT_EQ(generate(*target, *m, prompt, greedy(6)).tokens, want) << name;
  }
}

TEST(SpecKV, GenerationEqualsReferenceWithKeptEntriesAndRefedLastToken) {
  for (Arch arch : {Arch::Qwen2, Arch::Qwen3}) {
    auto target = load_f32(arch, 7);
    auto draft = load_f32(arch, 9);
    const WeightStore ts = WeightStore::open(target->dir), ds = WeightStore::open(draft->dir);
    reference::NaiveTransformer ref(target->config, ts), ref_draft(draft->config, ds);
    const int n = 64;
    const auto prompt = prompt_of(n, target->config.vocab_size);
    // budget 63 = n - 1: compressing, every scored key kept but the re-fed last token
    for (const int budget : {24, 63})
      for (const std::string name : {"speckv", "laq"}) {
        auto m = make_method(name, {{"budget", budget}, {"window", 8}, {"lookahead", 5}},
                             testing::recording(draft.get()));
        const GenerationResult r = generate(*target, *m, prompt, greedy(6));
        const auto lookahead = r.method_info.at("lookahead_tokens").get<std::vector<int>>();
        EXPECT_EQ(lookahead,
                  name == "speckv" ? ref_draft.greedy(prompt, 5) : ref.greedy(prompt, 5));
        auto keep = kept_of(r);
        std::set<int> window;
        for (int j = n - 9; j < n - 1; ++j) window.insert(j);
        for (auto& layer : keep)
          for (auto& head : layer) {
            EXPECT_EQ(static_cast<int>(head.size()), budget);
            for (int j : window) EXPECT_TRUE(std::binary_search(head.begin(), head.end(), j));
            EXPECT_LT(head.back(), n - 1);  // neither the last prompt token nor the lookahead
          }
        ref.reset();
        ref.prefill(std::vector<int>(prompt.begin(), prompt.end() - 1));
        ref.compact(keep);
        auto logits = ref.step(prompt.back(), n - 1);
        std::vector<int> tokens;
        for (int i = 0; i < 6; ++i) {
          const int t =
              static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
          tokens.push_back(t);
          logits = ref.step(t, n + i);
        }
        EXPECT_EQ(r.tokens, tokens) << name << " " << short_name(arch);
      }
  }
}

TEST(SpecKV, BadParametersAndMismatchedTokenizersAreClearErrors) {
  auto msg = [](auto&& f) { return testing::error_of(f); };
  EXPECT_EQ(msg([&] { make_method("speckv"); }),
            "speckv: needs a draft model (same tokenizer as the target)");
  auto target = load_f32(Arch::Qwen2, 7);
  MethodOptions o;
  o.draft = &target->transformer;
  EXPECT_EQ(msg([&] {
              make_method("speckv", {{"lookahead", -5}}, o);
            }),
            "method 'speckv': parameter 'lookahead' must be an integer in [0, 16777216], got -5");
  EXPECT_EQ(msg([&] {
              make_method("laq", {{"budget", 16}, {"window", 16}}, o);
            }),
            "laq: budget (16) must be greater than window (16): the window alone would fill the "
            "cache");
  EXPECT_EQ(
      msg([&] {
        make_method("speckv", {{"prefill", "fast"}}, o);
      }),
      "method 'speckv': parameter 'prefill' must be one of auto, dense, sparse, got \"fast\"");
  // a lookahead past the context: the request fails with a message, before any work
  auto far = make_method("speckv", {{"budget", 40}, {"lookahead", 100000}}, o);
  EXPECT_NE(msg([&] {
              generate(*target, *far, prompt_of(60, 300), greedy(1));
            }).find("+ lookahead (100000) exceeds"),
            std::string::npos);

  // a draft whose vocabulary differs
  const auto dir = std::filesystem::temp_directory_path() /
                   ("dapx-test-other-vocab-" + std::to_string(getpid()));
  const std::string other = train_byte_level_bpe_json(testing::corpus(), 30);
  ModelShape shape = shape_preset("tiny", Arch::Qwen2);
  shape.vocab = Tokenizer::from_json_string(other, "other").vocab_size();
  write_random_model(dir, make_config(Arch::Qwen2, shape), 1, DType::F32, other, "chatml");
  auto draft = LoadedModel::load(dir, ComputeOptions{});
  const std::string m = msg([&] { check_same_tokenizer(*target, *draft); });
  EXPECT_NE(m.find("use different tokenizers"), std::string::npos) << m;
  test::remove_tree(dir);
}

}  // namespace
}  // namespace dapx

namespace dapx {
namespace {

// The first k of `scores` by rank (higher first, the lower position on ties, as the engine
// ranks), ascending. Max pooling makes exact ties (a peak's neighbours share its value); what
// decides the set is the k-th value against the nearest distinct values on either side, and
// `gap` becomes at most that margin, so near ties (which f32 may order otherwise) are refused.
std::vector<int> top_k(const std::vector<double>& scores, int k, double* gap) {
  std::vector<int> order(scores.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return scores[a] > scores[b]; });
  const double v = scores[order[k - 1]];
  for (int i : order)
    if (scores[i] != v) *gap = std::min(*gap, std::fabs(scores[i] - v));
  std::vector<int> top(order.begin(), order.begin() + k);
  std::sort(top.begin(), top.end());
  return top;
}

// SpecKV's sparse prefill, written out on the naive reference over prompt + lookahead (`all`,
// the prompt n tokens): layer by layer (a layer's queries and keys depend only on the layers
// before it), the layer's observation scores (rows n-W-1.., keys [0, n-W-1), SnapKV's pooling
// `kernel`) give each KV head its `vertical` keys (the top ones) and its kept entries (the
// window [n-W-1, n-1) plus the top budget - W); a query at p then sees the band (p - band, p]
// and its head's vertical keys. Returns the kept positions [layer][kv_head].
std::vector<std::vector<std::vector<int>>> naive_sparse_selection(reference::NaiveTransformer& ref,
                                                                  const std::vector<int>& all,
                                                                  int n, int W, int budget,
                                                                  int vertical, int band,
                                                                  int kernel, double* min_gap) {
  const ModelConfig& c = ref.config();
  const int scored_end = n - W - 1;
  std::vector<int> rows;
  for (int i = scored_end; i < static_cast<int>(all.size()); ++i) rows.push_back(i);
  std::vector<std::vector<std::vector<int>>> verticals(c.num_layers), kept(c.num_layers);
  *min_gap = 1e300;
  for (int l = 0; l < c.num_layers; ++l) {
    ref.reset();
    ref.set_visibility([&](int layer, int g, int pos, int slot) {
      if (layer >= l) return true;  // not yet chosen; layer l's scores do not depend on them
      const std::vector<int>& v = verticals[layer][g];
      return slot > pos - band || std::binary_search(v.begin(), v.end(), slot);
    });
    ref.prefill(all);
    const testing::Scores s = testing::naive_scores(ref, l, rows, scored_end, kernel);
    for (int g = 0; g < c.num_kv_heads; ++g) {
      verticals[l].push_back(top_k(s[g], std::min(vertical, scored_end), min_gap));
      std::vector<int> keep = top_k(s[g], budget - W, min_gap);
      for (int j = scored_end; j < n - 1; ++j) keep.push_back(j);
      kept[l].push_back(keep);
    }
  }
  ref.set_visibility(nullptr);
  return kept;
}

TEST(SpecKV, SparsePrefillWithFullCoverageEqualsDense) {
  auto target = load_f32(Arch::Llama, 7);
  auto draft = load_f32(Arch::Llama, 8);
  const auto prompt = prompt_of(60, target->config.vocab_size);
  nlohmann::json p = {{"budget", 20}, {"window", 6}, {"lookahead", 4}, {"prefill", "dense"}};
  auto dense = make_method("speckv", p, testing::recording(draft.get()));
  const GenerationResult d = generate(*target, *dense, prompt, greedy(5));
  p["prefill"] = "sparse";
  p["vertical"] = 64;
  p["band"] = 64;  // V + S >= n: every query still sees every earlier key
  auto sparse = make_method("speckv", p, testing::recording(draft.get()));
  const GenerationResult s = generate(*target, *sparse, prompt, greedy(5));
  EXPECT_EQ(s.method_info.at("prefill"), "sparse");
  EXPECT_EQ(d.method_info.at("prefill"), "dense");
  EXPECT_EQ(kept_of(s), kept_of(d));
  EXPECT_EQ(s.tokens, d.tokens);
  // a small band changes the prefill; its selection is exactly the naive sparse reference's
  p["vertical"] = 8;
  p["band"] = 8;
  auto tight = make_method("speckv", p, testing::recording(draft.get()));
  const GenerationResult t = generate(*target, *tight, prompt, greedy(5));
  std::vector<int> all = prompt;
  for (int x : t.method_info.at("lookahead_tokens").get<std::vector<int>>()) all.push_back(x);
  ASSERT_EQ(all.size(), 64u);
  const WeightStore ts = WeightStore::open(target->dir);
  reference::NaiveTransformer ref(target->config, ts);
  double min_gap = 0;
  const auto want = naive_sparse_selection(ref, all, 60, 6, 20, 8, 8, 7, &min_gap);
  ASSERT_GT(min_gap, 1e-5) << "near-tied scores; choose another prompt";
  EXPECT_EQ(kept_of(t), want);
  // The tight pattern really ran sparse: later layers' keys (so the kept entries) move.
  EXPECT_NE(kept_of(t), kept_of(d));
}

}  // namespace
}  // namespace dapx
