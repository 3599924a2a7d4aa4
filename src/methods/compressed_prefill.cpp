#include <algorithm>

#include "methods/kv_press.h"
#include "util/error.h"

namespace dapx {
namespace {

nlohmann::json kept_positions(int layer, const at::Tensor& keep) {
  nlohmann::json heads = nlohmann::json::array();
  const at::Tensor k = keep.to(at::kCPU).contiguous();
  for (int64_t h = 0; h < k.size(0); ++h) {
    const int64_t* p = k[h].data_ptr<int64_t>();
    std::vector<int64_t> kept;
    for (int64_t i = 0; i < k.size(1); ++i)
      if (p[i] >= 0) kept.push_back(p[i]);  // -1: padding of a head-adaptive row
    heads.push_back(std::move(kept));
  }
  return {{"layer", layer}, {"kept", heads}};
}

}  // namespace

PrefillResult compressed_prefill(const Transformer& t, const CompressionPlan& plan, KVPress& press,
                                 int max_new_tokens, bool record_selection) {
  const ModelConfig& cfg = t.config();
  const int64_t n_all = static_cast<int64_t>(plan.tokens.size());
  const int64_t chunk = t.options().prefill_chunk;
  if (plan.prompt_len < 1 || plan.prompt_len > n_all)
    throw Error("compression plan: bad prompt length");

  at::Tensor x = t.embed(plan.tokens);  // [n_all, hidden]: the residual stream of every token
  PrefillResult out{t.make_cache(), {}, plan.prompt_len, 0, nlohmann::json::object()};
  nlohmann::json layers = nlohmann::json::array();
  for (int l = 0; l < cfg.num_layers; ++l) {
    LayerKV full(cfg.num_kv_heads, cfg.head_dim, at::kFloat);
    full.reserve(n_all);
    QueryCapture capture;
    capture.positions = plan.obs_positions;
    for (int64_t c0 = 0; c0 < n_all; c0 += chunk) {
      const int64_t len = std::min(chunk, n_all - c0);
      x.narrow(0, c0, len).copy_(t.layer_forward(l, x.narrow(0, c0, len), c0, full, &capture));
    }
    out.kv_bytes_full += full.allocated_bytes();
    const at::Tensor obs = capture.per_layer.empty() ? at::Tensor() : capture.per_layer[l];
    const at::Tensor keep = press.select(LayerContext{l, cfg.num_layers, full.keys(), obs, plan});
    full.compact(keep, max_new_tokens + 1);
    if (record_selection) layers.push_back(kept_positions(l, keep));
    out.cache.layer(l) = std::move(full);
  }
  if (plan.refeed_last_prompt_token) {
    out.next_logits = t.forward({plan.tokens[plan.prompt_len - 1]}, plan.prompt_len - 1, out.cache);
  } else {
    if (n_all != plan.prompt_len)
      throw Error("compression plan: lookahead needs refeed_last_prompt_token");
    out.next_logits = t.logits(x.narrow(0, n_all - 1, 1)).squeeze(0);
  }
  if (record_selection) out.info["layers"] = layers;
  return out;
}

}  // namespace dapx
