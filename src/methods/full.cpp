#include "methods/method.h"

namespace dapx {

PrefillResult FullKV::prefill(const Transformer& target, const PrefillRequest& req) {
  KVCache cache = target.make_cache();
  cache.reserve(static_cast<int64_t>(req.prompt.size()) + req.max_new_tokens);
  at::Tensor logits = target.forward(req.prompt, 0, cache);
  return PrefillResult{std::move(cache), logits, static_cast<int64_t>(req.prompt.size())};
}

PrefillResult uncompressed_prefill(const Transformer& target, const PrefillRequest& req,
                                   bool record_selection) {
  PrefillResult r = FullKV().prefill(target, req);
  if (record_selection) {
    std::vector<int64_t> all(req.prompt.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
    nlohmann::json layers = nlohmann::json::array();
    const ModelConfig& cfg = target.config();
    for (int l = 0; l < cfg.num_layers; ++l)
      layers.push_back(
          {{"layer", l}, {"kept", std::vector<std::vector<int64_t>>(cfg.num_kv_heads, all)}});
    r.info["layers"] = layers;
  }
  return r;
}

}  // namespace dapx
