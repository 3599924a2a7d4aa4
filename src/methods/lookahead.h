#pragma once
// The one greedy draft loop: a model continues the prompt for L tokens with its own full
// cache. SpecKV takes the draft's tokens (LAQ the target's); SpecPC also watches the loop: an
// observer sees the queries of chosen prompt rows after the prompt's forward, and the new
// token's query after every decode step.
#include <functional>
#include <vector>

#include "kv/prefix_cache.h"
#include "model/transformer.h"

namespace dapx {

struct Lookahead {
  std::vector<int> tokens;
  double seconds = 0;
  int64_t kv_bytes = 0;              // the generating model's full cache
  int64_t prefix_cached_tokens = 0;  // prompt tokens its prefix cache served
};

// Called after the prompt's forward (with the captured `observed_prompt_rows`) and after each
// of the L - 1 decode forwards (with that token's query), with the model's cache.
using LookaheadObserver = std::function<void(const KVCache&, const QueryCapture&)>;

// Throws when prompt + length exceeds the model's context. With an observer the prompt is
// read even when length is 0. `prefix_cache` (the model's own, or null) serves the cached
// blocks of the prompt before its first observed row and takes its new ones.
Lookahead greedy_lookahead(const Transformer& model, const std::vector<int>& prompt, int64_t length,
                           const LookaheadObserver& observer = {},
                           const std::vector<int64_t>& observed_prompt_rows = {},
                           PrefixCache* prefix_cache = nullptr);

}  // namespace dapx
