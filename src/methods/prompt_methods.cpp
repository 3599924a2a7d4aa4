// Prompt compression: choose the prompt positions the target reads, then hand the shorter
// prompt (fresh positions 0..C-1) to a KV method: full for SpecPC and the baselines, SpecKV
// for SpecKV-PC (with the draft tokens SpecPC's pass already generated: one draft pass).
#include "methods/prompt_methods.h"

#include <random>

#include "methods/kv_method.h"
#include "methods/prompt_selection.h"
#include "util/error.h"
#include "util/stopwatch.h"

namespace dapx {
namespace {

class PromptCompression : public Method {
 public:
  PromptCompression(const MethodArgs& a, PromptSource source, std::unique_ptr<Method> kv_method)
      : name_(a.method()),
        source_(source),
        draft_(a.options().draft),
        seed_(a.has("selection_seed") ? static_cast<uint64_t>(a.integer("selection_seed")) : 0),
        then_speckv_(kv_method != nullptr),
        kv_method_(kv_method ? std::move(kv_method) : std::make_unique<FullKV>()) {
    sp_.budget = a.integer("budget");
    sp_.window = a.integer("window");
    if (a.has("kernel")) sp_.kernel = a.integer("kernel");
    if (a.has("pool")) sp_.pool = parse_pool(a.text("pool"));
    if (a.has("reduce")) sp_.reduce = parse_reduce(a.text("reduce"));
    if (a.has("neighbors")) sp_.neighbors = a.integer("neighbors");
    if (a.has("first_layer")) sp_.first_layer = a.integer("first_layer");
    if (a.has("lookahead")) sp_.lookahead = a.integer("lookahead");
    if (sp_.window > sp_.budget)
      a.fail("window (" + std::to_string(sp_.window) + ") must not exceed budget (" +
             std::to_string(sp_.budget) + ")");
    if ((source == PromptSource::Draft || source == PromptSource::Perplexity) && !draft_)
      a.fail("needs a draft model (same tokenizer as the target)");
  }
  std::string name() const override { return name_; }

  PrefillResult prefill(const Transformer& target, const PrefillRequest& req) override {
    const int64_t n = static_cast<int64_t>(req.prompt.size());
    std::vector<int64_t> kept;
    std::vector<int> lookahead;
    double draft_s = 0;
    int64_t draft_cached = 0;
    if (source_ == PromptSource::Draft || source_ == PromptSource::Target) {
      const bool draft = source_ == PromptSource::Draft;
      const PromptImportance imp =
          draft_prompt_importance(draft ? *draft_ : target, req.prompt, sp_,
                                  draft ? req.draft_prefix_cache : req.prefix_cache);
      draft_cached = imp.prefix_cached_tokens;
      kept = select_prompt_positions(imp.importance, effective(n));
      lookahead = imp.lookahead;
      draft_s = imp.seconds;
    } else if (source_ == PromptSource::Perplexity) {
      const Stopwatch draft_clock;
      const at::Tensor loss = draft_token_loss(*draft_, req.prompt);
      draft_s = draft_clock.seconds();
      kept = top_positions_with_window(loss, sp_.budget, std::min(sp_.window, n));
    } else {
      std::mt19937_64 rng(seed_);
      std::uniform_real_distribution<float> uni(0.f, 1.f);
      std::vector<float> r(n);
      for (auto& v : r) v = uni(rng);
      kept =
          top_positions_with_window(at::tensor(r, at::kFloat), sp_.budget, std::min(sp_.window, n));
    }
    std::vector<int> compressed;
    for (int64_t i : kept) compressed.push_back(req.prompt[i]);
    // The compressed prompt is a prompt of its own: its K/V at fresh positions depend only on
    // its tokens, so the prefix cache serves it where its first blocks match a cached prompt.
    PrefillRequest inner{compressed, req.max_new_tokens, then_speckv_ ? &lookahead : nullptr,
                         req.prefix_cache, req.draft_prefix_cache};
    const Stopwatch clock;
    PrefillResult r = kv_method_->prefill(target, inner);
    r.info["target_prefill_s"] = clock.seconds();
    r.info["kept_prompt_positions"] = kept;
    r.info["compressed_prompt_tokens"] = compressed;
    r.info["kept_ratio"] = static_cast<double>(kept.size()) / static_cast<double>(n);
    r.info["draft_s"] = draft_s;
    r.info["draft_prefix_cached_tokens"] = draft_cached;
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
  PromptSource source_;
  const Transformer* draft_;
  uint64_t seed_;
  SpecPCParams sp_;
  bool then_speckv_;  // kv_method_ is SpecKV: it gets this pass's draft tokens
  std::unique_ptr<Method> kv_method_;
};

}  // namespace

std::unique_ptr<Method> make_prompt_method(const MethodArgs& args, PromptSource source,
                                           std::unique_ptr<Method> kv_method) {
  return std::make_unique<PromptCompression>(args, source, std::move(kv_method));
}

}  // namespace dapx
