#pragma once
// The presses of the KV baselines. ObservationPress is SnapKV's scoring (and SpecKV's, LAQ's:
// only the observation rows differ): observation attention over the scored keys, reduced over
// each KV group's heads x rows, pooled, top of the layer's budget plus the protected window.
#include <vector>

#include "methods/kv_press.h"
#include "scoring/scoring.h"

namespace dapx {

struct ScoreParams {
  int64_t window = 32;
  int64_t kernel = 7;
  Pool pool = Pool::Max;
  Reduce reduce = Reduce::Max;
};

class ObservationPress : public KVPress {
 public:
  // layer_budgets[l]: entries kept per head in layer l, window included.
  ObservationPress(const ScoreParams& p, std::vector<int64_t> layer_budgets);
  at::Tensor select(const LayerContext& ctx) override;

 protected:
  // [kv_heads, scored_end] importance of the scored keys.
  virtual at::Tensor scores(const LayerContext& ctx) const;
  ScoreParams p_;
  std::vector<int64_t> budgets_;
};

// H2O: the observation rows are every prompt query; attention is accumulated in row blocks
// (never an n x n matrix), then the same selection.
class HeavyHitterPress : public ObservationPress {
 public:
  using ObservationPress::ObservationPress;

 protected:
  at::Tensor scores(const LayerContext& ctx) const override;
};

// StreamingLLM: the first `sinks` entries and the most recent ones; no scoring.
class StreamingPress : public KVPress {
 public:
  StreamingPress(int64_t sinks, int64_t budget) : sinks_(sinks), budget_(budget) {}
  at::Tensor select(const LayerContext& ctx) override;

 private:
  int64_t sinks_, budget_;
};

}  // namespace dapx
