// Budget schedules: PyramidKV per layer, AdaKV per head.
#include <cmath>
#include <string>

#include "scoring/scoring.h"
#include "util/error.h"

namespace dapx {

std::vector<int64_t> pyramid_budgets(int64_t num_layers, int64_t budget, int64_t window,
                                     double beta, int64_t n) {
  if (num_layers < 1)
    throw Error("pyramid_budgets: num_layers must be >= 1, got " + std::to_string(num_layers));
  if (window < 0 || budget <= window)
    throw Error("pyramid_budgets: the budget (" + std::to_string(budget) +
                ") must exceed the window (" + std::to_string(window) +
                ") so that some entries are selected by score");
  if (!(beta >= 1))
    throw Error("pyramid_budgets: beta must be >= 1 (it sets how steep the pyramid is)");
  if (n < -1) throw Error("pyramid_budgets: n must be the prompt length or -1 (unknown)");
  if (n >= 0 && n <= budget) return std::vector<int64_t>(num_layers, n);
  const double b = static_cast<double>(budget - window);
  if (num_layers == 1 || (n >= 0 && n < 2 * (budget - window)))
    return std::vector<int64_t>(num_layers, budget);
  double min_num = b / beta;
  double max_num = 2 * b - min_num;
  if (n >= 0 && max_num >= static_cast<double>(n - window)) {
    max_num = static_cast<double>(n - window);
    min_num = 2 * b - max_num;
  }
  const double steps = (max_num - min_num) / static_cast<double>(num_layers - 1);
  std::vector<int64_t> out(num_layers);
  for (int64_t l = 0; l < num_layers; ++l)
    // nearbyint rounds half to even under the default rounding mode, like Python's round.
    out[l] =
        window + static_cast<int64_t>(std::nearbyint(max_num - static_cast<double>(l) * steps));
  return out;
}

at::Tensor adaptive_head_budgets(const at::Tensor& scores, int64_t total_keep,
                                 double alpha_safeguard) {
  if (!scores.defined() || scores.dim() != 2 || !at::isFloatingType(scores.scalar_type()))
    throw Error("adaptive_head_budgets: expected floating-point scores [kv_heads, n]");
  const int64_t kv_heads = scores.size(0), n = scores.size(1);
  if (total_keep < 0 || total_keep > kv_heads * n)
    throw Error("adaptive_head_budgets: cannot keep " + std::to_string(total_keep) +
                " entries out of " + std::to_string(kv_heads) + " heads x " + std::to_string(n) +
                " keys");
  if (!(alpha_safeguard >= 0 && alpha_safeguard <= 1))
    throw Error("adaptive_head_budgets: alpha_safeguard must lie in [0, 1]");
  // Per-head floor, computed in doubles exactly as int(n_kept * alpha) in kvpress.
  const int64_t per_head = total_keep / kv_heads;
  const auto n_safe =
      static_cast<int64_t>(std::floor(static_cast<double>(per_head) * alpha_safeguard));
  const at::Tensor order = rank_descending(scores);  // [kv_heads, n]
  // Candidates for the joint pick: everything but each head's top n_safe, in flat
  // (head-major) order so that the stable sort breaks ties by head, then index.
  at::Tensor candidate = at::ones({kv_heads, n}, scores.options().dtype(at::kBool));
  candidate.scatter_(1, order.narrow(1, 0, n_safe), false);
  const at::Tensor flat_idx =
      at::arange(kv_heads * n, order.options()).masked_select(candidate.view(-1));
  const at::Tensor flat_scores =
      scores.to(at::kFloat).reshape(-1).masked_select(candidate.view(-1));
  const int64_t rest = total_keep - kv_heads * n_safe;
  const at::Tensor picked =
      flat_idx.index_select(0, rank_descending(flat_scores).narrow(0, 0, rest));
  at::Tensor counts = at::bincount(picked.div(n, "floor"), {}, kv_heads);
  return counts.to(at::kLong).add_(n_safe);
}

}  // namespace dapx
