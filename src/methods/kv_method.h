#pragma once
// A KV method made of a press: the prompt runs through the target layer by layer and the press
// picks each head's entries (compressed_prefill). What varies between SnapKV, H2O, TOVA,
// KNorm, StreamingLLM, PyramidKV and AdaKV is the press, its observation rows, the window, the
// per-layer budgets and the AdaKV wrapper: a recipe, not a new method class.
#include <functional>
#include <memory>
#include <vector>

#include "methods/kv_press.h"
#include "methods/method_args.h"
#include "methods/observation_press.h"

namespace dapx {

struct KVRecipe {
  // The press for one prompt, given each layer's budget (window included).
  std::function<std::unique_ptr<ScorerPress>(std::vector<int64_t> layer_budgets)> press;
  Observe observe = Observe::Window;
  int64_t window = 0;     // the last `window` prompt tokens are always kept
  bool pyramid = false;   // PyramidKV's per-layer budgets (parameter pyramid_beta)
  bool adaptive = false;  // AdaKV's per-head budgets
};

// Reads parameter `budget` (entries kept per head, window included).
std::unique_ptr<Method> make_kv_method(const MethodArgs& args, KVRecipe recipe);

// The observation-scoring parameters (window, kernel, pool, reduce; those the method does not
// declare keep `defaults`), checked: budget > window, odd kernel (pooling pads kernel / 2 on
// each side).
ScoreParams score_params(const MethodArgs& args, const ScoreParams& defaults = {});
Pool parse_pool(const std::string& name);
Reduce parse_reduce(const std::string& name);

}  // namespace dapx
