#include "methods/method.h"

namespace dapx {

PrefillResult FullKV::prefill(const Transformer& target, const PrefillRequest& req) {
  KVCache cache = target.make_cache();
  cache.reserve(static_cast<int64_t>(req.prompt.size()) + req.max_new_tokens);
  at::Tensor logits = target.forward(req.prompt, 0, cache);
  return PrefillResult{std::move(cache), logits, static_cast<int64_t>(req.prompt.size())};
}

nlohmann::json kept_positions(int layer, const LayerKV& kv) {
  const at::Tensor pos = kv.positions().contiguous();
  nlohmann::json heads = nlohmann::json::array();
  for (int64_t h = 0; h < pos.size(0); ++h) {
    const int64_t* p = pos[h].data_ptr<int64_t>();
    std::vector<int64_t> kept;
    for (int64_t i = 0; i < pos.size(1); ++i)
      if (p[i] >= 0) kept.push_back(p[i]);
    heads.push_back(std::move(kept));
  }
  return {{"layer", layer}, {"kept", heads}};
}

PrefillResult uncompressed_prefill(const Transformer& target, const PrefillRequest& req,
                                   bool record_selection) {
  PrefillResult r = FullKV().prefill(target, req);
  if (record_selection) {
    nlohmann::json layers = nlohmann::json::array();
    for (int l = 0; l < r.cache.num_layers(); ++l)
      layers.push_back(kept_positions(l, r.cache.layer(l)));
    r.info["layers"] = layers;
  }
  return r;
}

}  // namespace dapx
