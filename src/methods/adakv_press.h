#pragma once
// AdaKV, a wrapper over any scorer press: a layer keeps kv_heads x (budget - window) scored
// entries in total, shared among its heads by score (with AdaKV's per-head safeguard), plus
// each head's window. Heads keep different counts: rows are padded with -1 (masked slots).
#include <memory>

#include "methods/kv_press.h"

namespace dapx {

class AdaptivePress : public KVPress {
 public:
  explicit AdaptivePress(std::unique_ptr<ScorerPress> scorer) : scorer_(std::move(scorer)) {}
  at::Tensor scores(const LayerContext& ctx) const override { return scorer_->scores(ctx); }
  at::Tensor select(const LayerContext& ctx) override { return select_scored(ctx, scores(ctx)); }
  at::Tensor select_scored(const LayerContext& ctx, const at::Tensor& scores) override;

 private:
  std::unique_ptr<ScorerPress> scorer_;
};

}  // namespace dapx
