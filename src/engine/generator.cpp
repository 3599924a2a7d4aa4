#include "engine/generator.h"

#include <algorithm>

#include "engine/gpu_memory.h"
#include "engine/heap.h"
#include "engine/stats.h"
#include "engine/tensor_memory.h"
#include "util/error.h"

namespace dapx {

nlohmann::json GenerationStats::to_json() const {
  return {{"prompt_tokens", prompt_tokens},
          {"generated_tokens", generated_tokens},
          {"prefill_s", prefill_s},
          {"ttft_s", ttft_s},
          {"decode_s", decode_s},
          {"tpot_s", tpot_s},
          {"total_s", total_s},
          {"kv_bytes_full", kv_bytes_full},
          {"kv_bytes", kv_bytes},
          {"weight_bytes", weight_bytes},
          {"decode_weight_bytes", decode_weight_bytes},
          {"draft_weight_bytes", draft_weight_bytes},
          {"peak_rss_bytes", peak_rss_bytes},
          {"peak_rss_scope", peak_rss_scope},
          {"working_bytes", working_bytes()},
          {"tensor_peak_bytes", tensor_peak_bytes},
          {"gpu_peak_bytes", gpu_peak_bytes >= 0 ? nlohmann::json(gpu_peak_bytes) : nullptr},
          {"gpu_reserved_peak_bytes",
           gpu_reserved_peak_bytes >= 0 ? nlohmann::json(gpu_reserved_peak_bytes) : nullptr},
          {"finish_reason", finish_reason},
          {"kv_entries_per_layer", kv_entries_per_layer}};
}

namespace {

void check_prompt(const ModelConfig& cfg, const std::vector<int>& prompt, int max_new_tokens) {
  if (prompt.empty()) throw Error("the prompt is empty: nothing to generate from");
  if (max_new_tokens < 1) throw Error("max_new_tokens must be >= 1");
  const int64_t need = static_cast<int64_t>(prompt.size()) + max_new_tokens;
  if (need > cfg.max_position_embeddings)
    throw Error("the prompt has " + std::to_string(prompt.size()) + " tokens; with " +
                std::to_string(max_new_tokens) +
                " new tokens that exceeds the model's context of " +
                std::to_string(cfg.max_position_embeddings) +
                " (max_position_embeddings): shorten the prompt or lower --max-new-tokens");
}

// Streams text while holding back a tail that could still become a stop string.
class StopStreamer {
 public:
  StopStreamer(const std::vector<std::string>& stops, const TextCallback& cb)
      : stops_(stops), cb_(cb) {
    for (const auto& s : stops_) hold_ = std::max(hold_, s.size());
  }
  // Returns true when a stop string appeared; text is then cut before it.
  bool add(const std::string& piece) {
    text_ += piece;
    for (const auto& s : stops_) {
      const size_t at = s.empty() ? std::string::npos : text_.find(s);
      if (at != std::string::npos) {
        text_.resize(at);
        emit(text_.size());
        return true;
      }
    }
    emit(text_.size() > hold_ ? text_.size() - hold_ : 0);
    return false;
  }
  void finish() {
    emit(text_.size());
    if (cb_) cb_(utf8_.flush());
  }
  const std::string& text() const { return text_; }

 private:
  void emit(size_t upto) {
    if (upto <= emitted_) return;
    if (cb_) cb_(utf8_.push(text_.substr(emitted_, upto - emitted_)));
    emitted_ = upto;
  }
  std::vector<std::string> stops_;
  TextCallback cb_;
  Utf8StreamDecoder utf8_;
  std::string text_;
  size_t emitted_ = 0, hold_ = 0;
};

}  // namespace

GenerationResult generate(const LoadedModel& model, Method& method, const std::vector<int>& prompt,
                          const GenerationParams& params, const TextCallback& on_text) {
  check_prompt(model.config, prompt, params.max_new_tokens);
  const ReleaseFreeHeapOnExit release_heap;  // after this request's tensors are freed
  const bool per_request = reset_peak_rss();
  const c10::Device device = model.transformer.options().device;
  const bool gpu_measured = reset_gpu_peak(device);
  const TensorPeakScope tensors;
  const Stopwatch total;
  Sampler sampler(params.sampling);
  GenerationResult result;
  GenerationStats& st = result.stats;
  st.prompt_tokens = static_cast<int>(prompt.size());
  st.weight_bytes = model.transformer.weight_bytes();
  st.decode_weight_bytes = model.transformer.decode_weight_bytes();

  PrefillResult pre =
      method.prefill(model.transformer, PrefillRequest{prompt, params.max_new_tokens});
  st.prefill_s = total.seconds();
  const ModelConfig& cfg = model.config;
  const int64_t entry_bytes =
      2 * int64_t{cfg.num_kv_heads} * cfg.head_dim *
      static_cast<int64_t>(c10::elementSize(model.transformer.options().kv_dtype));
  st.kv_bytes_full =
      entry_bytes * cfg.num_layers * (static_cast<int64_t>(prompt.size()) + params.max_new_tokens);
  st.kv_entries_per_layer = pre.cache.lengths();
  result.method_info = pre.info;
  pre.cache.reserve(params.max_new_tokens);

  StopStreamer streamer(params.stop, on_text);
  const auto& eos = model.config.eos_token_ids;
  at::Tensor logits = pre.next_logits;
  int64_t pos = pre.next_position;
  st.finish_reason = "length";
  Stopwatch decode_clock;
  int decode_steps = 0;  // forward passes after the first token
  for (int i = 0; i < params.max_new_tokens; ++i) {
    if (params.cancel && params.cancel->load()) {
      st.finish_reason = "cancelled";
      break;
    }
    const int token = sampler.next(logits);
    if (i == 0) {
      st.ttft_s = total.seconds();
      decode_clock = Stopwatch();
    }
    if (!params.ignore_eos && std::find(eos.begin(), eos.end(), token) != eos.end()) {
      st.finish_reason = "eos";
      break;
    }
    result.tokens.push_back(token);
    if (streamer.add(model.tokenizer.decode({token}))) {
      st.finish_reason = "stop";
      break;
    }
    if (i + 1 == params.max_new_tokens) break;
    logits = model.transformer.forward({token}, pos++, pre.cache);
    ++decode_steps;
  }
  streamer.finish();
  st.decode_s = decode_clock.seconds();
  st.generated_tokens = static_cast<int>(result.tokens.size());
  st.tpot_s = decode_steps > 0 ? st.decode_s / decode_steps : 0.0;
  st.total_s = total.seconds();
  st.kv_bytes = pre.cache.allocated_bytes();
  st.peak_rss_bytes = peak_rss_bytes();
  st.peak_rss_scope = per_request ? "request" : "process";
  st.tensor_peak_bytes = tensors.peak_bytes();
  if (gpu_measured) {
    const GpuPeak gpu = gpu_peak(device);
    st.gpu_peak_bytes = gpu.allocated_bytes;
    st.gpu_reserved_peak_bytes = gpu.reserved_bytes;
  }
  result.text = streamer.text();
  return result;
}

}  // namespace dapx
