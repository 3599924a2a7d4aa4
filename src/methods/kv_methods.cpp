// The KV baselines: full, streaming, h2o, snapkv, pyramidkv. Each is a plan (observation rows,
// scored keys, window) plus a press; compressed_prefill does the rest.
#include <memory>

#include "methods/observation_press.h"
#include "methods/registry.h"
#include "util/error.h"

namespace dapx {
namespace {

enum class Kind { Streaming, H2O, SnapKV, PyramidKV, AdaKV };

class KVBaseline : public Method {
 public:
  KVBaseline(std::string name, Kind kind, const MethodParams& p)
      : name_(std::move(name)), kind_(kind), p_(p) {
    if (p.budget < 1) throw Error("--budget must be >= 1 (KV entries kept per head)");
    if (kind == Kind::Streaming) {
      if (p.sinks < 0 || p.sinks >= p.budget)
        throw Error("--sinks (" + std::to_string(p.sinks) + ") must be >= 0 and below --budget (" +
                    std::to_string(p.budget) + ")");
      return;
    }
    ScoreParams defaults;
    if (kind == Kind::H2O) {
      defaults.kernel = 1;
      defaults.pool = Pool::None;
    }
    sp_ = score_params(p, defaults);
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
    if (n <= p_.budget) return uncompressed_prefill(t, req, p_.record_selection);
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
  std::string name_;
  Kind kind_;
  MethodParams p_;
  ScoreParams sp_;
};

}  // namespace

Pool parse_pool(const std::string& name, Pool fallback) {
  if (name.empty()) return fallback;
  if (name == "max") return Pool::Max;
  if (name == "avg") return Pool::Avg;
  if (name == "none") return Pool::None;
  throw Error("unknown --pool '" + name + "'; use max, avg or none");
}

Reduce parse_reduce(const std::string& name, Reduce fallback) {
  if (name.empty()) return fallback;
  if (name == "max") return Reduce::Max;
  if (name == "mean") return Reduce::Mean;
  throw Error("unknown --reduce '" + name + "'; use max or mean");
}

ScoreParams score_params(const MethodParams& p, const ScoreParams& defaults) {
  ScoreParams s = defaults;
  if (p.window >= 0) s.window = p.window;
  if (p.kernel >= 0) s.kernel = p.kernel;
  s.pool = parse_pool(p.pool, s.pool);
  s.reduce = parse_reduce(p.reduce, s.reduce);
  if (p.budget < 1) throw Error("--budget must be >= 1 (KV entries kept per head)");
  if (s.window < 1) throw Error("--window must be >= 1");
  if (p.budget <= s.window)
    throw Error("--budget (" + std::to_string(p.budget) + ") must be larger than --window (" +
                std::to_string(s.window) + "): the window alone would fill the cache");
  if (s.kernel < 1 || s.kernel % 2 == 0)
    throw Error(
        "--kernel must be a positive odd number (pooling pads kernel/2 on each side), got " +
        std::to_string(s.kernel));
  return s;
}

std::unique_ptr<Method> make_lookahead_method(const std::string& name, const MethodParams& p);
std::unique_ptr<Method> make_prompt_method(const std::string& name, const MethodParams& p);

std::vector<std::string> method_names() {
  return {"full", "streaming", "h2o",       "snapkv",    "pyramidkv", "adakv",    "speckv",
          "laq",  "specpc",    "speckv-pc", "target-pc", "ppl-pc",    "random-pc"};
}

bool is_prompt_method(const std::string& name) {
  return name == "specpc" || name == "speckv-pc" || name == "target-pc" || name == "ppl-pc" ||
         name == "random-pc";
}

bool uses_draft(const std::string& name) {
  return name == "speckv" || name == "specpc" || name == "speckv-pc" || name == "ppl-pc";
}

void apply_method_params(const std::string& method, const nlohmann::json& params, MethodParams& p) {
  if (!params.is_object())
    throw Error("parameters of method '" + method + "' must be a JSON object");
  for (const auto& [key, value] : params.items()) {
    const auto fail = [&](const std::string& want) {
      throw Error("method '" + method + "': parameter '" + key + "' must be " + want + ", got " +
                  value.dump());
    };
    const auto integer = [&](int64_t& field) {
      if (!value.is_number_integer()) fail("an integer");
      field = value.get<int64_t>();
    };
    const auto text = [&](std::string& field) {
      if (!value.is_string()) fail("a string");
      field = value.get<std::string>();
    };
    if (key == "budget")
      integer(p.budget);
    else if (key == "kv_budget")
      integer(p.kv_budget);
    else if (key == "window")
      integer(p.window);
    else if (key == "kernel")
      integer(p.kernel);
    else if (key == "sinks")
      integer(p.sinks);
    else if (key == "lookahead")
      integer(p.lookahead);
    else if (key == "vertical")
      integer(p.vertical);
    else if (key == "band")
      integer(p.band);
    else if (key == "neighbors")
      integer(p.neighbors);
    else if (key == "first_layer")
      integer(p.first_layer);
    else if (key == "pool")
      text(p.pool);
    else if (key == "reduce")
      text(p.reduce);
    else if (key == "prefill")
      text(p.prefill);
    else if (key == "pyramid_beta") {
      if (!value.is_number()) fail("a number");
      p.pyramid_beta = value.get<double>();
    } else if (key == "seed") {
      if (!value.is_number_integer() || value.get<int64_t>() < 0) fail("a non-negative integer");
      p.seed = value.get<uint64_t>();
    } else {
      throw Error("method '" + method + "' has no parameter '" + key +
                  "'; known: budget, kv_budget, window, kernel, pool, reduce, sinks, "
                  "pyramid_beta, lookahead, prefill, vertical, band, neighbors, first_layer, seed");
    }
  }
}

std::unique_ptr<Method> make_method(const std::string& name, const MethodParams& user) {
  const bool prompt_method = is_prompt_method(name);
  MethodParams p = user;
  if (p.budget == -1) p.budget = prompt_method ? 2048 : 256;
  if (prompt_method) return make_prompt_method(name, p);
  if (name == "full") return std::make_unique<FullKV>();
  if (name == "streaming") return std::make_unique<KVBaseline>(name, Kind::Streaming, p);
  if (name == "h2o") return std::make_unique<KVBaseline>(name, Kind::H2O, p);
  if (name == "snapkv") return std::make_unique<KVBaseline>(name, Kind::SnapKV, p);
  if (name == "pyramidkv") return std::make_unique<KVBaseline>(name, Kind::PyramidKV, p);
  if (name == "adakv") return std::make_unique<KVBaseline>(name, Kind::AdaKV, p);
  if (name == "speckv" || name == "laq") return make_lookahead_method(name, p);
  std::string known;
  for (const auto& m : method_names()) known += (known.empty() ? "" : ", ") + m;
  throw Error("unknown --method '" + name + "'; available: " + known);
}

}  // namespace dapx
