// KV methods end to end on tiny models: short prompts reproduce full KV token for token;
// compressed generation equals the naive reference restricted to the kept entries; budgets
// per layer; parameter errors.
#include <gtest/gtest.h>

#include "engine/generator.h"
#include "method_test_util.h"
#include "methods/catalogue.h"
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
  for (const std::string name :
       {"full", "streaming", "h2o", "snapkv", "pyramidkv", "adakv", "tova", "knorm"}) {
    const nlohmann::json p = name == "full"        ? nlohmann::json::object()
                             : name == "streaming" ? nlohmann::json{{"budget", 40}}
                                                   : nlohmann::json{{"budget", 40}, {"window", 8}};
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
    // budget 59 = n - 1: the compressing path with a single entry dropped per head (budget n
    // would take the uncompressed shortcut)
    for (const int budget : {24, 59})
      for (const std::string name :
           {"snapkv", "pyramidkv", "h2o", "streaming", "adakv", "tova", "knorm"}) {
        const nlohmann::json p = name == "streaming"
                                     ? nlohmann::json{{"budget", budget}}
                                     : nlohmann::json{{"budget", budget}, {"window", 8}};
        auto method = make_method(name, p, testing::recording());
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
        EXPECT_EQ(r.tokens, tokens) << name << " " << short_name(arch) << " budget " << budget;
        size_t kept = 0;
        for (const auto& layer : keep)
          for (const auto& head : layer) kept += head.size();
        EXPECT_EQ(kept, size_t(m->config.num_layers) * m->config.num_kv_heads * budget) << name;
        if (budget < 59) {
          EXPECT_LT(r.stats.kv_bytes, r.stats.kv_bytes_full) << name;
        }
      }
  }
}

TEST(KVMethods, EveryLayerKeepsItsBudget) {
  auto m = tiny_f32(Arch::Mistral);
  const auto prompt = prompt_of(80, m->config.vocab_size);
  for (const std::string name : {"snapkv", "pyramidkv", "h2o", "streaming", "tova", "knorm"}) {
    const nlohmann::json p = name == "streaming" ? nlohmann::json{{"budget", 30}}
                                                 : nlohmann::json{{"budget", 30}, {"window", 8}};
    auto method = make_method(name, p, testing::recording());
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
  auto method = make_method("adakv", {{"budget", 30}, {"window", 8}}, testing::recording());
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

// Library errors name the method, the parameter and what it accepts (never a CLI flag).
TEST(KVMethods, BadParametersAreClearErrors) {
  auto msg = [](const std::string& name, const nlohmann::json& p) {
    return testing::error_of([&] { make_method(name, p); });
  };
  EXPECT_EQ(msg("snapkv", {{"budget", 32}}),
            "snapkv: budget (32) must be greater than window (32): the window alone would fill "
            "the cache");
  EXPECT_EQ(msg("snapkv", {{"budget", 64}, {"kernel", 4}}),
            "snapkv: kernel must be odd (pooling pads kernel / 2 on each side), got 4");
  EXPECT_EQ(msg("pyramidkv", {{"pool", "median"}}),
            "method 'pyramidkv': parameter 'pool' must be one of max, avg, none, got \"median\"");
  EXPECT_EQ(msg("streaming", {{"sinks", 64}, {"budget", 64}}),
            "streaming: sinks (64) must be below budget (64)");
  EXPECT_EQ(msg("h2o", {{"budget", 0}}),
            "method 'h2o': parameter 'budget' must be an integer in [1, 16777216], got 0");
  EXPECT_EQ(msg("h2o", {{"budget", 12.5}}),
            "method 'h2o': parameter 'budget' must be an integer in [1, 16777216], got 12.5");
  EXPECT_EQ(msg("snapkv", {{"window", "8"}}),
            "method 'snapkv': parameter 'window' must be an integer in [1, 16777216], got \"8\"");
  EXPECT_EQ(msg("h2o", {{"reduce", "mean"}}),  // H2O sums: it has no reduction to choose
            "method 'h2o' has no parameter 'reduce'; its parameters: budget, window, kernel, pool");
  EXPECT_EQ(msg("full", {{"budget", 64}}),
            "method 'full' has no parameter 'budget'; its "
            "parameters: none");
  EXPECT_EQ(msg("snapkv", nlohmann::json::array()),
            "parameters of method 'snapkv' must be a JSON object, got []");
  EXPECT_NE(msg("magic", {}).find("unknown method 'magic'; available: full, streaming"),
            std::string::npos);
  EXPECT_EQ(
      msg("pyramidkv", {{"budget", 64}, {"pyramid_beta", 0.5}}),
      "method 'pyramidkv': parameter 'pyramid_beta' must be a number in [1, 1000000], got 0.5");
}

// The catalogue is the one list: every method builds from its defaults (draft given) and
// `dapx methods --json` has every parameter with a default and a range.
TEST(Catalogue, EveryMethodBuildsFromItsDefaultsAndListsItsParameters) {
  auto m = tiny_f32(Arch::Qwen2);
  MethodOptions o;
  o.draft = &m->transformer;
  const nlohmann::json all = catalogue_json();
  ASSERT_EQ(all.size(), method_names().size());
  EXPECT_EQ(all.size(), 15u);
  for (const auto& entry : all) {
    const std::string name = entry.at("name");
    EXPECT_EQ(make_method(name, {}, o)->name(), name);
    for (const auto& p : entry.at("params")) {
      EXPECT_TRUE(p.contains("default") && p.contains("help")) << name;
      EXPECT_TRUE(p.contains("choices") || (p.contains("min") && p.contains("max"))) << name;
    }
    if (entry.at("needs_draft")) {
      EXPECT_NE(testing::error_of([&] { make_method(name, {}); }).find("needs a draft model"),
                std::string::npos)
          << name;
    }
  }
  EXPECT_EQ(method_spec("speckv-pc").budget_param(), "kv_budget");
  EXPECT_EQ(method_spec("specpc").budget_param(), "budget");
  EXPECT_EQ(method_spec("full").budget_param(), "");
}

}  // namespace
}  // namespace dapx
