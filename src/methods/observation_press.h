#pragma once
// SnapKV's press (and SpecKV's and LAQ's: only the observation rows differ): the attention of
// the observation rows over the scored keys, reduced over each KV group's heads x rows, pooled
// along the keys.
#include "methods/kv_press.h"
#include "scoring/scoring.h"

namespace dapx {

struct ScoreParams {
  int64_t window = 32;
  int64_t kernel = 7;
  Pool pool = Pool::Max;
  Reduce reduce = Reduce::Max;
};

class ObservationPress : public ScorerPress {
 public:
  ObservationPress(const ScoreParams& p, std::vector<int64_t> layer_budgets)
      : ScorerPress(std::move(layer_budgets)), p_(p) {}
  at::Tensor scores(const LayerContext& ctx) const override;

 protected:
  ScoreParams p_;
};

}  // namespace dapx
