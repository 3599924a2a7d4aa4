#include "methods/lookahead.h"

#include "util/error.h"
#include "util/stopwatch.h"

namespace dapx {

Lookahead greedy_lookahead(const Transformer& model, const std::vector<int>& prompt, int64_t length,
                           const LookaheadObserver& observer,
                           const std::vector<int64_t>& observed_prompt_rows) {
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
  at::Tensor logits = model.forward(prompt, 0, cache, observer ? &capture : nullptr);
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
