#pragma once
// Prompt compression (SpecPC and its baselines): which prompt positions the target reads.
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "kv/prefix_cache.h"
#include "model/transformer.h"
#include "scoring/scoring.h"

namespace dapx {

struct SpecPCParams {
  int64_t budget = 2048;  // C: prompt tokens kept
  int64_t window = 64;    // W: last prompt tokens, always kept; their queries observe
  int64_t kernel = 64;    // centred pooling along the prompt
  Pool pool = Pool::Max;
  Reduce reduce = Reduce::Max;
  int64_t lookahead = 1;         // L: draft tokens generated (L - 1 decode steps observe too)
  int64_t neighbors = 64;        // N: positions around each top position
  int64_t first_layer = 8;       // s: first draft layer that observes (clamped to the depth)
  bool weighted_queries = true;  // row i of the window weighs i / (W - 1)
};

// The draft reads the prompt and generates L tokens; every layer >= s contributes the
// (weighted) attention of the last W prompt queries, every decode step that of its query;
// reduced over heads and rows, then layers, then steps.
struct PromptImportance {
  at::Tensor importance;       // f32 [n]
  std::vector<int> lookahead;  // the draft's L greedy tokens
  double seconds = 0;
  int64_t prefix_cached_tokens = 0;
};
// `prefix_cache`: the observing model's own (kv/prefix_cache.h), or null.
PromptImportance draft_prompt_importance(const Transformer& draft, const std::vector<int>& prompt,
                                         const SpecPCParams& p,
                                         PrefixCache* prefix_cache = nullptr);

// SpecPC's selection from an importance vector: centred pool, top C by score (descending),
// each expanded with the offsets [-(N-1)/2, N-1-(N-1)/2] in order of distance (negative first
// on ties), clamped to [0, n), first occurrences kept; the last W positions go first; cut to
// C; ascending. n <= C keeps everything.
std::vector<int64_t> select_prompt_positions(const at::Tensor& importance, const SpecPCParams& p);

// Positions with the highest scores (ties to the lower position) plus the last `window`,
// ascending, `budget` in all: the ppl-pc and random-pc baselines.
std::vector<int64_t> top_positions_with_window(const at::Tensor& scores, int64_t budget,
                                               int64_t window);

// The draft's per-token surrogate loss -log p(token_i | tokens_<i) (position 0 gets +inf so
// it is always kept), computed in chunks of rows so the [rows, vocab] logits stay small.
at::Tensor draft_token_loss(const Transformer& draft, const std::vector<int>& prompt);

}  // namespace dapx
