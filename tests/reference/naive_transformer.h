#pragma once
// Independent, deliberately naive reference forward pass of the Llama family (Llama incl.
// llama3 rope_scaling, Qwen2 QKV bias, Qwen3 per-head q/k RMSNorm, Mistral), written straight
// from the math of the Hugging Face models: plain scalar loops over std::vector<float>, no
// LibTorch. It exists only so that parity tests can catch engine bugs; it is slow on purpose.
//
// The KV cache stores keys *after* RoPE, per layer and per KV head, so entries can be dropped
// (compact) without re-rotating anything, and positions of new tokens are whatever the caller
// passes to step().
#include <functional>
#include <vector>

#include "io/model_config.h"
#include "io/safetensors.h"

namespace dapx::reference {

class NaiveTransformer {
 public:
  // Converts every weight to float32 once (the WeightStore may be closed afterwards).
  // Throws dapx::Error when a tensor is missing or has the wrong shape.
  NaiveTransformer(const ModelConfig& cfg, const WeightStore& weights);

  // Feeds one token at absolute position `pos` (positions need not be contiguous), appends
  // its K (post-RoPE) and V to the cache of every layer, and returns the logits [vocab].
  std::vector<float> step(int token, int pos);

  // Feeds tokens at positions 0..n-1 one by one (on top of whatever is cached); returns the
  // logits of every position [n][vocab].
  std::vector<std::vector<float>> prefill(const std::vector<int>& tokens);

  // Restricts the cache: keep[layer][kv_head] = sorted cache slot indices to keep. Every
  // head may keep a different count (head-adaptive budgets). Throws dapx::Error on
  // malformed input (wrong sizes, out-of-range or unsorted indices, unequal counts).
  void compact(const std::vector<std::vector<std::vector<int>>>& keep);

  // Empties the cache.
  void reset();

  // Restricts attention, for sparse-attention references: a query of `layer`'s KV head
  // `kv_head` at position `pos` sees the key in cache slot `slot` only when this returns true.
  // Unset (the default): every cached key.
  using Visibility = std::function<bool(int layer, int kv_head, int pos, int slot)>;
  void set_visibility(Visibility visible) { visible_ = std::move(visible); }

  // reset() + prefill(prompt) + argmax decode: returns the max_new_tokens generated tokens
  // (the first is the argmax of the last prompt position's logits). Ties pick the lowest id.
  std::vector<int> greedy(const std::vector<int>& prompt, int max_new_tokens);

  // The post-RoPE query of every head ([heads * head_dim]) of every token fed since the last
  // reset(), per layer: queries(l)[i] is the i-th token fed. For tests that recompute a
  // method's observation attention independently.
  const std::vector<std::vector<float>>& queries(int layer) const {
    return layers_.at(layer).queries;
  }
  // The cached post-RoPE keys of one layer's KV head, entries x head_dim, row-major.
  const std::vector<float>& keys(int layer, int kv_head) const {
    return layers_.at(layer).k_cache.at(kv_head);
  }
  // Number of cached entries of one layer's KV head.
  int cache_size(int layer, int kv_head = 0) const;
  const ModelConfig& config() const { return cfg_; }

  // --- Building blocks, exposed for tests ---
  // inv_freq[i] = theta^(-2i/d) for i < d/2, modified by llama3 rope_scaling when present.
  static std::vector<double> rope_inv_freq(const ModelConfig& cfg);
  // Rotates one head vector x[head_dim] in place ("rotate_half" convention).
  static void apply_rope(float* x, int head_dim, int pos, const std::vector<double>& inv_freq);
  // out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], for n elements.
  static void rms_norm(const float* x, const float* w, int n, double eps, float* out);

 private:
  struct Layer {
    std::vector<float> input_norm;      // [hidden]
    std::vector<float> wq, wk, wv;      // [out, hidden]
    std::vector<float> bq, bk, bv;      // [out] (qkv_bias only)
    std::vector<float> q_norm, k_norm;  // [head_dim] (qk_norm only)
    std::vector<float> wo;              // [hidden, heads*head_dim]
    std::vector<float> post_norm;       // [hidden]
    std::vector<float> w_gate, w_up;    // [intermediate, hidden]
    std::vector<float> w_down;          // [hidden, intermediate]
    // Cache: per KV head, entries x head_dim, row-major.
    std::vector<std::vector<float>> k_cache, v_cache;
    std::vector<std::vector<float>> queries;  // per token fed: [heads * head_dim] post-RoPE
  };

  ModelConfig cfg_;
  std::vector<float> embed_;       // [vocab, hidden]
  std::vector<float> final_norm_;  // [hidden]
  std::vector<float> lm_head_;     // [vocab, hidden] (a copy of embed_ when tied)
  std::vector<Layer> layers_;
  std::vector<double> inv_freq_;
  Visibility visible_;
};

}  // namespace dapx::reference
