#include "engine/sequence.h"

#include <algorithm>

#include "engine/heap.h"
#include "util/error.h"

namespace dapx {

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
                (cfg.sliding_window == cfg.max_position_embeddings
                     ? " (its sliding_window: dapx attends fully causally, which is the model's "
                       "attention only within the window)"
                     : " (max_position_embeddings)") +
                ": shorten the prompt or lower --max-new-tokens");
}

}  // namespace

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

Sequence::Sequence(const LoadedModel& model, Method& method, std::vector<int> prompt,
                   GenerationParams params, TextCallback on_text)
    : model_(model),
      method_(method),
      prompt_(std::move(prompt)),
      params_(std::move(params)),
      sampler_(params_.sampling),
      streamer_(std::make_unique<StopStreamer>(params_.stop, std::move(on_text))) {
  check_prompt(model_.config, prompt_, params_.max_new_tokens);
  GenerationStats& st = result_.stats;
  st.prompt_tokens = static_cast<int>(prompt_.size());
  st.weight_bytes = model_.transformer.weight_bytes();
  st.decode_weight_bytes = model_.transformer.decode_weight_bytes();
  st.finish_reason = "length";
}

Sequence::~Sequence() = default;

void Sequence::prefill() {
  const Stopwatch prefill_clock;
  result_.stats.queue_s = total_.seconds();
  pre_ = std::make_unique<PrefillResult>(method_.prefill(
      model_.transformer, PrefillRequest{prompt_, params_.max_new_tokens, nullptr,
                                         params_.prefix_cache, params_.draft_prefix_cache}));
  GenerationStats& st = result_.stats;
  st.prefill_s = prefill_clock.seconds();
  const ModelConfig& cfg = model_.config;
  const int64_t entry_bytes =
      2 * int64_t{cfg.num_kv_heads} * cfg.head_dim *
      static_cast<int64_t>(c10::elementSize(model_.transformer.options().kv_dtype));
  st.kv_bytes_full = entry_bytes * cfg.num_layers *
                     (static_cast<int64_t>(prompt_.size()) + params_.max_new_tokens);
  st.kv_entries_per_layer = pre_->cache.lengths();
  result_.method_info = pre_->info;
  st.cached_tokens = pre_->info.value("prefix_cached_tokens", 0);
  pre_->cache.reserve(params_.max_new_tokens);
  logits_ = pre_->next_logits;
  pos_ = pre_->next_position;
  prefilled_ = true;
}

bool Sequence::sample() {
  if (!prefilled_) throw Error("Sequence::sample before prefill");
  GenerationStats& st = result_.stats;
  if (params_.cancel && params_.cancel->load()) {
    st.finish_reason = "cancelled";
    return false;
  }
  const int token = sampler_.next(logits_);
  const int i = static_cast<int>(result_.tokens.size());
  if (i == 0) {
    st.ttft_s = total_.seconds();
    decode_clock_ = Stopwatch();
  }
  const auto& eos = model_.config.eos_token_ids;
  if (!params_.ignore_eos && std::find(eos.begin(), eos.end(), token) != eos.end()) {
    st.finish_reason = "eos";
    return false;
  }
  result_.tokens.push_back(token);
  if (streamer_->add(model_.tokenizer.decode({token}))) {
    st.finish_reason = "stop";
    return false;
  }
  if (i + 1 == params_.max_new_tokens) return false;  // finish_reason stays "length"
  last_token_ = token;
  return true;
}

DecodeRow Sequence::next_row() { return DecodeRow{last_token_, pos_, &pre_->cache}; }

void Sequence::feed(const at::Tensor& logits) {
  logits_ = logits;
  ++pos_;
  ++decode_steps_;
}

int64_t Sequence::kv_allocated_bytes() const { return pre_ ? pre_->cache.allocated_bytes() : 0; }

GenerationResult Sequence::finish() {
  streamer_->finish();
  GenerationStats& st = result_.stats;
  if (!prefilled_) st.finish_reason = "cancelled";  // ended while waiting for its prefill
  st.decode_s = result_.tokens.empty() ? 0.0 : decode_clock_.seconds();
  st.generated_tokens = static_cast<int>(result_.tokens.size());
  st.tpot_s = decode_steps_ > 0 ? st.decode_s / decode_steps_ : 0.0;
  st.total_s = total_.seconds();
  st.kv_bytes = kv_allocated_bytes();
  st.peak_rss_bytes = peak_rss_bytes();
  st.peak_rss_scope = "process";
  result_.text = streamer_->text();
  return std::move(result_);
}

}  // namespace dapx
