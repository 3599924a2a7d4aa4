#pragma once
// SpecKV and LAQ: lookahead tokens approximate the answer; their queries (with the last W
// prompt tokens and the last prompt token) score the target's prompt KV per head.
#include <memory>

#include "methods/kv_press.h"
#include "methods/method_args.h"

namespace dapx {

// The target runs prompt + lookahead; observation rows are the last W + L + 1 positions;
// keys [0, n-W-1) compete for budget - W entries; [n-W-1, n-1) is always kept; the last
// prompt token and the lookahead are not cached (the last prompt token is fed again).
CompressionPlan speckv_plan(const std::vector<int>& prompt, const std::vector<int>& lookahead,
                            int64_t window);

// SpecKV (use_draft: the draft's lookahead) or LAQ (the target's own). Parameters: budget,
// window, kernel, pool, reduce, lookahead (unset: the request's max_new_tokens), prefill,
// vertical, band.
std::unique_ptr<Method> make_lookahead_method(const MethodArgs& args, bool use_draft);

}  // namespace dapx
