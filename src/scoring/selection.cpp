// Deterministic top-k selection, window protection and StreamingLLM positions.
#include <algorithm>
#include <string>

#include "scoring/scoring.h"
#include "util/error.h"

namespace dapx {

namespace {

void require_scores_2d(const at::Tensor& scores, const char* fn) {
  if (!scores.defined() || scores.dim() != 2 || !at::isFloatingType(scores.scalar_type()))
    throw Error(std::string(fn) + ": expected floating-point scores [kv_heads, n_scored]");
}

}  // namespace

at::Tensor rank_descending(const at::Tensor& scores) {
  if (!scores.defined() || scores.dim() < 1 || !at::isFloatingType(scores.scalar_type()))
    throw Error("rank_descending: expected floating-point scores [..., n]");
  if (scores.numel() > 0 && scores.isnan().any().item<bool>())
    throw Error("rank_descending: scores contain NaN (non-finite attention upstream?)");
  // A stable descending sort keeps equal scores in index order.
  return std::get<1>(at::sort(scores, /*stable=*/true, /*dim=*/-1, /*descending=*/true));
}

at::Tensor topk_keep(const at::Tensor& scores, int64_t k) {
  require_scores_2d(scores, "topk_keep");
  const int64_t n = scores.size(1);
  if (k < 0 || k > n)
    throw Error("topk_keep: cannot keep " + std::to_string(k) + " of " + std::to_string(n) +
                " scored keys (need 0 <= k <= n)");
  const at::Tensor top = rank_descending(scores).narrow(1, 0, k);
  return std::get<0>(top.sort(1));
}

at::Tensor keep_with_window(const at::Tensor& scores, int64_t budget, int64_t window_begin,
                            int64_t window_end) {
  require_scores_2d(scores, "keep_with_window");
  const int64_t kv_heads = scores.size(0), n = scores.size(1);
  if (window_begin < 0 || window_end < window_begin)
    throw Error("keep_with_window: window [" + std::to_string(window_begin) + ", " +
                std::to_string(window_end) + ") is not a valid range");
  const int64_t w = window_end - window_begin;
  if (budget < w)
    throw Error("keep_with_window: budget " + std::to_string(budget) +
                " is smaller than the protected window of " + std::to_string(w) +
                " entries; raise the budget or shrink the window");
  // Scored keys inside the window are kept anyway: drop them from the candidates.
  at::Tensor order = rank_descending(scores);
  const int64_t overlap = std::max<int64_t>(0, std::min(window_end, n) - std::min(window_begin, n));
  if (overlap > 0) {
    const at::Tensor outside = (order < window_begin).logical_or_(order >= window_end);
    order = order.masked_select(outside).view({kv_heads, n - overlap});
  }
  const int64_t picked = std::min(budget - w, n - overlap);
  const auto opts = order.options();
  const at::Tensor window = at::arange(window_begin, window_end, opts).expand({kv_heads, w});
  const at::Tensor kept = at::cat({order.narrow(1, 0, picked), window}, 1);
  return std::get<0>(kept.sort(1));
}

at::Tensor streaming_keep(int64_t kv_heads, int64_t n, int64_t sinks, int64_t budget) {
  if (kv_heads < 1 || n < 0 || sinks < 0 || budget < 0)
    throw Error("streaming_keep: kv_heads must be >= 1 and n, sinks, budget >= 0 (got " +
                std::to_string(kv_heads) + ", " + std::to_string(n) + ", " + std::to_string(sinks) +
                ", " + std::to_string(budget) + ")");
  const auto opts = at::TensorOptions().dtype(at::kLong);
  if (budget >= n) return at::arange(n, opts).unsqueeze(0).expand({kv_heads, n}).contiguous();
  if (sinks > budget)
    throw Error("streaming_keep: " + std::to_string(sinks) +
                " sink tokens do not fit in a budget of " + std::to_string(budget));
  const at::Tensor idx =
      at::cat({at::arange(sinks, opts), at::arange(n - (budget - sinks), n, opts)});
  return idx.unsqueeze(0).expand({kv_heads, budget}).contiguous();
}

}  // namespace dapx
