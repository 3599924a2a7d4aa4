#include "methods/h2o_press.h"

#include <algorithm>

#include "model/attention.h"

namespace dapx {

at::Tensor HeavyHitterPress::scores(const LayerContext& ctx) const {
  if (raw_kernels_apply(ctx.obs_queries, ctx.keys, ctx.keys))  // CPU: tiled, no score rows
    return pool_scores(accumulated_attention(ctx.obs_queries, ctx.keys, ctx.plan.obs_positions,
                                             ctx.plan.scored_end),
                       p_.kernel, p_.pool, PoolPadding::Symmetric);
  // Elsewhere: blocks of rows, so the score buffer stays bounded.
  const int64_t rows = ctx.obs_queries.size(1), kv_heads = ctx.keys.size(0);
  const int64_t block = std::max<int64_t>(
      1, kScoreBufferFloats / std::max<int64_t>(1, ctx.keys.size(1) * ctx.obs_queries.size(0)));
  at::Tensor acc = at::zeros({kv_heads, ctx.plan.scored_end}, ctx.keys.options());
  for (int64_t r0 = 0; r0 < rows; r0 += block) {
    const int64_t nr = std::min(block, rows - r0);
    const std::vector<int64_t> pos(ctx.plan.obs_positions.begin() + r0,
                                   ctx.plan.obs_positions.begin() + r0 + nr);
    const at::Tensor attn = observation_attention(ctx.obs_queries.narrow(1, r0, nr), ctx.keys,
                                                  at::tensor(pos, at::kLong).to(ctx.keys.device()));
    acc += reduce_over_group(attn.narrow(-1, 0, ctx.plan.scored_end), kv_heads, Reduce::Sum);
  }
  return pool_scores(acc, p_.kernel, p_.pool, PoolPadding::Symmetric);
}

}  // namespace dapx
