#include "methods/lookahead.h"

#include <algorithm>

#include "methods/method.h"
#include "util/error.h"
#include "util/stopwatch.h"

namespace dapx {

Lookahead greedy_lookahead(const Transformer& model, const std::vector<int>& prompt, int64_t length,
                           const LookaheadObserver& observer,
                           const std::vector<int64_t>& observed_prompt_rows,
                           PrefixCache* prefix_cache) {
  const Stopwatch clock;
  Lookahead out;
  if (length <= 0 && !observer) return out;
  const int64_t n = static_cast<int64_t>(prompt.size());
  if (n + length > model.config().max_position_embeddings)
    throw Error("prompt (" + std::to_string(n) + " tokens) + lookahead (" + std::to_string(length) +
                ") exceeds the observing model's context of " +
                std::to_string(model.config().max_position_embeddings) + "; lower lookahead");
  KVCache cache = model.make_cache();
  cache.reserve(n + length);
  QueryCapture capture;
  capture.positions = observed_prompt_rows;
  int64_t first_observed = n - 1;  // the last prompt row is always computed (its logits)
  if (observer)
    for (int64_t r : observed_prompt_rows) first_observed = std::min(first_observed, r);
  // Observed rows inside the cached blocks are computed again (their queries are not cached),
  // from the start of the chunk that holds the first one, as a cold prefill computes them.
  const int64_t reused =
      first_observed > 0 ? append_prefix_hit(model, prefix_cache, prompt, n - 1, cache) : 0;
  const int64_t needed = std::min(reused, first_observed);
  const int64_t from = needed / model.options().prefill_chunk * model.options().prefill_chunk;
  at::Tensor logits =
      model.forward(std::vector<int>(prompt.begin() + from, prompt.end()), from, cache,
                    observer ? &capture : nullptr, false, {reused - from, needed - from});
  if (prefix_cache_applies(model, prefix_cache)) prefix_cache->store(prompt, n, cache);
  out.prefix_cached_tokens = reused;
  if (observer) observer(cache, capture);
  for (int64_t i = 0; i < length; ++i) {
    const int token = static_cast<int>(logits.argmax().item<int64_t>());
    out.tokens.push_back(token);
    if (i + 1 == length) break;
    QueryCapture step;
    step.positions = {n + i};
    logits = model.forward({token}, n + i, cache, observer ? &step : nullptr);
    if (observer) observer(cache, step);
  }
  out.kv_bytes = cache.allocated_bytes();
  out.seconds = clock.seconds();
  return out;
}

}  // namespace dapx
