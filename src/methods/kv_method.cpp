#include "methods/kv_method.h"

#include "methods/adakv_press.h"
#include "util/error.h"

namespace dapx {
namespace {

class PressMethod : public Method {
 public:
  PressMethod(const MethodArgs& args, KVRecipe recipe)
      : name_(args.method()),
        budget_(args.integer("budget")),
        beta_(recipe.pyramid ? args.number("pyramid_beta") : 0.0),
        record_(args.options().record_selection),
        recipe_(std::move(recipe)) {
    if (budget_ <= recipe_.window)
      args.fail("budget (" + std::to_string(budget_) + ") must be greater than window (" +
                std::to_string(recipe_.window) + "): the window alone would fill the cache");
  }
  std::string name() const override { return name_; }

  PrefillResult prefill(const Transformer& t, const PrefillRequest& req) override {
    const int64_t n = static_cast<int64_t>(req.prompt.size());
    if (n <= budget_) return uncompressed_prefill(t, req, record_);
    CompressionPlan plan;
    plan.tokens = req.prompt;
    plan.prompt_len = n;
    plan.window_begin = n - recipe_.window;
    plan.window_end = n;
    plan.scored_end = plan.window_begin;
    plan.prefix_cache = req.prefix_cache;
    const int64_t first_row = recipe_.observe == Observe::All      ? 0
                              : recipe_.observe == Observe::Window ? n - recipe_.window
                              : recipe_.observe == Observe::Last   ? n - 1
                                                                   : n;
    for (int64_t i = first_row; i < n; ++i) plan.obs_positions.push_back(i);
    const int layers = t.config().num_layers;
    std::vector<int64_t> budgets = recipe_.pyramid
                                       ? pyramid_budgets(layers, budget_, recipe_.window, beta_, n)
                                       : std::vector<int64_t>(layers, budget_);
    std::unique_ptr<ScorerPress> scorer = recipe_.press(std::move(budgets));
    if (!recipe_.adaptive) return compressed_prefill(t, plan, *scorer, req.max_new_tokens, record_);
    AdaptivePress press(std::move(scorer));
    return compressed_prefill(t, plan, press, req.max_new_tokens, record_);
  }

 private:
  std::string name_;
  int64_t budget_;
  double beta_;
  bool record_;
  KVRecipe recipe_;
};

}  // namespace

std::unique_ptr<Method> make_kv_method(const MethodArgs& args, KVRecipe recipe) {
  return std::make_unique<PressMethod>(args, std::move(recipe));
}

Pool parse_pool(const std::string& name) {
  if (name == "max") return Pool::Max;
  if (name == "avg") return Pool::Avg;
  if (name == "none") return Pool::None;
  throw Error("unknown pool '" + name + "'; use max, avg or none");
}

Reduce parse_reduce(const std::string& name) {
  if (name == "max") return Reduce::Max;
  if (name == "mean") return Reduce::Mean;
  throw Error("unknown reduce '" + name + "'; use max or mean");
}

ScoreParams score_params(const MethodArgs& a, const ScoreParams& defaults) {
  ScoreParams s = defaults;
  if (a.has("window")) s.window = a.integer("window");
  if (a.has("kernel")) s.kernel = a.integer("kernel");
  if (a.has("pool")) s.pool = parse_pool(a.text("pool"));
  if (a.has("reduce")) s.reduce = parse_reduce(a.text("reduce"));
  const int64_t budget = a.integer("budget");
  if (budget <= s.window)
    a.fail("budget (" + std::to_string(budget) + ") must be greater than window (" +
           std::to_string(s.window) + "): the window alone would fill the cache");
  if (s.kernel % 2 == 0)
    a.fail("kernel must be odd (pooling pads kernel / 2 on each side), got " +
           std::to_string(s.kernel));
  return s;
}

}  // namespace dapx
