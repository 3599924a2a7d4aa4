// SpecKV (the draft's greedy lookahead) and LAQ (the target's own lookahead, with full KV
// first: the memory-hungry peer). Same plan, same press; only the lookahead source differs.
#include "methods/speckv.h"

#include "methods/lookahead.h"
#include "methods/registry.h"
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
  LookaheadMethod(std::string name, bool use_draft, const MethodParams& p)
      : name_(std::move(name)), use_draft_(use_draft), p_(p), sp_(score_params(p, ScoreParams{})) {
    if (use_draft_ && !p.draft)
      throw Error("--method " + name_ + " needs a draft model: pass --draft DIR");
    if (p.lookahead < -1) throw Error("--lookahead must be >= 0 (or -1 for max_new_tokens)");
    if (p.prefill != "auto" && p.prefill != "dense" && p.prefill != "sparse")
      throw Error("unknown --prefill '" + p.prefill + "'; use auto, dense or sparse");
    if (p.vertical < 1 || p.band < 1) throw Error("--vertical and --band must be >= 1");
  }
  std::string name() const override { return name_; }

  PrefillResult prefill(const Transformer& target, const PrefillRequest& req) override {
    const int64_t n = static_cast<int64_t>(req.prompt.size());
    if (n <= p_.budget) return uncompressed_prefill(target, req, p_.record_selection);
    const int64_t length = p_.lookahead >= 0 ? p_.lookahead : req.max_new_tokens;
    if (n + length > target.config().max_position_embeddings)
      throw Error("prompt (" + std::to_string(n) + " tokens) + lookahead (" +
                  std::to_string(length) + ") exceeds the target's context of " +
                  std::to_string(target.config().max_position_embeddings) + "; lower --lookahead");
    Lookahead la;
    if (req.lookahead)
      la.tokens = *req.lookahead;  // computed by an earlier stage (SpecKV-PC)
    else
      la = greedy_lookahead(use_draft_ ? *p_.draft : target, req.prompt, length);
    const CompressionPlan plan = speckv_plan(req.prompt, la.tokens, sp_.window);
    ObservationPress press(sp_, std::vector<int64_t>(target.config().num_layers, p_.budget));
    const int64_t n_all = static_cast<int64_t>(plan.tokens.size());
    const bool sparse =
        p_.prefill == "sparse" || (p_.prefill == "auto" && n_all > p_.vertical + p_.band);
    const SparsePrefill sp{p_.vertical, p_.band};
    const Stopwatch clock;
    PrefillResult r = compressed_prefill(target, plan, press, req.max_new_tokens,
                                         p_.record_selection, sparse ? &sp : nullptr);
    r.info["target_prefill_s"] = clock.seconds();
    r.info["lookahead_tokens"] = la.tokens;
    r.info["lookahead_s"] = la.seconds;
    r.info["lookahead_source"] = req.lookahead ? "given" : use_draft_ ? "draft" : "target";
    r.info["lookahead_kv_bytes"] = la.kv_bytes;
    return r;
  }

 private:
  std::string name_;
  bool use_draft_;
  MethodParams p_;
  ScoreParams sp_;
};

}  // namespace

std::unique_ptr<Method> make_lookahead_method(const std::string& name, const MethodParams& p) {
  return std::make_unique<LookaheadMethod>(name, name == "speckv", p);
}

}  // namespace dapx
