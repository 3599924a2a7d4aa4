// dapx analyze's measures: hand-computed rank correlation and top-k overlap, and a model
// compared with itself agrees perfectly (and with another model, not).
#include <gtest/gtest.h>

#include "eval/agreement.h"
#include "tiny_models.h"
#include "util/error.h"

namespace dapx::eval {
namespace {

TEST(Agreement, SpearmanAndTopkOverlapByHand) {
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4}, {10, 20, 30, 40}), 1.0);
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0);
  // Ranks (0-based) a: 0 1 2 3, b: 1 0 2 3 -> d^2 = 1 + 1 = 2 -> 1 - 6*2 / (4*15) = 0.8.
  EXPECT_NEAR(spearman({1, 2, 3, 4}, {2, 1, 3, 4}), 0.8, 1e-12);
  // Ties take their average rank: b = {1, 1, 2}: ranks 0.5 0.5 2 against 0 1 2 -> 0.866.
  EXPECT_NEAR(spearman({1, 2, 3}, {1, 1, 2}), std::sqrt(3.0) / 2, 1e-12);
  EXPECT_EQ(spearman({1, 1, 1}, {1, 2, 3}), 0.0);  // a constant side has no ranking
  EXPECT_THROW(spearman({1, 2}, {1}), Error);
  EXPECT_DOUBLE_EQ(topk_overlap({5, 4, 3, 2, 1}, {5, 4, 3, 2, 1}, 2), 1.0);
  EXPECT_DOUBLE_EQ(topk_overlap({5, 4, 3, 2, 1}, {1, 4, 3, 2, 5}, 2), 0.5);  // {0,1} vs {4,1}
  EXPECT_DOUBLE_EQ(topk_overlap({5, 4, 3, 2, 1}, {1, 2, 3, 4, 5}, 2), 0.0);
  EXPECT_DOUBLE_EQ(topk_overlap({1, 1, 1}, {1, 1, 1}, 2), 1.0);  // ties to the lower index
}

TEST(Agreement, AModelAgreesWithItselfAndNotWithAnother) {
  const auto a = LoadedModel::load(testing::tiny_model(Arch::Qwen2, DType::F32, 7), {});
  const auto b = LoadedModel::load(testing::tiny_model(Arch::Qwen2, DType::F32, 8), {});
  std::vector<int> prompt;
  for (int i = 0; i < 300; ++i) prompt.push_back((i * 37 + 11) % 300);
  AgreementOptions o;
  o.lookahead = 4;
  o.window = 16;
  o.budget = 64;
  const nlohmann::json self = analyze_prompt(*a, *a, prompt, o);
  EXPECT_NEAR(self["speckv"]["spearman"].get<double>(), 1.0, 1e-9);
  EXPECT_NEAR(self["window"]["topk_overlap"].get<double>(), 1.0, 1e-9);
  EXPECT_NEAR(self["mean_kl"].get<double>(), 0.0, 1e-6);
  EXPECT_EQ(self["greedy_agreement"].get<double>(), 1.0);
  EXPECT_EQ(self["scored_keys"].get<int>(), 300 - 16 - 1);
  EXPECT_EQ(self["speckv"]["per_layer_spearman"].size(), 2u);  // the tiny model's layers
  const nlohmann::json other = analyze_prompt(*a, *b, prompt, o);
  EXPECT_LT(other["speckv"]["spearman"].get<double>(), 0.99);
  EXPECT_GT(other["mean_kl"].get<double>(), 1e-3);
  o.budget = 400;  // longer than the prompt allows
  EXPECT_THROW(analyze_prompt(*a, *a, prompt, o), Error);
}

}  // namespace
}  // namespace dapx::eval
