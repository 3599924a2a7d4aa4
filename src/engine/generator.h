#pragma once
// The one generation loop: a method prefills, then tokens are sampled and fed back on the
// (possibly compacted) cache until EOS, a stop string or max_new_tokens.
#include <atomic>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/sampler.h"
#include "methods/method.h"

namespace dapx {

struct GenerationParams {
  int max_new_tokens = 128;
  SamplingParams sampling;
  std::vector<std::string> stop;  // stop strings (not included in the text)
  bool ignore_eos = false;
  // Checked between tokens: when it becomes true the generation ends (finish_reason
  // "cancelled"), e.g. when a streaming client went away. Not owned; may be null.
  const std::atomic<bool>* cancel = nullptr;
  // The target's prefix cache (kv/prefix_cache.h), or null. Not owned.
  PrefixCache* prefix_cache = nullptr;
  PrefixCache* draft_prefix_cache = nullptr;  // the draft's, likewise
};

struct GenerationStats {
  int prompt_tokens = 0;
  int cached_tokens = 0;  // prompt tokens whose K/V came from the prefix cache
  int generated_tokens = 0;
  double queue_s = 0;    // arrival -> prefill start (waiting for the KV pool or a turn)
  double prefill_s = 0;  // method prefill (incl. any draft work)
  double ttft_s = 0;     // arrival -> first token chosen (queue_s + prefill_s + sampling)
  double decode_s = 0;   // after the first token
  double tpot_s = 0;     // decode_s / (generated - 1)
  double total_s = 0;
  int64_t kv_bytes_full = 0;  // cache bytes full KV would hold for prompt + max_new_tokens
  int64_t kv_bytes = 0;       // cache bytes after the method, at the end of generation
  std::vector<int64_t> kv_entries_per_layer;  // live entries per layer after the method
  int64_t weight_bytes = 0;                   // the target's
  int64_t decode_weight_bytes = 0;            // the target's weight bytes read per decode step
  int64_t draft_weight_bytes = 0;  // the draft's (draft-based methods), set by the caller
  // Of weight_bytes and draft_weight_bytes, what was resident in RAM when the request ended
  // (engine/stats.h, resident_weight_bytes): weights read from a file mapping count only the
  // pages read (an embedding table's unused rows do not), weights on a GPU nothing.
  int64_t resident_weight_bytes = 0, draft_resident_weight_bytes = 0;
  int64_t peak_rss_bytes = 0;
  std::string peak_rss_scope;  // "request" (reset at the start) or "process" (all-time high)
  // On a GPU: the CUDA caching allocator's peaks during this request (reset at its start);
  // -1 where not measured (CPU).
  int64_t gpu_peak_bytes = -1, gpu_reserved_peak_bytes = -1;
  // The high-water mark of the CPU tensors this request allocated (tensor_memory.h): KV
  // cache, activations, scores, the draft's work; not the weights, not LibTorch's floor.
  int64_t tensor_peak_bytes = 0;
  // Memory beyond the resident weights: peak RSS - the target's and the draft's resident weight
  // bytes. Never negative: those bytes were part of the RSS when measured, which the peak is at
  // least. (Subtracting weight_bytes instead, as once done, went negative where a mapped
  // embedding table was mostly never read, or the weights lived on a GPU.)
  int64_t working_bytes() const {
    return peak_rss_bytes - resident_weight_bytes - draft_resident_weight_bytes;
  }
  std::string finish_reason;  // "eos", "stop", "length", "cancelled"
  nlohmann::json to_json() const;
};

struct GenerationResult {
  std::string text;
  std::vector<int> tokens;
  GenerationStats stats;
  nlohmann::json method_info;
};

using TextCallback = std::function<void(const std::string&)>;

// Sets the stats' draft figures (a draft-based method's draft): its weight bytes and, now, how
// many of them are resident.
void count_draft_weights(GenerationStats& stats, const Transformer& draft);

// Throws dapx::Error for an empty prompt or one that, with max_new_tokens, exceeds the
// model's context. The stats' memory figures count the target's weights; a caller whose method
// ran a draft adds it with count_draft_weights.
GenerationResult generate(const LoadedModel& model, Method& method, const std::vector<int>& prompt,
                          const GenerationParams& params, const TextCallback& on_text = nullptr);

}  // namespace dapx
