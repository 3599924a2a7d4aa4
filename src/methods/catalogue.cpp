#include "methods/catalogue.h"

#include "methods/h2o_press.h"
#include "methods/knorm_press.h"
#include "methods/kv_method.h"
#include "methods/observation_press.h"
#include "methods/prompt_methods.h"
#include "methods/speckv.h"
#include "methods/streaming_press.h"
#include "methods/tova_press.h"
#include "util/error.h"

namespace dapx {
namespace {

constexpr double kTokens = 16777216;  // upper bound of every token count

ParamSpec integer(std::string name, nlohmann::json def, double min, double max, std::string help) {
  return {std::move(name), ParamType::Int, std::move(def), min, max, {}, std::move(help)};
}
ParamSpec choice(std::string name, std::string def, std::vector<std::string> choices,
                 std::string help) {
  return {std::move(name),    ParamType::Choice, std::move(def), 0, 0,
          std::move(choices), std::move(help)};
}

// ---- parameters shared by several methods ------------------------------------------------
ParamSpec kv_budget_param() {
  return integer("budget", 256, 1, kTokens,
                 "KV entries kept per head for the prompt, window included");
}
ParamSpec window_param(int64_t def, const std::string& help) {
  return integer("window", def, 1, kTokens, help);
}
ParamSpec kernel_param(int64_t def) {
  return integer("kernel", def, 1, 1023,
                 "pooling kernel along the keys (odd: padded kernel/2 each side)");
}
ParamSpec pool_param(const std::string& def) {
  return choice("pool", def, {"max", "avg", "none"}, "pooling of the key scores");
}
ParamSpec reduce_param() {
  return choice("reduce", "max", {"max", "mean"}, "reduction over a KV group's heads and rows");
}
std::vector<ParamSpec> observation_params() {
  return {kv_budget_param(),
          window_param(32, "last prompt tokens: their queries observe, always kept"),
          kernel_param(7), pool_param("max"), reduce_param()};
}
std::vector<ParamSpec> lookahead_params(const std::string& source) {
  std::vector<ParamSpec> p = observation_params();
  p.push_back(
      integer("lookahead", nullptr, 0, kTokens,
              source + " tokens generated to observe (default: the request's max_new_tokens)"));
  p.push_back(choice("prefill", "auto", {"auto", "dense", "sparse"},
                     "target prefill: sparse when prompt + lookahead > vertical + band (auto)"));
  p.push_back(integer("vertical", 2048, 1, kTokens, "sparse prefill: top keys per head (V)"));
  p.push_back(integer("band", 2048, 1, kTokens, "sparse prefill: local causal band (S)"));
  return p;
}
std::vector<ParamSpec> prompt_params() {
  return {integer("budget", 2048, 1, kTokens, "prompt tokens kept, window included"),
          window_param(64, "last prompt tokens, always kept")};
}
std::vector<ParamSpec> attention_prompt_params(int64_t lookahead, double min_lookahead) {
  std::vector<ParamSpec> p = prompt_params();
  p[1].help += "; their queries observe";
  p.push_back(integer("kernel", 64, 1, 4096, "centred pooling along the prompt"));
  p.push_back(pool_param("max"));
  p.push_back(reduce_param());
  p.push_back(integer("lookahead", lookahead, min_lookahead, kTokens,
                      "tokens the observing model generates (L); each decode step observes"));
  p.push_back(integer("neighbors", 64, 1, kTokens, "positions kept around each top position (N)"));
  p.push_back(
      integer("first_layer", 8, 0, 1024, "first observing layer (s), clamped to the depth"));
  return p;
}

// ---- factories ---------------------------------------------------------------------------
using Make = std::function<std::unique_ptr<Method>(const MethodArgs&)>;

// A KV method whose press observes with SnapKV's scoring.
template <typename Press>
Make observation_method(Observe observe, ScoreParams defaults, bool pyramid, bool adaptive) {
  return [=](const MethodArgs& a) {
    const ScoreParams sp = score_params(a, defaults);
    KVRecipe r;
    r.press = [sp](std::vector<int64_t> b) { return std::make_unique<Press>(sp, std::move(b)); };
    r.observe = observe;
    r.window = sp.window;
    r.pyramid = pyramid;
    r.adaptive = adaptive;
    return make_kv_method(a, std::move(r));
  };
}

// A KV method whose press needs only its budgets.
template <typename Press>
Make plain_press_method(Observe observe) {
  return [=](const MethodArgs& a) {
    KVRecipe r;
    r.press = [](std::vector<int64_t> b) { return std::make_unique<Press>(std::move(b)); };
    r.observe = observe;
    r.window = a.integer("window");
    return make_kv_method(a, std::move(r));
  };
}

std::unique_ptr<Method> make_streaming(const MethodArgs& a) {
  const int64_t sinks = a.integer("sinks"), budget = a.integer("budget");
  if (sinks >= budget)
    a.fail("sinks (" + std::to_string(sinks) + ") must be below budget (" + std::to_string(budget) +
           ")");
  KVRecipe r;
  r.press = [sinks](std::vector<int64_t> b) {
    return std::make_unique<StreamingPress>(sinks, std::move(b));
  };
  r.observe = Observe::None;
  return make_kv_method(a, std::move(r));
}

std::unique_ptr<Method> make_speckv_pc(const MethodArgs& a) {
  // SpecKV on the compressed prompt, with SpecKV's own window (32).
  const int64_t kv_budget = a.integer("kv_budget");
  const nlohmann::json kv = {{"budget", kv_budget},
                             {"prefill", a.text("prefill")},
                             {"vertical", a.integer("vertical")},
                             {"band", a.integer("band")}};
  if (kv_budget <= 32)
    a.fail("kv_budget (" + std::to_string(kv_budget) +
           ") must be greater than SpecKV's window (32)");
  return make_prompt_method(a, PromptSource::Draft, make_method("speckv", kv, a.options()));
}

std::vector<MethodSpec> build() {
  const ScoreParams snap;  // window 32, kernel 7, max pool, max reduction
  ScoreParams h2o;
  h2o.kernel = 1;
  h2o.pool = Pool::None;
  std::vector<ParamSpec> h2o_params = {kv_budget_param(),
                                       window_param(32, "last prompt tokens, always kept"),
                                       kernel_param(1), pool_param("none")};
  std::vector<ParamSpec> pyramid = observation_params();
  pyramid.push_back(
      {"pyramid_beta",
       ParamType::Float,
       20.0,
       1,
       1e6,
       {},
       "ratio of the deepest layer's selected budget to the first's is 1:(2 beta - 1)"});
  std::vector<ParamSpec> cascade = attention_prompt_params(8, 1);
  cascade.push_back(integer("kv_budget", 256, 1, kTokens,
                            "SpecKV's KV entries per head on the compressed prompt"));
  for (const ParamSpec& p : lookahead_params("draft"))
    if (p.name == "prefill" || p.name == "vertical" || p.name == "band") cascade.push_back(p);
  std::vector<ParamSpec> random = prompt_params();
  random.push_back(
      integer("selection_seed", 0, 0, 9007199254740991.0, "seed of the random choice"));

  return {
      {"full",
       Family::KV,
       false,
       "no compression: the reference point",
       {},
       [](const MethodArgs&) { return std::make_unique<FullKV>(); }},
      {"streaming",
       Family::KV,
       false,
       "StreamingLLM: the first sinks and the most recent entries",
       {kv_budget_param(), integer("sinks", 4, 0, kTokens, "first prompt tokens always kept")},
       make_streaming},
      {"h2o", Family::KV, false, "H2O: keys by the attention every prompt query gives them",
       h2o_params, observation_method<HeavyHitterPress>(Observe::All, h2o, false, false),
       /*reuses_prefix_cache=*/false},
      {"snapkv", Family::KV, false, "SnapKV: keys by the attention of the last prompt tokens",
       observation_params(),
       observation_method<ObservationPress>(Observe::Window, snap, false, false)},
      {"pyramidkv", Family::KV, false, "PyramidKV: SnapKV with budgets decreasing with depth",
       pyramid, observation_method<ObservationPress>(Observe::Window, snap, true, false)},
      {"adakv", Family::KV, false, "AdaKV: SnapKV scores, a layer's budget shared among its heads",
       observation_params(),
       observation_method<ObservationPress>(Observe::Window, snap, false, true)},
      {"tova",
       Family::KV,
       false,
       "TOVA: keys by the attention of the last prompt token alone",
       {kv_budget_param(), window_param(32, "last prompt tokens, always kept")},
       plain_press_method<TOVAPress>(Observe::Last)},
      {"knorm",
       Family::KV,
       false,
       "KNorm: the keys with the lowest L2 norm",
       {kv_budget_param(), window_param(32, "last prompt tokens, always kept")},
       plain_press_method<KNormPress>(Observe::None)},
      {"speckv", Family::KV, true, "SpecKV: the draft's lookahead observes the target's prompt KV",
       lookahead_params("draft"),
       [](const MethodArgs& a) { return make_lookahead_method(a, true); }},
      {"laq", Family::KV, false, "LAQ: the target's own lookahead observes (full KV first)",
       lookahead_params("target"),
       [](const MethodArgs& a) { return make_lookahead_method(a, false); }},
      {"specpc", Family::Prompt, true, "SpecPC: the draft's attention picks the prompt tokens",
       attention_prompt_params(1, 1),
       [](const MethodArgs& a) { return make_prompt_method(a, PromptSource::Draft); }},
      {"speckv-pc", Family::Cascade, true, "SpecPC, then SpecKV on the compressed prompt", cascade,
       make_speckv_pc},
      {"target-pc", Family::Prompt, false, "SpecPC's selection from the target's own attention",
       attention_prompt_params(1, 0),
       [](const MethodArgs& a) { return make_prompt_method(a, PromptSource::Target); }},
      {"ppl-pc", Family::Prompt, true, "prompt tokens the draft finds least predictable",
       prompt_params(),
       [](const MethodArgs& a) { return make_prompt_method(a, PromptSource::Perplexity); }},
      {"random-pc", Family::Prompt, false, "random prompt tokens (a floor for the others)", random,
       [](const MethodArgs& a) { return make_prompt_method(a, PromptSource::Random); }},
  };
}

}  // namespace

std::string family_name(Family f) {
  switch (f) {
    case Family::KV:
      return "kv";
    case Family::Prompt:
      return "prompt";
    case Family::Cascade:
      return "cascade";
  }
  return "";
}

const ParamSpec* MethodSpec::param(const std::string& p) const {
  for (const ParamSpec& s : params)
    if (s.name == p) return &s;
  return nullptr;
}

std::string MethodSpec::budget_param() const {
  if (family == Family::Cascade) return "kv_budget";
  return param("budget") ? "budget" : "";
}

const std::vector<MethodSpec>& method_catalogue() {
  static const std::vector<MethodSpec> table = build();  // immutable once built
  return table;
}

std::vector<std::string> method_names() {
  std::vector<std::string> out;
  for (const MethodSpec& m : method_catalogue()) out.push_back(m.name);
  return out;
}

const MethodSpec& method_spec(const std::string& name) {
  for (const MethodSpec& m : method_catalogue())
    if (m.name == name) return m;
  std::string known;
  for (const MethodSpec& m : method_catalogue()) known += (known.empty() ? "" : ", ") + m.name;
  throw Error("unknown method '" + name + "'; available: " + known);
}

std::unique_ptr<Method> make_method(const std::string& name, const nlohmann::json& params,
                                    const MethodOptions& options) {
  const MethodSpec& spec = method_spec(name);
  const MethodArgs args(name, spec.params, params, options);
  if (spec.needs_draft && !options.draft)
    args.fail("needs a draft model (same tokenizer as the target)");
  return spec.make(args);
}

nlohmann::json catalogue_json() {
  nlohmann::json out = nlohmann::json::array();
  for (const MethodSpec& m : method_catalogue()) {
    nlohmann::json params = nlohmann::json::array();
    for (const ParamSpec& p : m.params) {
      nlohmann::json j = {{"name", p.name}, {"default", p.default_value}, {"help", p.help}};
      if (p.type == ParamType::Choice) {
        j["type"] = "choice";
        j["choices"] = p.choices;
      } else {
        j["type"] = p.type == ParamType::Int ? "integer" : "number";
        j["min"] = p.min;
        j["max"] = p.max;
      }
      params.push_back(j);
    }
    out.push_back({{"name", m.name},
                   {"family", family_name(m.family)},
                   {"needs_draft", m.needs_draft},
                   {"reuses_prefix_cache", m.reuses_prefix_cache},
                   {"description", m.description},
                   {"params", params}});
  }
  return out;
}

}  // namespace dapx
