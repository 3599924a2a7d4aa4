#pragma once
// StreamingLLM as a scorer: the first `sinks` keys score highest, then the most recent ones,
// so the top `budget` are the sinks plus the last (budget - sinks) keys (with no window). As a
// scorer it can be wrapped (AdaKV) like any other press.
#include "methods/kv_press.h"

namespace dapx {

class StreamingPress : public ScorerPress {
 public:
  StreamingPress(int64_t sinks, std::vector<int64_t> layer_budgets)
      : ScorerPress(std::move(layer_budgets)), sinks_(sinks) {}
  at::Tensor scores(const LayerContext& ctx) const override;

 private:
  int64_t sinks_;
};

}  // namespace dapx
