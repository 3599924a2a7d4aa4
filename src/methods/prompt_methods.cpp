// Prompt compression: choose the prompt positions the target reads, then hand the shorter
// prompt (fresh positions 0..C-1) to a KV method: full for SpecPC and the baselines, SpecKV
// for SpecKV-PC (with the draft tokens SpecPC's pass already generated: one draft pass).
#include <random>

#include "methods/prompt_selection.h"
#include "methods/registry.h"
#include "util/error.h"
#include "util/stopwatch.h"

namespace dapx {

std::unique_ptr<Method> make_lookahead_method(const std::string& name, const MethodParams& p);

namespace {

enum class Source { Draft, Target, Perplexity, Random };

class PromptCompression : public Method {
 public:
  PromptCompression(std::string name, Source source, bool then_speckv, const MethodParams& p)
      : name_(std::move(name)), source_(source), then_speckv_(then_speckv), p_(p) {
    sp_.budget = p.budget;
    if (p.window >= 0) sp_.window = p.window;
    if (p.kernel >= 0) sp_.kernel = p.kernel;
    sp_.pool = parse_pool(p.pool, sp_.pool);
    sp_.reduce = parse_reduce(p.reduce, sp_.reduce);
    sp_.neighbors = p.neighbors;
    sp_.first_layer = p.first_layer;
    sp_.lookahead = p.lookahead >= 0 ? p.lookahead : (then_speckv ? 8 : 1);
    if (sp_.budget < 1) throw Error("--budget must be >= 1 (prompt tokens kept)");
    if (sp_.window < 1 || sp_.window > sp_.budget)
      throw Error("--window (" + std::to_string(sp_.window) + ") must be between 1 and --budget (" +
                  std::to_string(sp_.budget) + ")");
    if (sp_.kernel < 1) throw Error("--kernel must be >= 1");
    if (sp_.neighbors < 1) throw Error("--neighbors must be >= 1");
    if (sp_.first_layer < 0) throw Error("--first-layer must be >= 0");
    if ((source == Source::Draft || source == Source::Perplexity || then_speckv) && !p.draft)
      throw Error("--method " + name_ + " needs a draft model: pass --draft DIR");
    if (source != Source::Target && source != Source::Random && sp_.lookahead < 1)
      throw Error("--lookahead must be >= 1 for " + name_);
    if (then_speckv) {
      MethodParams kv;
      kv.budget = p.kv_budget;
      kv.draft = p.draft;
      kv.record_selection = p.record_selection;
      kv.prefill = p.prefill;
      kv.vertical = p.vertical;
      kv.band = p.band;
      kv_method_ = make_lookahead_method("speckv", kv);
    } else {
      kv_method_ = std::make_unique<FullKV>();
    }
  }
  std::string name() const override { return name_; }

  PrefillResult prefill(const Transformer& target, const PrefillRequest& req) override {
    const int64_t n = static_cast<int64_t>(req.prompt.size());
    std::vector<int64_t> kept;
    std::vector<int> lookahead;
    double draft_s = 0;
    if (source_ == Source::Draft || source_ == Source::Target) {
      const PromptImportance imp =
          draft_prompt_importance(source_ == Source::Draft ? *p_.draft : target, req.prompt, sp_);
      kept = select_prompt_positions(imp.importance, effective(n));
      lookahead = imp.lookahead;
      draft_s = imp.seconds;
    } else if (source_ == Source::Perplexity) {
      kept = top_positions_with_window(draft_token_loss(*p_.draft, req.prompt), sp_.budget,
                                       std::min(sp_.window, n));
    } else {
      std::mt19937_64 rng(p_.seed);
      std::uniform_real_distribution<float> uni(0.f, 1.f);
      std::vector<float> r(n);
      for (auto& v : r) v = uni(rng);
      kept =
          top_positions_with_window(at::tensor(r, at::kFloat), sp_.budget, std::min(sp_.window, n));
    }
    std::vector<int> compressed;
    for (int64_t i : kept) compressed.push_back(req.prompt[i]);
    PrefillRequest inner{compressed, req.max_new_tokens, then_speckv_ ? &lookahead : nullptr};
    const Stopwatch clock;
    PrefillResult r = kv_method_->prefill(target, inner);
    r.info["target_prefill_s"] = clock.seconds();
    r.info["kept_prompt_positions"] = kept;
    r.info["compressed_prompt_tokens"] = compressed;
    r.info["kept_ratio"] = static_cast<double>(kept.size()) / static_cast<double>(n);
    r.info["draft_s"] = draft_s;
    return r;
  }

 private:
  // A prompt shorter than the window keeps everything anyway.
  SpecPCParams effective(int64_t n) const {
    SpecPCParams p = sp_;
    p.window = std::min(p.window, n);
    return p;
  }
  std::string name_;
  Source source_;
  bool then_speckv_;
  MethodParams p_;
  SpecPCParams sp_;
  std::unique_ptr<Method> kv_method_;
};

}  // namespace

std::unique_ptr<Method> make_prompt_method(const std::string& name, const MethodParams& p) {
  if (name == "specpc") return std::make_unique<PromptCompression>(name, Source::Draft, false, p);
  if (name == "speckv-pc") return std::make_unique<PromptCompression>(name, Source::Draft, true, p);
  if (name == "target-pc")
    return std::make_unique<PromptCompression>(name, Source::Target, false, p);
  if (name == "ppl-pc")
    return std::make_unique<PromptCompression>(name, Source::Perplexity, false, p);
  return std::make_unique<PromptCompression>(name, Source::Random, false, p);
}

}  // namespace dapx
