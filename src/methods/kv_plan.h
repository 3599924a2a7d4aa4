#pragma once
// The KV bytes a request will hold, planned before it runs, so that a server can admit it
// into a bounded memory pool: what compression buys in serving is exactly this number.
// `bytes` is the cache the request decodes on (its kept prompt entries plus every token it
// may generate); `peak_bytes` adds what its prefill holds for a while: the layer-major
// prefill's one full layer beside the compacted ones, LAQ's full cache during its own
// lookahead, and the draft's full cache for draft-based methods. The plan uses each
// method's budget parameter (or its default); the cache a method really builds can differ a
// little (AdaKV pads a layer to its longest head), so a scheduler trues it up after prefill.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "io/model_config.h"

namespace dapx {

struct KVShape {
  int64_t layers = 0, kv_heads = 0, head_dim = 0, dtype_bytes = 4;
  int64_t entry_bytes() const { return 2 * kv_heads * head_dim * dtype_bytes; }  // K and V
};
KVShape kv_shape(const ModelConfig& cfg, int64_t dtype_bytes);

struct KVPlan {
  int64_t entries_per_layer = 0;  // prompt entries kept per head and layer (mean over layers)
  int64_t bytes = 0;              // while decoding: kept prompt + max_new_tokens
  int64_t peak_bytes = 0;         // while prefilling (>= bytes)
};

// `params` as the request gives them (missing ones take the catalogue's defaults); `draft`
// may be null for methods without one. Throws dapx::Error for an unknown method.
KVPlan plan_kv(const std::string& method, const nlohmann::json& params, int64_t prompt_tokens,
               int64_t max_new_tokens, const KVShape& target, const KVShape* draft);

}  // namespace dapx
