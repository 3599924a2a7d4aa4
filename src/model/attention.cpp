#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace dapx {

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            int64_t max_score_floats, const at::Tensor& key_mask) {
  const int64_t heads = q.size(0), t = q.size(1), d = q.size(2);
  const int64_t kv_heads = k.size(0), len = k.size(1), group = heads / kv_heads;
  const int64_t older = len - t;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const at::Tensor qg = q.view({kv_heads, group, t, d});
  const at::Tensor kt = k.transpose(1, 2);  // [kv, d, len]
  at::Tensor out = at::empty({kv_heads, group, t, d}, q.options());
  const int64_t block = std::max<int64_t>(1, max_score_floats / std::max<int64_t>(1, heads * len));
  for (int64_t b0 = 0; b0 < t; b0 += block) {
    const int64_t nb = std::min(block, t - b0);
    const int64_t visible = older + b0 + nb;  // keys beyond are hidden from the whole block
    const at::Tensor qb = qg.narrow(2, b0, nb).reshape({kv_heads, group * nb, d});
    at::Tensor scores = at::bmm(qb, kt.narrow(2, 0, visible)).mul_(scale);  // [kv, g*nb, vis]
    if (nb > 1 || visible > older + b0 + 1) {
      // query b0+i sees keys < older + b0 + i + 1
      const at::Tensor qi = at::arange(nb, q.options().dtype(at::kLong)).unsqueeze(1);
      const at::Tensor kj = at::arange(visible, q.options().dtype(at::kLong)).unsqueeze(0);
      const at::Tensor hidden = kj > (qi + (older + b0));  // [nb, visible]
      scores.view({kv_heads, group, nb, visible})
          .masked_fill_(hidden, -std::numeric_limits<float>::infinity());
    }
    if (key_mask.defined())
      scores.masked_fill_(key_mask.narrow(1, 0, visible).unsqueeze(1),
                          -std::numeric_limits<float>::infinity());
    const at::Tensor probs = at::softmax(scores, -1);
    out.narrow(2, b0, nb).copy_(
        at::bmm(probs, v.narrow(1, 0, visible)).view({kv_heads, group, nb, d}));
  }
  return out.view({heads, t, d});
}

}  // namespace dapx
