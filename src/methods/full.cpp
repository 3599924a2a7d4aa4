#include "methods/method.h"

namespace dapx {

PrefillResult FullKV::prefill(const Transformer& target, const PrefillRequest& req) {
  const int64_t n = static_cast<int64_t>(req.prompt.size());
  KVCache cache = target.make_cache();
  cache.reserve(n + req.max_new_tokens);
  // Cached blocks start the cache; the last prompt token is always computed (its logits).
  const int64_t reused = append_prefix_hit(target, req.prefix_cache, req.prompt, n - 1, cache);
  const std::vector<int> rest(req.prompt.begin() + reused, req.prompt.end());
  at::Tensor logits = target.forward(rest, reused, cache);
  if (prefix_cache_applies(target, req.prefix_cache)) req.prefix_cache->store(req.prompt, n, cache);
  PrefillResult r{std::move(cache), logits, n};
  r.info["prefix_cached_tokens"] = reused;
  return r;
}

bool prefix_cache_applies(const Transformer& t, const PrefixCache* cache) {
  // Whole blocks that are whole prefill chunks: a suffix's chunks fall where a cold prefill's
  // do, so its numbers are the same bit for bit.
  return cache && cache->block_tokens() % t.options().prefill_chunk == 0;
}

int64_t append_prefix_hit(const Transformer& t, PrefixCache* cache, const std::vector<int>& tokens,
                          int64_t max_tokens, KVCache& kv) {
  if (!prefix_cache_applies(t, cache)) return 0;
  const PrefixCache::Hit hit = cache->lookup(tokens, max_tokens);
  int64_t pos = 0;
  for (const auto& block : hit.blocks) {
    for (int l = 0; l < kv.num_layers(); ++l) kv.layer(l).append(block->k[l], block->v[l], pos);
    pos += static_cast<int64_t>(block->tokens.size());
  }
  return pos;
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
