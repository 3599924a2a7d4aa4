#include "methods/kv_plan.h"

#include <algorithm>

#include "methods/catalogue.h"

namespace dapx {

KVShape kv_shape(const ModelConfig& cfg, int64_t dtype_bytes) {
  return KVShape{cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, dtype_bytes};
}

namespace {

// The integer parameter `name`: the request's value, else the catalogue's default, else `def`.
int64_t integer_param(const MethodSpec& spec, const nlohmann::json& params, const std::string& name,
                      int64_t def) {
  if (params.is_object() && params.contains(name) && params[name].is_number())
    return params[name].get<int64_t>();
  const ParamSpec* p = spec.param(name);
  return p && p->default_value.is_number() ? p->default_value.get<int64_t>() : def;
}

}  // namespace

KVPlan plan_kv(const std::string& method, const nlohmann::json& params, int64_t n, int64_t max_new,
               const KVShape& target, const KVShape* draft) {
  const MethodSpec& spec = method_spec(method);
  const int64_t e = target.entry_bytes(), layers = target.layers;
  // Prompt tokens the target reads, and the entries per layer its cache keeps of them.
  int64_t read = n, kept = n;
  if (spec.family != Family::KV) read = std::min(n, integer_param(spec, params, "budget", n));
  if (spec.family == Family::Prompt) kept = read;
  const std::string kv_param = spec.family == Family::Cascade ? "kv_budget" : "budget";
  if (spec.family != Family::Prompt && spec.param(kv_param))
    kept = std::min(read, integer_param(spec, params, kv_param, read));
  // Lookahead rows observed (SpecKV/LAQ default to max_new_tokens, SpecPC-style to theirs).
  const int64_t lookahead =
      spec.param("lookahead") ? integer_param(spec, params, "lookahead", max_new) : 0;

  KVPlan plan;
  plan.entries_per_layer = kept;
  plan.bytes = e * layers * (kept + max_new);
  int64_t peak = plan.bytes;
  if (kept < read) {
    if (method == "laq")  // the target's own lookahead runs on its full cache first
      peak = std::max(peak, e * layers * (read + lookahead));
    else  // layer-major: the compacted layers so far beside one full layer (+ lookahead rows)
      peak = std::max(peak, e * ((layers - 1) * kept + read + lookahead));
  }
  if (spec.needs_draft && draft) peak += draft->entry_bytes() * draft->layers * (n + lookahead);
  plan.peak_bytes = peak;
  return plan;
}

}  // namespace dapx
