#include "methods/knorm_press.h"

namespace dapx {

at::Tensor KNormPress::scores(const LayerContext& ctx) const {
  // RoPE rotates pairs of dimensions, so the norm of a post-RoPE key is its pre-RoPE norm.
  return -ctx.keys.narrow(1, 0, ctx.plan.scored_end).to(at::kFloat).norm(2, -1);
}

}  // namespace dapx
