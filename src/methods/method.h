#pragma once
// A method decides what the target keeps: it runs the prompt through the target (and, for
// draft-based methods, the draft first) and hands the engine a cache ready for decoding plus
// the logits of the next token. The engine owns the decode loop; methods never copy it.
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kv/kv_cache.h"
#include "kv/prefix_cache.h"
#include "model/transformer.h"

namespace dapx {

struct PrefillResult {
  // info["prefix_cached_tokens"]: prompt tokens whose K/V came from the prefix cache.
  KVCache cache;
  at::Tensor next_logits;     // [vocab] f32: logits of the first generated token
  int64_t next_position = 0;  // position of the first generated token
  nlohmann::json info = nlohmann::json::object();  // method-specific stats
};

struct PrefillRequest {
  const std::vector<int>& prompt;
  int max_new_tokens = 0;
  // A lookahead computed earlier (SpecKV-PC hands SpecPC's draft tokens to SpecKV).
  const std::vector<int>* lookahead = nullptr;
  // The target's prefix cache (kv/prefix_cache.h), or null: a dense prefill reuses the cached
  // blocks that start its prompt (before its first observation row) and stores its new ones.
  PrefixCache* prefix_cache = nullptr;
  // The draft's, for its prompt pass (lookahead, SpecPC's importance), or null.
  PrefixCache* draft_prefix_cache = nullptr;
};

class Method {
 public:
  virtual ~Method() = default;
  virtual std::string name() const = 0;
  virtual PrefillResult prefill(const Transformer& target, const PrefillRequest& req) = 0;
};

// No compression: the reference point.
class FullKV : public Method {
 public:
  std::string name() const override { return "full"; }
  PrefillResult prefill(const Transformer& target, const PrefillRequest& req) override;
};

// {"layer": l, "kept": [[positions of head 0], ...]}: the original positions layer l's cache
// holds per KV head (empty slots left out), as info["layers"] records them.
nlohmann::json kept_positions(int layer, const LayerKV& kv);

// True when `cache` may serve `t`'s prefills (its blocks are whole prefill chunks).
bool prefix_cache_applies(const Transformer& t, const PrefixCache* cache);
// Appends to every layer of `kv` the cached blocks that start `tokens` (at most `max_tokens`
// tokens; none when the cache does not apply); returns the tokens they hold.
int64_t append_prefix_hit(const Transformer& t, PrefixCache* cache, const std::vector<int>& tokens,
                          int64_t max_tokens, KVCache& kv);

// Full-KV prefill for a compressing method whose prompt fits its budget; with
// record_selection, info["layers"] lists every position as kept.
PrefillResult uncompressed_prefill(const Transformer& target, const PrefillRequest& req,
                                   bool record_selection);

}  // namespace dapx
