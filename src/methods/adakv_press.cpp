#include "methods/adakv_press.h"

#include <algorithm>

#include "scoring/scoring.h"

namespace dapx {

at::Tensor AdaptivePress::select_scored(const LayerContext& ctx, const at::Tensor& s) {
  const int64_t kv_heads = s.size(0), scored = s.size(1);
  const int64_t window = ctx.plan.window_end - ctx.plan.window_begin;
  const int64_t per_head = std::min(scorer_->budget(ctx.layer) - window, scored);
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

}  // namespace dapx
