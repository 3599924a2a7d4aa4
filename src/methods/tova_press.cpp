#include "methods/tova_press.h"

#include "scoring/scoring.h"

namespace dapx {

at::Tensor TOVAPress::scores(const LayerContext& ctx) const {
  const at::Tensor pos = at::tensor(ctx.plan.obs_positions, at::kLong).to(ctx.keys.device());
  const at::Tensor attn = observation_attention(ctx.obs_queries, ctx.keys, pos);
  return reduce_over_group(attn.narrow(-1, 0, ctx.plan.scored_end), ctx.keys.size(0), Reduce::Mean);
}

}  // namespace dapx
