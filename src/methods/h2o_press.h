#pragma once
// H2O: every prompt query observes; a key's score is the attention it received, summed over
// the rows and the KV group's heads (accumulated, never an n x n matrix), then pooled (H2O's
// default: no pooling).
#include "methods/observation_press.h"

namespace dapx {

class HeavyHitterPress : public ObservationPress {
 public:
  using ObservationPress::ObservationPress;
  at::Tensor scores(const LayerContext& ctx) const override;
};

}  // namespace dapx
