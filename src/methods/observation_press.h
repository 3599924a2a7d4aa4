#pragma once
// The presses of the KV baselines. ObservationPress is SnapKV's scoring (and SpecKV's, LAQ's:
// only the observation rows differ): observation attention over the scored keys, reduced over
// each KV group's heads x rows, pooled, top of the layer's budget plus the protected window.
#include <memory>
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
  at::Tensor select_scored(const LayerContext& ctx, const at::Tensor& scores) override;
  // [kv_heads, scored_end] importance of the scored keys.
  at::Tensor scores(const LayerContext& ctx) const override;

 protected:
  ScoreParams p_;
  std::vector<int64_t> budgets_;
};

// H2O: the observation rows are every prompt query; their attention is accumulated per key
// (on the CPU by the tiled kernel, elsewhere in row blocks: never an n x n matrix), then the
// same selection.
class HeavyHitterPress : public ObservationPress {
 public:
  using ObservationPress::ObservationPress;
  at::Tensor scores(const LayerContext& ctx) const override;
};

// AdaKV over any observation scorer: a layer keeps kv_heads x (budget - window) scored
// entries in total, shared among its heads by score (with AdaKV's per-head safeguard), plus
// each head's window. Heads keep different counts: rows are padded with -1 (masked slots).
class AdaptivePress : public KVPress {
 public:
  AdaptivePress(std::unique_ptr<ObservationPress> scorer, std::vector<int64_t> layer_budgets)
      : scorer_(std::move(scorer)), budgets_(std::move(layer_budgets)) {}
  at::Tensor select(const LayerContext& ctx) override;

 private:
  std::unique_ptr<ObservationPress> scorer_;
  std::vector<int64_t> budgets_;
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
