#include "methods/streaming_press.h"

namespace dapx {

at::Tensor StreamingPress::scores(const LayerContext& ctx) const {
  const int64_t n = ctx.plan.scored_end;
  // Position i scores i (recent is better); sinks score above every position.
  at::Tensor s = at::arange(n, at::TensorOptions().dtype(at::kFloat));
  s.narrow(0, 0, std::min(sinks_, n)).fill_(static_cast<float>(2 * n + 1));
  return s.unsqueeze(0).expand({ctx.keys.size(0), n}).contiguous().to(ctx.keys.device());
}

}  // namespace dapx
