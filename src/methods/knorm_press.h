#pragma once
// KNorm (Devoto et al. 2024, kvpress knorm_press.py): keys with a low L2 norm tend to draw
// more attention, so a key scores minus its norm. Reads keys only: no query is computed.
#include "methods/kv_press.h"

namespace dapx {

class KNormPress : public ScorerPress {
 public:
  using ScorerPress::ScorerPress;
  at::Tensor scores(const LayerContext& ctx) const override;
};

}  // namespace dapx
