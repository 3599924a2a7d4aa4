#include "methods/observation_press.h"

#include <algorithm>

#include "model/attention.h"

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
  return select_scored(ctx, scores(ctx));
}

at::Tensor ObservationPress::select_scored(const LayerContext& ctx, const at::Tensor& s) {
  return keep_with_window(s, budgets_.at(ctx.layer), ctx.plan.window_begin, ctx.plan.window_end);
}

at::Tensor HeavyHitterPress::scores(const LayerContext& ctx) const {
  if (raw_kernels_apply(ctx.obs_queries, ctx.keys, ctx.keys))  // CPU: tiled, no score rows
    return pool_scores(accumulated_attention(ctx.obs_queries, ctx.keys, ctx.plan.obs_positions,
                                             ctx.plan.scored_end),
                       p_.kernel, p_.pool, PoolPadding::Symmetric);
  const int64_t rows = ctx.obs_queries.size(1), kv_heads = ctx.keys.size(0);
  const int64_t block = std::max<int64_t>(
      1, kScoreBufferFloats / std::max<int64_t>(1, ctx.keys.size(1) * ctx.obs_queries.size(0)));
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

at::Tensor AdaptivePress::select(const LayerContext& ctx) {
  const at::Tensor s = scorer_->scores(ctx);
  const int64_t kv_heads = s.size(0), scored = s.size(1);
  const int64_t window = ctx.plan.window_end - ctx.plan.window_begin;
  const int64_t per_head = std::min(budgets_.at(ctx.layer) - window, scored);
  const at::Tensor head_budget = adaptive_head_budgets(s, kv_heads * per_head).to(at::kCPU);
  const at::Tensor order = rank_descending(s).to(at::kCPU);
  const at::Tensor window_idx = at::arange(ctx.plan.window_begin, ctx.plan.window_end, at::kLong);
  const int64_t widest = head_budget.max().item<int64_t>() + window;
  at::Tensor out = at::full({kv_heads, widest}, -1, at::kLong);
  for (int64_t h = 0; h < kv_heads; ++h) {
    const int64_t b = head_budget[h].item<int64_t>();
    const at::Tensor kept = std::get<0>(at::cat({order[h].narrow(0, 0, b), window_idx}).sort());
    out[h].narrow(0, 0, b + window).copy_(kept);
  }
  return out.to(ctx.keys.device());
}

at::Tensor StreamingPress::select(const LayerContext& ctx) {
  return streaming_keep(ctx.keys.size(0), ctx.plan.prompt_len, sinks_, budget_)
      .to(ctx.keys.device());
}

}  // namespace dapx
