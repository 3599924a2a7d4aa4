#include "methods/method.h"

namespace dapx {

PrefillResult FullKV::prefill(const Transformer& target, const PrefillRequest& req) {
  KVCache cache = target.make_cache();
  cache.reserve(static_cast<int64_t>(req.prompt.size()) + req.max_new_tokens);
  at::Tensor logits = target.forward(req.prompt, 0, cache);
  const int64_t bytes = cache.allocated_bytes();
  return PrefillResult{std::move(cache), logits, static_cast<int64_t>(req.prompt.size()), bytes};
}

}  // namespace dapx
