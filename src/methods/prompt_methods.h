#pragma once
// Prompt compression: SpecPC (the draft's attention), SpecKV-PC (SpecPC, then SpecKV on the
// shorter prompt with SpecPC's draft tokens) and the baselines (the target's own attention,
// the draft's per-token loss, random choice).
#include <memory>

#include "methods/method.h"
#include "methods/method_args.h"

namespace dapx {

enum class PromptSource { Draft, Target, Perplexity, Random };

// Parameters: budget (prompt tokens kept), window, and per source kernel, pool, reduce,
// lookahead, neighbors, first_layer (attention sources) or selection_seed (random).
// kv_method runs on the compressed prompt (null: full KV); a SpecKV there receives the draft
// tokens of this method's own draft pass.
std::unique_ptr<Method> make_prompt_method(const MethodArgs& args, PromptSource source,
                                           std::unique_ptr<Method> kv_method = nullptr);

}  // namespace dapx
