// KV methods end to end on tiny models: short prompts reproduce full KV token for token;
// compressed generation equals the naive reference restricted to the kept entries; budgets
// per layer; parameter errors.
#include <gtest/gtest.h>

#include "engine/generator.h"
#include "method_test_util.h"
#include "methods/registry.h"
#include "naive_transformer.h"
#include "scoring/scoring.h"
#include "util/error.h"

namespace dapx {
namespace {

using testing::greedy;
std::vector<int> prompt_of(int n, int vocab) { return testing::prompt_of(n, vocab, 53, 7); }

std::unique_ptr<LoadedModel> tiny_f32(Arch arch, int64_t chunk = 512) {
  return testing::load_f32(arch, 7, chunk);
}

TEST(KVMethods, BudgetAtLeastPromptReproducesFullKV) {
  auto m = tiny_f32(Arch::Qwen2);
  const auto prompt = prompt_of(40, m->config.vocab_size);
  FullKV full;
  const auto want = generate(*m, full, prompt, greedy(8)).tokens;
  for (const std::string name : {"full", "streaming", "h2o", "snapkv", "pyramidkv", "adakv"}) {
    MethodParams p;
    p.budget = 40;
    p.window = 8;
    auto method = make_method(name, p);
    EXPECT_EQ(generate(*m, *method, prompt, greedy(8)).tokens, want) << name;
  }
}

// The engine's compressed generation equals the reference that prefilled everything, then
// dropped exactly the entries the method reported, then decoded.
TEST(KVMethods, CompressedGenerationEqualsReferenceRestrictedToKeptEntries) {
  for (Arch arch : {Arch::Llama, Arch::Qwen3}) {
    auto m = tiny_f32(arch, /*chunk=*/16);
    const WeightStore store = WeightStore::open(m->dir);
    reference::NaiveTransformer ref(m->config, store);
    const auto prompt = prompt_of(60, m->config.vocab_size);
    for (const std::string name : {"snapkv", "pyramidkv", "h2o", "streaming", "adakv"}) {
      MethodParams p;
      p.budget = 24;
      p.window = 8;
      p.record_selection = true;
      auto method = make_method(name, p);
      const GenerationResult r = generate(*m, *method, prompt, greedy(6));
      std::vector<std::vector<std::vector<int>>> keep;
      for (const auto& layer : r.method_info.at("layers"))
        keep.push_back(layer.at("kept").get<std::vector<std::vector<int>>>());
      ASSERT_EQ(static_cast<int>(keep.size()), m->config.num_layers);
      ref.reset();
      std::vector<int> tokens;
      auto logits = ref.prefill(prompt).back();
      ref.compact(keep);
      for (int i = 0; i < 6; ++i) {
        const int t =
            static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        tokens.push_back(t);
        logits = ref.step(t, 60 + i);
      }
      EXPECT_EQ(r.tokens, tokens) << name << " " << short_name(arch);
      EXPECT_LT(r.stats.kv_bytes, r.stats.kv_bytes_full) << name;
    }
  }
}

TEST(KVMethods, EveryLayerKeepsItsBudget) {
  auto m = tiny_f32(Arch::Mistral);
  const auto prompt = prompt_of(80, m->config.vocab_size);
  MethodParams p;
  p.budget = 30;
  p.window = 8;
  p.record_selection = true;
  for (const std::string name : {"snapkv", "pyramidkv", "h2o", "streaming"}) {
    auto method = make_method(name, p);
    const GenerationResult r = generate(*m, *method, prompt, greedy(1));
    const auto want = name == "pyramidkv" ? pyramid_budgets(m->config.num_layers, 30, 8, 20, 80)
                                          : std::vector<int64_t>(m->config.num_layers, 30);
    const auto& layers = r.method_info.at("layers");
    for (int l = 0; l < m->config.num_layers; ++l)
      for (const auto& head : layers[l].at("kept")) {
        EXPECT_EQ(static_cast<int64_t>(head.size()), want[l]) << name << " layer " << l;
        EXPECT_EQ(head.back().get<int>(), 79) << name;  // the most recent entry is always kept
      }
  }
}

TEST(KVMethods, AdaKVSharesTheLayerBudgetAmongHeads) {
  auto m = tiny_f32(Arch::Qwen2);
  const auto prompt = prompt_of(120, m->config.vocab_size);
  MethodParams p;
  p.budget = 30;
  p.window = 8;
  p.record_selection = true;
  auto method = make_method("adakv", p);
  const GenerationResult r = generate(*m, *method, prompt, greedy(2));
  for (const auto& layer : r.method_info.at("layers")) {
    size_t total = 0;
    for (const auto& head : layer.at("kept")) {
      total += head.size();
      EXPECT_GE(head.size(), 8u + 4u);  // window + AdaKV's safeguard floor(22 * 0.2)
      EXPECT_EQ(head.back().get<int>(), 119);
    }
    EXPECT_EQ(total, static_cast<size_t>(m->config.num_kv_heads * 30));
  }
}

TEST(KVMethods, BadParametersAreClearErrors) {
  auto msg = [](const std::string& name, MethodParams p) {
    return testing::error_of([&] { make_method(name, p); });
  };
  MethodParams p;
  p.budget = 32;
  EXPECT_NE(msg("snapkv", p).find("must be larger than --window"), std::string::npos);
  p.budget = 64;
  p.kernel = 4;
  EXPECT_NE(msg("snapkv", p).find("--kernel must be a positive odd number"), std::string::npos);
  p.kernel = -1;
  p.pool = "median";
  EXPECT_NE(msg("pyramidkv", p).find("unknown --pool 'median'"), std::string::npos);
  p.pool = "";
  p.sinks = 64;
  EXPECT_NE(msg("streaming", p).find("--sinks"), std::string::npos);
  p.budget = 0;
  EXPECT_NE(msg("h2o", p).find("--budget must be >= 1"), std::string::npos);
  EXPECT_NE(msg("magic", p).find("unknown --method 'magic'; available: full"), std::string::npos);
}

}  // namespace
}  // namespace dapx
