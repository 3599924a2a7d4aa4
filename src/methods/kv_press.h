#pragma once
// KV compression in the spirit of kvpress presses: a press looks at one layer's full prompt
// keys and the observation queries, and says which entries each KV head keeps. The shared
// layer-major prefill (compressed_prefill) runs the model, calls the press per layer and
// compacts the cache; a method is a plan (which tokens, which observation rows, what is
// scored, what is always kept) plus a press.
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "methods/method.h"

namespace dapx {

// What the layer-major prefill runs and which rows/keys the press sees.
struct CompressionPlan {
  std::vector<int> tokens;  // prompt, then any lookahead tokens
  int64_t prompt_len = 0;
  std::vector<int64_t> obs_positions;        // rows whose post-RoPE queries the press receives
  int64_t scored_end = 0;                    // keys [0, scored_end) compete for the budget
  int64_t window_begin = 0, window_end = 0;  // keys [window_begin, window_end) always kept
  // SpecKV-style: the last prompt token and the lookahead are not cached; the last prompt
  // token is fed again at position prompt_len - 1 to produce the first logits.
  bool refeed_last_prompt_token = false;
  // Dense prefills reuse the cached blocks of the prompt that lie before the first observation
  // row (their queries are not cached) and store the prompt's new blocks; null: no cache.
  PrefixCache* prefix_cache = nullptr;
};

struct LayerContext {
  int layer = 0;
  const at::Tensor& keys;         // [kv_heads, n_all, d] post-RoPE, this layer
  const at::Tensor& obs_queries;  // [heads, rows, d] post-RoPE (rows = plan.obs_positions)
  const CompressionPlan& plan;
};

class KVPress {
 public:
  virtual ~KVPress() = default;
  // Kept cache entries per KV head: int64 [kv_heads, keep], ascending per head; a row may be
  // padded with -1 (a head that keeps fewer: AdaKV).
  virtual at::Tensor select(const LayerContext& ctx) = 0;
  // [kv_heads, scored_end] key importance; sparse prefill picks its vertical keys from it.
  virtual at::Tensor scores(const LayerContext& ctx) const = 0;
  // select() when scores(ctx) is already computed (sparse prefill computes it first).
  virtual at::Tensor select_scored(const LayerContext& ctx, const at::Tensor& scores) = 0;
};

// kvpress's ScorerPress: score() carries a press's idea; every head keeps the window plus its
// top (layer budget - window) scored keys. A new press is a subclass with scores() and, when
// it reads queries, the observation rows it wants.
class ScorerPress : public KVPress {
 public:
  // layer_budgets[l]: entries kept per head in layer l, window included.
  explicit ScorerPress(std::vector<int64_t> layer_budgets) : budgets_(std::move(layer_budgets)) {}
  at::Tensor select(const LayerContext& ctx) override { return select_scored(ctx, scores(ctx)); }
  at::Tensor select_scored(const LayerContext& ctx, const at::Tensor& scores) override;
  int64_t budget(int layer) const { return budgets_.at(layer); }

 private:
  std::vector<int64_t> budgets_;
};

// The prompt rows whose queries a KV method hands its press (CompressionPlan::obs_positions).
enum class Observe {
  None,    // the press reads keys only (KNorm, StreamingLLM)
  Window,  // the last `window` prompt tokens (SnapKV, PyramidKV, AdaKV)
  Last,    // the last prompt token alone (TOVA)
  All,     // every prompt token (H2O)
};

// Sparse prefill (SpecKV): each prompt query attends to its head's top `vertical` keys by the
// press's scores plus a causal band of the `band` most recent keys.
struct SparsePrefill {
  int64_t vertical = 2048;
  int64_t band = 2048;
};

// Layer-major prefill: every token goes through layer l (in row chunks), the press picks the
// entries to keep, layer l is compacted, then layer l+1 runs. Only one layer's full K/V is
// alive at a time. When record_selection, info["layers"] holds the kept positions.
// With `sparse`, the layer's queries are all computed first, the press scores the keys from
// the observation rows, and attention runs sparse (info["prefill"] = "sparse").
PrefillResult compressed_prefill(const Transformer& t, const CompressionPlan& plan, KVPress& press,
                                 int max_new_tokens, bool record_selection,
                                 const SparsePrefill* sparse = nullptr);

}  // namespace dapx
