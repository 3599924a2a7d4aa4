#include "methods/prompt_selection.h"

#include <algorithm>
#include <limits>
#include <unordered_set>

#include "methods/lookahead.h"
#include "util/error.h"

namespace dapx {
namespace {

at::Tensor reduce_stack(const std::vector<at::Tensor>& parts, Reduce r) {
  const at::Tensor s = at::stack(parts, 0);
  switch (r) {
    case Reduce::Max:
      return std::get<0>(s.max(0));
    case Reduce::Mean:
      return s.mean(0);
    case Reduce::Sum:
      return s.sum(0);
  }
  throw Error("unknown reduction");
}

// One vector over the first n keys per observing layer, reduced over layers.
at::Tensor observe_step(const KVCache& cache, const QueryCapture& cap, int64_t first_layer,
                        int64_t n, const SpecPCParams& p) {
  std::vector<at::Tensor> per_layer;
  const at::Tensor pos = at::tensor(cap.positions, at::kLong);
  const int64_t rows = static_cast<int64_t>(cap.positions.size());
  const at::Tensor weights =
      p.weighted_queries && rows > 1 ? linear_row_weights(rows) : at::Tensor();
  for (int l = static_cast<int>(first_layer); l < cache.num_layers(); ++l) {
    const at::Tensor attn = observation_attention(cap.per_layer.at(l), cache.layer(l).keys(),
                                                  pos.to(cache.layer(l).keys().device()));
    per_layer.push_back(reduce_over_group(attn, 1, p.reduce,
                                          weights.defined() ? weights.to(attn.device()) : weights)
                            .squeeze(0)
                            .narrow(0, 0, n));  // generated keys cut off
  }
  return reduce_stack(per_layer, p.reduce);
}

}  // namespace

PromptImportance draft_prompt_importance(const Transformer& draft, const std::vector<int>& prompt,
                                         const SpecPCParams& p, PrefixCache* prefix_cache) {
  const int64_t n = static_cast<int64_t>(prompt.size());
  const int64_t w = std::min(p.window, n);
  const int64_t first = std::min<int64_t>(p.first_layer, draft.config().num_layers - 1);
  std::vector<int64_t> rows;
  for (int64_t i = n - w; i < n; ++i) rows.push_back(i);
  std::vector<at::Tensor> steps;  // the prompt's vector, then one per decode step
  const Lookahead la = greedy_lookahead(
      draft, prompt, p.lookahead,
      [&](const KVCache& cache, const QueryCapture& cap) {
        steps.push_back(observe_step(cache, cap, first, n, p));
      },
      rows, prefix_cache);
  PromptImportance out;
  out.lookahead = la.tokens;
  out.prefix_cached_tokens = la.prefix_cached_tokens;
  out.importance = reduce_stack(steps, p.reduce).to(at::kCPU);
  out.seconds = la.seconds;
  return out;
}

std::vector<int64_t> select_prompt_positions(const at::Tensor& importance, const SpecPCParams& p) {
  const int64_t n = importance.size(0);
  if (p.window > n)
    throw Error("SpecPC window (" + std::to_string(p.window) + ") is longer than the prompt");
  std::vector<int64_t> out;
  if (n <= p.budget) {
    for (int64_t i = 0; i < n; ++i) out.push_back(i);
    return out;
  }
  const at::Tensor pooled =
      pool_scores(importance.view({1, n}), p.kernel, p.pool, PoolPadding::Centered);
  const at::Tensor order = rank_descending(pooled).view({-1}).narrow(0, 0, p.budget).contiguous();
  std::vector<int64_t> offsets;
  for (int64_t o = -((p.neighbors - 1) / 2); o <= p.neighbors - 1 - (p.neighbors - 1) / 2; ++o)
    offsets.push_back(o);
  std::stable_sort(offsets.begin(), offsets.end(),
                   [](int64_t a, int64_t b) { return std::llabs(a) < std::llabs(b); });
  std::unordered_set<int64_t> seen;
  std::vector<int64_t> ranked;  // top positions with their neighbours, first occurrence kept
  const int64_t* top = order.data_ptr<int64_t>();
  for (int64_t r = 0; r < p.budget; ++r)
    for (int64_t o : offsets) {
      const int64_t pos = std::clamp<int64_t>(top[r] + o, 0, n - 1);
      if (seen.insert(pos).second) ranked.push_back(pos);
    }
  seen.clear();
  for (int64_t i = n - p.window; i < n; ++i) {
    seen.insert(i);
    out.push_back(i);
  }
  for (int64_t pos : ranked) {
    if (static_cast<int64_t>(out.size()) >= p.budget) break;
    if (seen.insert(pos).second) out.push_back(pos);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<int64_t> top_positions_with_window(const at::Tensor& scores, int64_t budget,
                                               int64_t window) {
  const int64_t n = scores.size(0);
  std::vector<int64_t> out;
  if (n <= budget) {
    for (int64_t i = 0; i < n; ++i) out.push_back(i);
    return out;
  }
  const at::Tensor keep =
      keep_with_window(scores.narrow(0, 0, n - window).view({1, -1}), budget, n - window, n);
  return std::vector<int64_t>(keep.data_ptr<int64_t>(), keep.data_ptr<int64_t>() + keep.numel());
}

at::Tensor draft_token_loss(const Transformer& draft, const std::vector<int>& prompt) {
  const int64_t n = static_cast<int64_t>(prompt.size()), chunk = 256;
  at::Tensor loss = at::empty({n}, at::kFloat);
  loss[0] = std::numeric_limits<float>::infinity();
  KVCache cache = draft.make_cache();
  cache.reserve(n);
  const at::Tensor ids = at::tensor(std::vector<int64_t>(prompt.begin(), prompt.end()), at::kLong);
  for (int64_t c0 = 0; c0 < n; c0 += chunk) {
    const int64_t c1 = std::min(n, c0 + chunk);
    const std::vector<int> part(prompt.begin() + c0, prompt.begin() + c1);
    at::Tensor logits = draft.forward(part, c0, cache, nullptr, true);
    const int64_t rows = std::min(c1, n - 1) - c0;  // row i predicts token i + 1
    if (rows <= 0) continue;
    logits = logits.narrow(0, 0, rows);
    // -log softmax(logits)[next] = max + log(sum(exp(logits - max))) - logits[next], computed in
    // place: the [rows, vocab] logits are the only large tensor (a log_softmax copy of them cost
    // a third of the time in page faults with a 152k vocabulary).
    const at::Tensor next = ids.narrow(0, c0 + 1, rows).unsqueeze(1).to(logits.device());
    const at::Tensor picked = logits.gather(1, next).squeeze(1);
    const at::Tensor max = std::get<0>(logits.max(1, true));
    const at::Tensor log_sum = logits.sub_(max).exp_().sum(1).log_();
    loss.narrow(0, c0 + 1, rows).copy_((max.squeeze(1) + log_sum - picked).to(at::kCPU));
  }
  return loss;
}

}  // namespace dapx
