#include <algorithm>

#include "methods/kv_press.h"
#include "methods/method.h"
#include "model/pace.h"
#include "model/sparse_attention.h"
#include "scoring/scoring.h"
#include "util/error.h"

namespace dapx {
namespace {

// Rows [c0, c0 + len) of tables built once for every position of the plan.
RotaryTables rows_of(const RotaryTables& all, int64_t c0, int64_t len) {
  return {all.cos.narrow(0, c0, len), all.sin.narrow(0, c0, len)};
}

// The first row whose layer outputs a dense prefill needs: the first observation row (its
// queries), or the last row (its logits).
int64_t first_needed_row(const CompressionPlan& plan, int64_t n_all) {
  return plan.obs_positions.empty() ? n_all - 1 : std::min(plan.obs_positions.front(), n_all - 1);
}

// One layer, dense: every row through the layer in chunks, then the press picks.
// Rows before `cached` are already in `full` (from the prefix cache); the chunks resume at the
// one holding the first needed row (CachedRows: only that row on is attended).
at::Tensor dense_layer(const Transformer& t, int l, at::Tensor& x, const CompressionPlan& plan,
                       KVPress& press, const RotaryTables& rope, LayerKV& full, int64_t cached) {
  const int64_t n_all = x.size(0), chunk = t.options().prefill_chunk;
  const int64_t needed = std::min(cached, first_needed_row(plan, n_all));
  QueryCapture capture;
  capture.positions = plan.obs_positions;
  for (int64_t c0 = needed / chunk * chunk; c0 < n_all; c0 += chunk) {
    const int64_t len = std::min(chunk, n_all - c0);
    const RotaryTables r = rows_of(rope, c0, len);
    const CachedRows rows{std::clamp<int64_t>(cached - c0, 0, len),
                          std::clamp<int64_t>(needed - c0, 0, len)};
    pace_point();
    x.narrow(0, c0, len)
        .copy_(t.layer_forward(l, x.narrow(0, c0, len), c0, full, &capture, &r, rows));
  }
  const at::Tensor keys = full.keys();
  const at::Tensor obs = capture.per_layer.empty() ? at::Tensor() : capture.per_layer[l];
  return press.select(LayerContext{l, keys, obs, plan});
}

// One layer, sparse: keys and values of every row first, then the observation rows' queries
// and scores from them, then attention over each head's vertical keys + the local band with the
// queries made chunk by chunk (never [heads, n, d] at once). The scores serve both the vertical
// keys and the kept entries.
at::Tensor sparse_layer(const Transformer& t, int l, at::Tensor& x, const CompressionPlan& plan,
                        KVPress& press, const SparsePrefill& sparse, const RotaryTables& rope,
                        LayerKV& full) {
  const int64_t n_all = x.size(0), chunk = t.options().prefill_chunk;
  for (int64_t c0 = 0; c0 < n_all; c0 += chunk) {
    const int64_t len = std::min(chunk, n_all - c0);
    pace_point();
    const AttentionInputs in = t.layer_kv(l, x.narrow(0, c0, len), rows_of(rope, c0, len));
    full.append(in.k, in.v, c0);
  }
  // The observation rows' queries, from their rows of the layer's input (x is not yet updated).
  at::Tensor obs;
  if (!plan.obs_positions.empty()) {
    const at::Tensor rows = at::tensor(plan.obs_positions, at::kLong).to(x.device());
    obs = t.layer_q(l, x.index_select(0, rows),
                    {rope.cos.index_select(0, rows), rope.sin.index_select(0, rows)});
  }
  const at::Tensor keys = full.keys(), values = full.values();
  const LayerContext ctx{l, keys, obs, plan};
  const at::Tensor scores = press.scores(ctx);
  const at::Tensor vertical = topk_keep(scores, std::min(sparse.vertical, plan.scored_end));
  for (int64_t c0 = 0; c0 < n_all; c0 += chunk) {
    const int64_t len = std::min(chunk, n_all - c0);
    const RotaryTables r = rows_of(rope, c0, len);
    pace_point();
    const at::Tensor q = t.layer_q(l, x.narrow(0, c0, len), r);
    const at::Tensor attn =
        sparse_attention(q, keys, values, c0, vertical, sparse.band, t.bf16_attention());
    x.narrow(0, c0, len).copy_(t.layer_output(l, x.narrow(0, c0, len), attn));
  }
  return press.select_scored(ctx, scores);
}

}  // namespace

at::Tensor ScorerPress::select_scored(const LayerContext& ctx, const at::Tensor& scores) {
  return keep_with_window(scores, budget(ctx.layer), ctx.plan.window_begin, ctx.plan.window_end);
}

PrefillResult compressed_prefill(const Transformer& t, const CompressionPlan& plan, KVPress& press,
                                 int max_new_tokens, bool record_selection,
                                 const SparsePrefill* sparse) {
  const ModelConfig& cfg = t.config();
  const int64_t n_all = static_cast<int64_t>(plan.tokens.size());
  if (plan.prompt_len < 1 || plan.prompt_len > n_all)
    throw Error("compression plan: bad prompt length");

  at::Tensor x = t.embed(plan.tokens);  // [n_all, hidden]: the residual stream of every token
  const RotaryTables rope = t.rotary(0, n_all);
  PrefillResult out{t.make_cache(), {}, plan.prompt_len, nlohmann::json::object()};
  // The prefix cache (dense only: a sparse prefill's K/V past layer 0 are not the dense ones):
  // cached blocks stand in for their rows' K/V in every layer. Observation rows inside them are
  // computed again (their queries are not cached), in the chunk a cold prefill computes them in.
  PrefixCache::Hit hit;
  std::unique_ptr<PrefixCache::Pending> pending;
  // (Not when the first row already observes: H2O recomputes every row.)
  if (!sparse && prefix_cache_applies(t, plan.prefix_cache) && first_needed_row(plan, n_all) > 0) {
    hit = plan.prefix_cache->lookup(plan.tokens, plan.prompt_len - 1);
    pending = plan.prefix_cache->begin(plan.tokens, plan.prompt_len, hit.tokens());
  }
  const int64_t reused = hit.tokens();
  nlohmann::json layers = nlohmann::json::array();
  for (int l = 0; l < cfg.num_layers; ++l) {
    LayerKV full = t.make_layer_cache();
    full.reserve(n_all);
    int64_t pos = 0;
    for (const auto& block : hit.blocks) {
      full.append(block->k[l], block->v[l], pos);
      pos += static_cast<int64_t>(block->tokens.size());
    }
    const at::Tensor keep = sparse ? sparse_layer(t, l, x, plan, press, *sparse, rope, full)
                                   : dense_layer(t, l, x, plan, press, rope, full, reused);
    if (pending) pending->add_layer(full);  // the new blocks' full K/V, before compaction
    full.compact(keep, max_new_tokens + 1);
    if (record_selection) layers.push_back(kept_positions(l, full));
    out.cache.layer(l) = std::move(full);
  }
  if (plan.refeed_last_prompt_token) {
    out.next_logits = t.forward({plan.tokens[plan.prompt_len - 1]}, plan.prompt_len - 1, out.cache);
  } else {
    if (n_all != plan.prompt_len)
      throw Error("compression plan: lookahead needs refeed_last_prompt_token");
    out.next_logits = t.logits(x.narrow(0, n_all - 1, 1)).squeeze(0);
  }
  if (pending) plan.prefix_cache->commit(std::move(pending));
  if (record_selection) out.info["layers"] = layers;
  out.info["prefill"] = sparse ? "sparse" : "dense";
  out.info["prefix_cached_tokens"] = reused;
  return out;
}

}  // namespace dapx
