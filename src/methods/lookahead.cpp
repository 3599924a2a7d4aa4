#include "methods/lookahead.h"

#include "util/stopwatch.h"

namespace dapx {

Lookahead greedy_lookahead(const Transformer& model, const std::vector<int>& prompt,
                           int64_t length) {
  const Stopwatch clock;
  Lookahead out;
  if (length <= 0) return out;
  const int64_t n = static_cast<int64_t>(prompt.size());
  KVCache cache = model.make_cache();
  cache.reserve(n + length);
  at::Tensor logits = model.forward(prompt, 0, cache);
  for (int64_t i = 0; i < length; ++i) {
    const int token = static_cast<int>(logits.argmax().item<int64_t>());
    out.tokens.push_back(token);
    if (i + 1 < length) logits = model.forward({token}, n + i, cache);
  }
  out.kv_bytes = cache.allocated_bytes();
  out.seconds = clock.seconds();
  return out;
}

}  // namespace dapx
