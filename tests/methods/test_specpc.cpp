// SpecPC: selection on fixed score vectors (hand-worked), importance aggregation against a
// straightforward computation from the draft's queries and keys, reproduction of full
// generation when nothing is dropped, generation equal to the naive reference's on the
// compressed prompt, SpecKV-PC's selection made with the draft's tokens, and parameter errors.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/generator.h"
#include "method_test_util.h"
#include "methods/catalogue.h"
#include "methods/prompt_selection.h"
#include "naive_transformer.h"
#include "util/error.h"

namespace dapx {
namespace {

SpecPCParams params(int64_t budget, int64_t window, int64_t kernel, int64_t neighbors) {
  SpecPCParams p;
  p.budget = budget;
  p.window = window;
  p.kernel = kernel;
  p.neighbors = neighbors;
  return p;
}

at::Tensor scores(int64_t n, std::vector<std::pair<int64_t, float>> peaks) {
  at::Tensor s = at::arange(n, 0, -1, at::kFloat) * 1e-3f;  // small, decreasing: ties broken
  for (auto [i, v] : peaks) s[i] = v;
  return s;
}

TEST(SpecPCSelection, NeighboursByDistanceWindowFirstCutAndSorted) {
  // top: 10 (0.9) then 3 (0.8); N = 3 -> offsets 0, -1, +1; window [18, 20)
  const auto kept =
      select_prompt_positions(scores(20, {{10, 0.9f}, {3, 0.8f}}), params(6, 2, 1, 3));
  EXPECT_EQ(kept, (std::vector<int64_t>{3, 9, 10, 11, 18, 19}));
}

TEST(SpecPCSelection, ClampsAtBothEndsAndDedupes) {
  // top 0 then 19 (inside the window); N = 4 -> offsets 0, -1, +1, +2 (negative first on ties)
  const auto kept =
      select_prompt_positions(scores(20, {{0, 0.9f}, {19, 0.8f}, {7, 0.7f}}), params(7, 2, 1, 4));
  // window 18, 19; then 0 (-1 clamps to 0: dup), 1, 2; then 19 (dup), 18 (dup), 19, 19; then 7, 6
  EXPECT_EQ(kept, (std::vector<int64_t>{0, 1, 2, 6, 7, 18, 19}));
}

TEST(SpecPCSelection, BudgetAtLeastPromptKeepsAllAndPoolingIsCentred) {
  EXPECT_EQ(select_prompt_positions(scores(5, {}), params(5, 2, 1, 1)).size(), 5u);
  // kernel 2 centred: pads 0 left, 1 right -> pooled[i] = max(s[i], s[i+1]); 4 and 5 tie on the
  // peak at 5, the lower index ranks first
  const auto kept = select_prompt_positions(scores(12, {{5, 0.9f}}), params(3, 1, 2, 1));
  EXPECT_EQ(kept, (std::vector<int64_t>{4, 5, 11}));
}

TEST(SpecPCSelection, PerplexityAndRandomBaselinesKeepTheWindow) {
  const auto kept = top_positions_with_window(scores(10, {{2, 5.f}, {6, 4.f}}), 4, 2);
  EXPECT_EQ(kept, (std::vector<int64_t>{2, 6, 8, 9}));
}

using testing::load_f32;

std::vector<int> prompt_of(int n, int vocab) { return testing::prompt_of(n, vocab, 31, 5); }

// Importance written out: per step, per layer >= s, softmax rows of the observing queries over
// the prompt keys (causal), weight i/(W-1) for the W prefill rows, max over heads and rows,
// then max over layers, then max over steps.
TEST(SpecPCImportance, EqualsStraightforwardComputation) {
  auto draft = load_f32(Arch::Qwen2, 5);
  const Transformer& t = draft->transformer;
  const int n = 30, W = 6, L = 3;
  const auto prompt = prompt_of(n, draft->config.vocab_size);
  SpecPCParams p = params(10, W, 1, 1);
  p.lookahead = L;
  p.first_layer = 1;
  const PromptImportance imp = draft_prompt_importance(t, prompt, p);
  ASSERT_EQ(imp.lookahead.size(), 3u);
  // replay: capture every query of prompt + lookahead, keep the full cache
  std::vector<int> all = prompt;
  all.insert(all.end(), imp.lookahead.begin(), imp.lookahead.end() - 1);
  KVCache cache = t.make_cache();
  QueryCapture cap;
  for (int i = 0; i < static_cast<int>(all.size()); ++i) cap.positions.push_back(i);
  t.forward(all, 0, cache, &cap);
  const int heads = draft->config.num_heads, group = draft->config.group_size();
  const double d = draft->config.head_dim;
  std::vector<double> want(n, 0.0);
  for (int step = 0; step < L; ++step) {
    std::vector<int> rows;
    if (step == 0)
      for (int i = n - W; i < n; ++i) rows.push_back(i);
    else
      rows.push_back(n + step - 1);
    std::vector<double> step_vec(n, -1.0);
    for (int l = 1; l < draft->config.num_layers; ++l) {
      const at::Tensor q = cap.per_layer[l], k = cache.layer(l).keys();
      for (int h = 0; h < heads; ++h)
        for (size_t r = 0; r < rows.size(); ++r) {
          const int pos = rows[r];
          const at::Tensor s =
              at::matmul(k[h / group].narrow(0, 0, pos + 1), q[h][pos]) / std::sqrt(d);
          const at::Tensor prob = at::softmax(s.to(at::kDouble), 0);
          const double weight = step == 0 ? double(r) / (W - 1) : 1.0;
          for (int j = 0; j < n; ++j)  // keys after the query are hidden (probability 0)
            step_vec[j] = std::max(step_vec[j], j <= pos ? weight * prob[j].item<double>() : 0.0);
        }
    }
    for (int j = 0; j < n; ++j) want[j] = std::max(want[j], step_vec[j]);
  }
  for (int j = 0; j < n; ++j) EXPECT_NEAR(imp.importance[j].item<double>(), want[j], 1e-5) << j;
}

using testing::greedy;

TEST(SpecPC, NothingDroppedReproducesFull) {
  auto target = load_f32(Arch::Llama, 7);
  auto draft = load_f32(Arch::Llama, 8);
  const auto prompt = prompt_of(80, target->config.vocab_size);
  FullKV full;
  const auto want = generate(*target, full, prompt, greedy(6)).tokens;
  MethodOptions o;
  o.draft = &draft->transformer;
  for (const std::string name : {"specpc", "speckv-pc", "target-pc", "ppl-pc", "random-pc"}) {
    nlohmann::json p = {{"budget", 80}};
    if (name == "speckv-pc") p["kv_budget"] = 80;
    auto m = make_method(name, p, o);
    const GenerationResult r = generate(*target, *m, prompt, greedy(6));
    EXPECT_EQ(r.tokens, want) << name;
    EXPECT_EQ(r.method_info.at("kept_ratio").get<double>(), 1.0) << name;
  }
}

TEST(SpecPC, CompressesToTheBudgetAndSpecKVPCUsesTheDraftTokens) {
  auto target = load_f32(Arch::Qwen2, 7);
  auto draft = load_f32(Arch::Qwen2, 8);
  const WeightStore ds = WeightStore::open(draft->dir);
  reference::NaiveTransformer ref_draft(draft->config, ds);
  const auto prompt = prompt_of(200, target->config.vocab_size);
  for (const std::string name : {"specpc", "ppl-pc", "random-pc", "speckv-pc"}) {
    nlohmann::json p = {{"budget", 96}, {"window", 16}};
    if (name == "specpc" || name == "speckv-pc") {
      p["kernel"] = 8;
      p["neighbors"] = 8;
    }
    if (name == "speckv-pc") p["kv_budget"] = 40;
    auto m = make_method(name, p, testing::recording(draft.get()));
    const GenerationResult r = generate(*target, *m, prompt, greedy(3));
    const auto kept = r.method_info.at("kept_prompt_positions").get<std::vector<int64_t>>();
    ASSERT_EQ(kept.size(), 96u) << name;
    EXPECT_TRUE(std::is_sorted(kept.begin(), kept.end()));
    EXPECT_EQ(kept.back(), 199);
    EXPECT_EQ(kept[96 - 16], 184);  // the window
    std::vector<int> gathered;
    for (int64_t i : kept) gathered.push_back(prompt[i]);
    const auto compressed = r.method_info.at("compressed_prompt_tokens").get<std::vector<int>>();
    EXPECT_EQ(compressed, gathered) << name;
    if (name == "speckv-pc") {
      // SpecPC's draft pass is the draft's greedy continuation of the whole prompt (L = 8),
      // made again here by the naive reference.
      const std::vector<int> lookahead = ref_draft.greedy(prompt, 8);
      EXPECT_EQ(r.method_info.at("lookahead_tokens").get<std::vector<int>>(), lookahead);
      for (const auto& head : r.method_info.at("layers")[0].at("kept")) EXPECT_EQ(head.size(), 40u);
      // The KV selection is SpecKV's on the compressed prompt observed with those tokens...
      auto speckv = make_method("speckv", {{"budget", 40}}, testing::recording(draft.get()));
      const PrefillResult with_them =
          speckv->prefill(target->transformer, PrefillRequest{compressed, 3, &lookahead});
      EXPECT_EQ(r.method_info.at("layers"), with_them.info.at("layers"));
      // ...not the one the draft's own continuation of the compressed prompt gives (which
      // differs here, so the comparison above tells the two apart).
      auto own = make_method("speckv", {{"budget", 40}, {"lookahead", 8}},
                             testing::recording(draft.get()));
      const PrefillResult with_own =
          own->prefill(target->transformer, PrefillRequest{compressed, 3});
      ASSERT_NE(with_own.info.at("lookahead_tokens").get<std::vector<int>>(), lookahead);
      EXPECT_NE(r.method_info.at("layers"), with_own.info.at("layers"));
    }
  }
}

// A prompt method's generation is full-KV generation on the compressed prompt it reports: the
// kept prompt tokens, gathered here, at fresh positions 0..C-1, run through the naive reference
// (its own forward pass and greedy decoding), token for token.
TEST(SpecPC, GenerationEqualsFullKVOnTheCompressedPrompt) {
  auto target = load_f32(Arch::Qwen2, 7);
  auto draft = load_f32(Arch::Qwen2, 8);
  const WeightStore ts = WeightStore::open(target->dir);
  reference::NaiveTransformer ref(target->config, ts);
  const auto prompt = prompt_of(200, target->config.vocab_size);
  const std::vector<int> whole = ref.greedy(prompt, 8);
  int differs_from_whole = 0;
  for (const std::string name : {"specpc", "target-pc", "random-pc", "ppl-pc"}) {
    nlohmann::json p = {{"budget", 96}, {"window", 16}};
    if (name == "specpc" || name == "target-pc") p["kernel"] = 5;
    auto m = make_method(name, p, testing::recording(draft.get()));
    const GenerationResult r = generate(*target, *m, prompt, greedy(8));
    const auto kept = r.method_info.at("kept_prompt_positions").get<std::vector<int64_t>>();
    ASSERT_EQ(kept.size(), 96u) << name;
    std::vector<int> compressed;
    for (int64_t i : kept) compressed.push_back(prompt.at(i));
    const std::vector<int> want = ref.greedy(compressed, 8);
    EXPECT_EQ(r.tokens, want) << name;
    differs_from_whole += want != whole;
  }
  // The compressed prompts lead elsewhere than the whole one: the comparison is not vacuous.
  EXPECT_GT(differs_from_whole, 0);
}

// budget = n - 1: the compressing path drops exactly one position, never from the window.
TEST(SpecPC, BudgetOneBelowThePromptDropsOnePosition) {
  auto target = load_f32(Arch::Qwen2, 7);
  auto draft = load_f32(Arch::Qwen2, 8);
  const auto prompt = prompt_of(90, target->config.vocab_size);
  for (const std::string name : {"specpc", "target-pc", "ppl-pc", "random-pc"}) {
    auto m = make_method(name, {{"budget", 89}, {"window", 16}}, testing::recording(draft.get()));
    const GenerationResult r = generate(*target, *m, prompt, greedy(2));
    const auto kept = r.method_info.at("kept_prompt_positions").get<std::vector<int64_t>>();
    ASSERT_EQ(kept.size(), 89u) << name;
    EXPECT_TRUE(std::is_sorted(kept.begin(), kept.end())) << name;
    EXPECT_EQ(std::vector<int64_t>(kept.end() - 16, kept.end()), [] {
      std::vector<int64_t> w;
      for (int64_t i = 74; i < 90; ++i) w.push_back(i);
      return w;
    }()) << name;
  }
}

TEST(SpecPC, BadParametersAreClearErrors) {
  auto target = load_f32(Arch::Qwen2, 7);
  MethodOptions o;
  o.draft = &target->transformer;
  auto msg = [&](const std::string& name, const nlohmann::json& p, bool draft = true) {
    return testing::error_of([&] { make_method(name, p, draft ? o : MethodOptions{}); });
  };
  EXPECT_EQ(msg("specpc", {}, false), "specpc: needs a draft model (same tokenizer as the target)");
  EXPECT_EQ(msg("specpc", {{"budget", 32}}), "specpc: window (64) must not exceed budget (32)");
  EXPECT_EQ(msg("specpc", {{"neighbors", 0}}),
            "method 'specpc': parameter 'neighbors' must be an integer in [1, 16777216], got 0");
  EXPECT_EQ(msg("target-pc", {{"pool", "sum"}}),
            "method 'target-pc': parameter 'pool' must be one of max, avg, none, got \"sum\"");
  EXPECT_EQ(msg("speckv-pc", {{"kv_budget", 32}}),
            "speckv-pc: kv_budget (32) must be greater than SpecKV's window (32)");
  EXPECT_EQ(msg("random-pc", {{"selection_seed", -1}}),
            "method 'random-pc': parameter 'selection_seed' must be an integer in [0, "
            "9007199254740991], got -1");
  EXPECT_EQ(msg("ppl-pc", {{"neighbors", 8}}),
            "method 'ppl-pc' has no parameter 'neighbors'; its parameters: budget, window");
}

}  // namespace
}  // namespace dapx
