// SpecKV (the draft's greedy lookahead) and LAQ (the target's own lookahead, with full KV
// first: the memory-hungry peer). Same plan, same press; only the lookahead source differs.
#include "methods/speckv.h"

#include "methods/kv_method.h"
#include "methods/lookahead.h"
#include "util/error.h"
#include "util/stopwatch.h"

namespace dapx {

CompressionPlan speckv_plan(const std::vector<int>& prompt, const std::vector<int>& lookahead,
                            int64_t window) {
  const int64_t n = static_cast<int64_t>(prompt.size());
  const int64_t lookahead_len = static_cast<int64_t>(lookahead.size());
  if (n < window + 2) throw Error("SpecKV needs a prompt longer than the window + 1");
  CompressionPlan plan;
  plan.tokens = prompt;
  plan.tokens.insert(plan.tokens.end(), lookahead.begin(), lookahead.end());
  plan.prompt_len = n;
  for (int64_t i = n - window - 1; i < n + lookahead_len; ++i) plan.obs_positions.push_back(i);
  plan.scored_end = n - window - 1;
  plan.window_begin = n - window - 1;
  plan.window_end = n - 1;
  plan.refeed_last_prompt_token = true;
  return plan;
}

namespace {

class LookaheadMethod : public Method {
 public:
  LookaheadMethod(const MethodArgs& a, bool use_draft)
      : name_(a.method()),
        use_draft_(use_draft),
        draft_(a.options().draft),
        record_(a.options().record_selection),
        budget_(a.integer("budget")),
        lookahead_(a.has("lookahead") ? a.integer("lookahead") : -1),
        vertical_(a.integer("vertical")),
        band_(a.integer("band")),
        prefill_(a.text("prefill")),
        sp_(score_params(a)) {
    if (use_draft_ && !draft_) a.fail("needs a draft model (same tokenizer as the target)");
  }
  std::string name() const override { return name_; }

  PrefillResult prefill(const Transformer& target, const PrefillRequest& req) override {
    const int64_t n = static_cast<int64_t>(req.prompt.size());
    if (n <= budget_) return uncompressed_prefill(target, req, record_);
    const int64_t length = lookahead_ >= 0 ? lookahead_ : req.max_new_tokens;
    if (n + length > target.config().max_position_embeddings)
      throw Error("prompt (" + std::to_string(n) + " tokens) + lookahead (" +
                  std::to_string(length) + ") exceeds the target's context of " +
                  std::to_string(target.config().max_position_embeddings) + "; lower lookahead");
    Lookahead la;
    if (req.lookahead)
      la.tokens = *req.lookahead;  // computed by an earlier stage (SpecKV-PC)
    else
      la = greedy_lookahead(use_draft_ ? *draft_ : target, req.prompt, length, {}, {},
                            use_draft_ ? req.draft_prefix_cache : req.prefix_cache);
    CompressionPlan plan = speckv_plan(req.prompt, la.tokens, sp_.window);
    plan.prefix_cache = req.prefix_cache;
    ObservationPress press(sp_, std::vector<int64_t>(target.config().num_layers, budget_));
    const int64_t n_all = static_cast<int64_t>(plan.tokens.size());
    const bool sparse = prefill_ == "sparse" || (prefill_ == "auto" && n_all > vertical_ + band_);
    const SparsePrefill sp{vertical_, band_};
    const Stopwatch clock;
    PrefillResult r = compressed_prefill(target, plan, press, req.max_new_tokens, record_,
                                         sparse ? &sp : nullptr);
    r.info["target_prefill_s"] = clock.seconds();
    r.info["lookahead_tokens"] = la.tokens;
    r.info["lookahead_s"] = la.seconds;
    r.info["lookahead_source"] = req.lookahead ? "given" : use_draft_ ? "draft" : "target";
    r.info["lookahead_kv_bytes"] = la.kv_bytes;
    r.info["lookahead_prefix_cached_tokens"] = la.prefix_cached_tokens;
    return r;
  }

 private:
  std::string name_;
  bool use_draft_;
  const Transformer* draft_;
  bool record_;
  int64_t budget_, lookahead_, vertical_, band_;  // lookahead_ -1: the request's max_new_tokens
  std::string prefill_;
  ScoreParams sp_;
};

}  // namespace

std::unique_ptr<Method> make_lookahead_method(const MethodArgs& args, bool use_draft) {
  return std::make_unique<LookaheadMethod>(args, use_draft);
}

}  // namespace dapx
