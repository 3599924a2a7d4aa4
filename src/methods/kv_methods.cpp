// The KV baselines: full, streaming, h2o, snapkv, pyramidkv. Each is a plan (observation rows,
// scored keys, window) plus a press; compressed_prefill does the rest.
#include <memory>

#include "methods/observation_press.h"
#include "methods/registry.h"
#include "util/error.h"

namespace dapx {
namespace {

Pool parse_pool(const std::string& s, Pool fallback) {
  if (s.empty()) return fallback;
  if (s == "max") return Pool::Max;
  if (s == "avg") return Pool::Avg;
  if (s == "none") return Pool::None;
  throw Error("unknown --pool '" + s + "'; use max, avg or none");
}

Reduce parse_reduce(const std::string& s, Reduce fallback) {
  if (s.empty()) return fallback;
  if (s == "max") return Reduce::Max;
  if (s == "mean") return Reduce::Mean;
  throw Error("unknown --reduce '" + s + "'; use max or mean");
}

enum class Kind { Streaming, H2O, SnapKV, PyramidKV, AdaKV };

class KVBaseline : public Method {
 public:
  KVBaseline(std::string name, Kind kind, const MethodParams& p)
      : name_(std::move(name)), kind_(kind), p_(p) {
    sp_.window = p.window >= 0 ? p.window : 32;
    sp_.kernel = p.kernel >= 0 ? p.kernel : (kind == Kind::H2O ? 1 : 7);
    sp_.pool = parse_pool(p.pool, kind == Kind::H2O ? Pool::None : Pool::Max);
    sp_.reduce = parse_reduce(p.reduce, Reduce::Max);
    if (p.budget < 1) throw Error("--budget must be >= 1 (KV entries kept per head)");
    if (kind == Kind::Streaming) {
      if (p.sinks < 0 || p.sinks >= p.budget)
        throw Error("--sinks (" + std::to_string(p.sinks) + ") must be >= 0 and below --budget (" +
                    std::to_string(p.budget) + ")");
      return;
    }
    if (sp_.window < 1) throw Error("--window must be >= 1");
    if (p.budget <= sp_.window)
      throw Error("--budget (" + std::to_string(p.budget) + ") must be larger than --window (" +
                  std::to_string(sp_.window) + "): the window alone would fill the cache");
    if (sp_.kernel < 1 || sp_.kernel % 2 == 0)
      throw Error(
          "--kernel must be a positive odd number (pooling pads kernel/2 on each side), got " +
          std::to_string(sp_.kernel));
  }
  std::string name() const override { return name_; }

  PrefillResult prefill(const Transformer& t, const PrefillRequest& req) override {
    const int64_t n = static_cast<int64_t>(req.prompt.size());
    CompressionPlan plan;
    plan.tokens = req.prompt;
    plan.prompt_len = n;
    plan.window_begin = kind_ == Kind::Streaming ? n : n - sp_.window;
    plan.window_end = n;
    plan.scored_end = plan.window_begin;
    if (n <= p_.budget) return uncompressed(t, req, plan);  // nothing to drop
    if (kind_ == Kind::Streaming) {
      StreamingPress press(p_.sinks, p_.budget);
      return compressed_prefill(t, plan, press, req.max_new_tokens, p_.record_selection);
    }
    if (kind_ == Kind::H2O) {
      for (int64_t i = 0; i < n; ++i) plan.obs_positions.push_back(i);
      HeavyHitterPress press(sp_, std::vector<int64_t>(t.config().num_layers, p_.budget));
      return compressed_prefill(t, plan, press, req.max_new_tokens, p_.record_selection);
    }
    for (int64_t i = n - sp_.window; i < n; ++i) plan.obs_positions.push_back(i);
    const int layers = t.config().num_layers;
    std::vector<int64_t> budgets =
        kind_ == Kind::PyramidKV
            ? pyramid_budgets(layers, p_.budget, sp_.window, p_.pyramid_beta, n)
            : std::vector<int64_t>(layers, p_.budget);
    if (kind_ == Kind::AdaKV) {
      AdaptivePress press(std::make_unique<ObservationPress>(sp_, budgets), budgets);
      return compressed_prefill(t, plan, press, req.max_new_tokens, p_.record_selection);
    }
    ObservationPress press(sp_, budgets);
    return compressed_prefill(t, plan, press, req.max_new_tokens, p_.record_selection);
  }

 private:
  // Short prompts keep everything; the selection dump still lists every position.
  PrefillResult uncompressed(const Transformer& t, const PrefillRequest& req,
                             const CompressionPlan& plan) {
    PrefillResult r = FullKV().prefill(t, req);
    if (p_.record_selection) {
      nlohmann::json layers = nlohmann::json::array();
      std::vector<int64_t> all;
      for (int64_t i = 0; i < plan.prompt_len; ++i) all.push_back(i);
      for (int l = 0; l < t.config().num_layers; ++l)
        layers.push_back(
            {{"layer", l},
             {"kept", std::vector<std::vector<int64_t>>(t.config().num_kv_heads, all)}});
      r.info["layers"] = layers;
    }
    return r;
  }
  std::string name_;
  Kind kind_;
  MethodParams p_;
  ScoreParams sp_;
};

}  // namespace

std::vector<std::string> method_names() {
  return {"full", "streaming", "h2o", "snapkv", "pyramidkv"};
}

std::unique_ptr<Method> make_method(const std::string& name, const MethodParams& p) {
  if (name == "full") return std::make_unique<FullKV>();
  if (name == "streaming") return std::make_unique<KVBaseline>(name, Kind::Streaming, p);
  if (name == "h2o") return std::make_unique<KVBaseline>(name, Kind::H2O, p);
  if (name == "snapkv") return std::make_unique<KVBaseline>(name, Kind::SnapKV, p);
  if (name == "pyramidkv") return std::make_unique<KVBaseline>(name, Kind::PyramidKV, p);
  if (name == "adakv") return std::make_unique<KVBaseline>(name, Kind::AdaKV, p);
  std::string known;
  for (const auto& m : method_names()) known += (known.empty() ? "" : ", ") + m;
  throw Error("unknown --method '" + name + "'; available: " + known);
}

}  // namespace dapx
