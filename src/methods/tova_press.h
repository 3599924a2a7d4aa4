#pragma once
// TOVA (Oren et al. 2024, kvpress tova_press.py): a key's score is the attention the last
// prompt query gives it, averaged over the KV group's query heads (kvpress averages over all
// heads of the layer; dapx keeps GQA groups apart, like its other presses). No pooling.
#include "methods/kv_press.h"

namespace dapx {

class TOVAPress : public ScorerPress {
 public:
  using ScorerPress::ScorerPress;
  at::Tensor scores(const LayerContext& ctx) const override;
};

}  // namespace dapx
