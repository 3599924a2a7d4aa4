// int8 weights on the shipped trained target (models/target): its logits over a needle-style
// prompt against the same model with its bf16 weights. The quantisation error that matters to a
// user is this one, on trained weights (random weights, as in test_linear.cpp, have no
// outliers); the figures print so that a change of the scheme can be compared.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "engine/model.h"

namespace dapx {
namespace {

std::string needle_prompt() {
  std::string text;
  const std::string filler =
      "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back "
      "again. ";
  for (int i = 0; i < 12; ++i) text += filler;
  text += "One of the special magic numbers for quiet-harbor is: 4817263. ";
  for (int i = 0; i < 12; ++i) text += filler;
  return text +
         "What is the special magic number for quiet-harbor mentioned in the provided "
         "text? The special magic number for quiet-harbor mentioned in the provided text is";
}

at::Tensor all_logits(const LoadedModel& m, const std::vector<int>& ids) {
  KVCache cache = m.transformer.make_cache();
  return m.transformer.forward(ids, 0, cache, nullptr, true);
}

TEST(Int8Weights, TrainedTargetLogitsStayCloseToItsBf16Weights) {
  ComputeOptions opts;
  opts.gemm = GemmChoice::kF32;  // the products in f32 on both sides: only the weights differ
  const auto native = LoadedModel::load(DAPX_MODELS_DIR "/target", opts);
  opts.int8_weights = true;
  const auto int8 = LoadedModel::load(DAPX_MODELS_DIR "/target", opts);
  const std::vector<int> ids = native->tokenizer.encode(needle_prompt());
  ASSERT_GT(ids.size(), 300u);
  const at::Tensor a = all_logits(*native, ids), b = all_logits(*int8, ids);
  const double range = (a.max() - a.min()).item<double>();
  const double worst = (a - b).abs().max().item<double>();
  const double mean = (a - b).abs().mean().item<double>();
  const double agree = (a.argmax(-1) == b.argmax(-1)).to(at::kDouble).mean().item<double>();
  std::printf(
      "int8 vs bf16 weights, %zu positions: largest logit difference %.3f (%.2f%% of the "
      "logit range %.1f), mean %.4f; same top-1 token at %.1f%% of positions\n",
      ids.size(), worst, 100 * worst / range, range, mean, 100 * agree);
  EXPECT_GT(worst, 0.0);           // the weights really are quantised
  EXPECT_LT(worst, 0.02 * range);  // measured 0.36% (Xeon, 2026-12-01)
  EXPECT_GT(agree, 0.98);          // measured 100%
  // The answer the model gives (the next token after the question) is unchanged.
  EXPECT_EQ(a[-1].argmax().item<int64_t>(), b[-1].argmax().item<int64_t>());
}

}  // namespace
}  // namespace dapx
