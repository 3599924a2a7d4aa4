#include "methods/observation_press.h"

#include "model/attention.h"

namespace dapx {

at::Tensor ObservationPress::scores(const LayerContext& ctx) const {
  const at::Tensor pos = at::tensor(ctx.plan.obs_positions, at::kLong).to(ctx.keys.device());
  const at::Tensor attn = observation_attention(ctx.obs_queries, ctx.keys, pos);
  const at::Tensor scored = attn.narrow(-1, 0, ctx.plan.scored_end);  // softmax over all keys
  return pool_scores(reduce_over_group(scored, ctx.keys.size(0), p_.reduce), p_.kernel, p_.pool,
                     PoolPadding::Symmetric);
}

}  // namespace dapx
