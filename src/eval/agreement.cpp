#include "eval/agreement.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "methods/lookahead.h"
#include "methods/observation_press.h"
#include "methods/speckv.h"
#include "util/error.h"

namespace dapx::eval {
namespace {

std::vector<double> ranks(const std::vector<float>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    for (size_t t = i; t <= j; ++t) r[order[t]] = (i + j) / 2.0;  // average rank of the tie
    i = j + 1;
  }
  return r;
}

// Per layer, the importance of keys [0, plan.scored_end) averaged over KV heads, from one
// full-cache forward of plan.tokens that also returns every position's logits.
struct Scored {
  std::vector<std::vector<float>> per_layer;
  std::vector<float> mean;  // over layers
  at::Tensor logits;        // [tokens, vocab]
};

Scored score_keys(const Transformer& model, const CompressionPlan& plan) {
  at::NoGradGuard no_grad;
  KVCache cache = model.make_cache();
  QueryCapture capture;
  capture.positions = plan.obs_positions;
  Scored out;
  out.logits = model.forward(plan.tokens, 0, cache, &capture, true).to(at::kCPU);
  const ObservationPress press(ScoreParams{}, {});
  const int layers = model.config().num_layers;
  out.mean.assign(plan.scored_end, 0.f);
  for (int l = 0; l < layers; ++l) {
    const at::Tensor keys = cache.layer(l).keys();
    const LayerContext ctx{l, keys, capture.per_layer.at(l), plan};
    const at::Tensor s = press.scores(ctx).mean(0).to(at::kCPU).contiguous();
    const float* p = s.data_ptr<float>();
    out.per_layer.emplace_back(p, p + s.numel());
    for (int64_t i = 0; i < plan.scored_end; ++i) out.mean[i] += p[i] / layers;
  }
  return out;
}

nlohmann::json compare(const Scored& target, const Scored& draft, int64_t k) {
  nlohmann::json per_layer = nlohmann::json::array();
  for (const auto& layer : target.per_layer) per_layer.push_back(spearman(layer, draft.mean));
  return {{"spearman", spearman(target.mean, draft.mean)},
          {"topk_overlap", topk_overlap(target.mean, draft.mean, k)},
          {"per_layer_spearman", per_layer},
          {"target", target.mean},
          {"draft", draft.mean}};
}

}  // namespace

double spearman(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) throw Error("spearman: vectors of different lengths");
  const std::vector<double> ra = ranks(a), rb = ranks(b);
  const double n = static_cast<double>(a.size());
  const double mean = (n - 1) / 2;
  double cov = 0, va = 0, vb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    cov += (ra[i] - mean) * (rb[i] - mean);
    va += (ra[i] - mean) * (ra[i] - mean);
    vb += (rb[i] - mean) * (rb[i] - mean);
  }
  return va > 0 && vb > 0 ? cov / std::sqrt(va * vb) : 0.0;
}

double topk_overlap(const std::vector<float>& a, const std::vector<float>& b, int64_t k) {
  if (a.size() != b.size()) throw Error("top-k overlap: vectors of different lengths");
  k = std::min<int64_t>(k, static_cast<int64_t>(a.size()));
  if (k <= 0) return 0.0;
  const auto top = [&](const std::vector<float>& v) {
    std::vector<size_t> idx(v.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](size_t x, size_t y) { return v[x] > v[y]; });
    idx.resize(k);
    std::sort(idx.begin(), idx.end());
    return idx;
  };
  const std::vector<size_t> ta = top(a), tb = top(b);
  std::vector<size_t> both;
  std::set_intersection(ta.begin(), ta.end(), tb.begin(), tb.end(), std::back_inserter(both));
  return static_cast<double>(both.size()) / k;
}

nlohmann::json analyze_prompt(const LoadedModel& target, const LoadedModel& draft,
                              const std::vector<int>& prompt, const AgreementOptions& o) {
  const int64_t n = static_cast<int64_t>(prompt.size());
  if (n < o.window + 2 + o.budget)
    throw Error("analyze: the prompt (" + std::to_string(n) + " tokens) must be longer than " +
                "the window + 1 + the budget (" + std::to_string(o.window + 1 + o.budget) + ")");
  const int64_t room =
      std::min(target.config.max_position_embeddings, draft.config.max_position_embeddings) - n;
  if (o.lookahead < 1 || o.lookahead > room)
    throw Error("analyze: lookahead must be in [1, " + std::to_string(room) + "]");
  const Lookahead la = greedy_lookahead(draft.transformer, prompt, o.lookahead);
  const CompressionPlan speckv = speckv_plan(prompt, la.tokens, o.window);
  const CompressionPlan window = speckv_plan(prompt, {}, o.window);
  const Scored t = score_keys(target.transformer, speckv),
               d = score_keys(draft.transformer, speckv);
  const Scored tw = score_keys(target.transformer, window),
               dw = score_keys(draft.transformer, window);

  // Next-token distributions where both read prompt + lookahead: positions n-1 .. n+L-2.
  double kl = 0;
  int agree = 0;
  for (int64_t i = n - 1; i < n - 1 + o.lookahead; ++i) {
    const at::Tensor lt = at::log_softmax(t.logits[i], -1), ld = at::log_softmax(d.logits[i], -1);
    kl += (lt.exp() * (lt - ld)).sum().item<double>();
    agree += lt.argmax().item<int64_t>() == ld.argmax().item<int64_t>() ? 1 : 0;
  }
  return {{"prompt_tokens", n},
          {"scored_keys", speckv.scored_end},
          {"lookahead_text", draft.tokenizer.decode(la.tokens)},
          {"speckv", compare(t, d, o.budget - o.window)},
          {"window", compare(tw, dw, o.budget - o.window)},
          {"mean_kl", kl / o.lookahead},
          {"greedy_agreement", static_cast<double>(agree) / o.lookahead}};
}

}  // namespace dapx::eval
