#include "methods/observation_press.h"

#include <algorithm>

namespace dapx {
namespace {

at::Tensor positions_tensor(const std::vector<int64_t>& p, const at::Tensor& like) {
  return at::tensor(p, at::kLong).to(like.device());
}

}  // namespace

ObservationPress::ObservationPress(const ScoreParams& p, std::vector<int64_t> layer_budgets)
    : p_(p), budgets_(std::move(layer_budgets)) {}

at::Tensor ObservationPress::scores(const LayerContext& ctx) const {
  const at::Tensor attn = observation_attention(ctx.obs_queries, ctx.keys,
                                                positions_tensor(ctx.plan.obs_positions, ctx.keys));
  const at::Tensor scored = attn.narrow(-1, 0, ctx.plan.scored_end);  // softmax over all keys
  return pool_scores(reduce_over_group(scored, ctx.keys.size(0), p_.reduce), p_.kernel, p_.pool,
                     PoolPadding::Symmetric);
}

at::Tensor ObservationPress::select(const LayerContext& ctx) {
  return keep_with_window(scores(ctx), budgets_.at(ctx.layer), ctx.plan.window_begin,
                          ctx.plan.window_end);
}

at::Tensor HeavyHitterPress::scores(const LayerContext& ctx) const {
  const int64_t rows = ctx.obs_queries.size(1), kv_heads = ctx.keys.size(0);
  const int64_t block = std::max<int64_t>(
      1, (int64_t{8} << 20) / std::max<int64_t>(1, ctx.keys.size(1) * ctx.obs_queries.size(0)));
  at::Tensor acc = at::zeros({kv_heads, ctx.plan.scored_end}, ctx.keys.options());
  for (int64_t r0 = 0; r0 < rows; r0 += block) {
    const int64_t nr = std::min(block, rows - r0);
    const std::vector<int64_t> pos(ctx.plan.obs_positions.begin() + r0,
                                   ctx.plan.obs_positions.begin() + r0 + nr);
    const at::Tensor attn = observation_attention(ctx.obs_queries.narrow(1, r0, nr), ctx.keys,
                                                  positions_tensor(pos, ctx.keys));
    acc += reduce_over_group(attn.narrow(-1, 0, ctx.plan.scored_end), kv_heads, Reduce::Sum);
  }
  return pool_scores(acc, p_.kernel, p_.pool, PoolPadding::Symmetric);
}

at::Tensor StreamingPress::select(const LayerContext& ctx) {
  return streaming_keep(ctx.keys.size(0), ctx.plan.prompt_len, sinks_, budget_)
      .to(ctx.keys.device());
}

}  // namespace dapx
