#pragma once
// `dapx analyze`: how well the draft stands in for the target (the paper's premise). On one
// prompt, both models score the prompt's keys with the same observation scoring (SpecKV's:
// the last W prompt queries, the last prompt token and the draft's lookahead; and the window
// alone, as SnapKV), and both read the draft's lookahead so their next-token distributions
// can be compared.
#include <nlohmann/json.hpp>
#include <vector>

#include "engine/model.h"

namespace dapx::eval {

// Spearman rank correlation (ties get their average rank); 0 when either side is constant.
double spearman(const std::vector<float>& a, const std::vector<float>& b);
// |top-k(a) and top-k(b)| / k, ties to the lower index.
double topk_overlap(const std::vector<float>& a, const std::vector<float>& b, int64_t k);

struct AgreementOptions {
  int64_t lookahead = 8;  // draft tokens (SpecKV's L)
  int64_t window = 32;    // W
  int64_t budget = 128;   // k of the top-k overlap
};

// One prompt: {"scored_keys", "lookahead_text", "speckv": {spearman, topk_overlap,
// per_layer_spearman[], target[], draft[]}, "window": {...}, "mean_kl", "greedy_agreement"}.
// target/draft are the importance vectors averaged over layers and heads.
nlohmann::json analyze_prompt(const LoadedModel& target, const LoadedModel& draft,
                              const std::vector<int>& prompt, const AgreementOptions& opts);

}  // namespace dapx::eval
