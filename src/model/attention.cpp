#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "model/gemv.h"

namespace dapx {
namespace {

// One new token on CPU (decode): QK^T is a GEMV over each KV head's keys, which streams the
// cache once instead of going through a batched GEMM with a 1-row operand.
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& key_mask) {
  const int64_t heads = q.size(0), d = q.size(2), kv_heads = k.size(0), len = k.size(1);
  const int64_t group = heads / kv_heads;
  const at::Tensor qc = q.contiguous();
  at::Tensor scores = at::empty({kv_heads, group, len}, q.options());
  for (int64_t h = 0; h < kv_heads; ++h) {
    const at::Tensor kh = k[h];  // [len, d], rows contiguous inside the cache buffer
    gemv_f32(kh.data_ptr<float>(), len, d, qc.data_ptr<float>() + h * group * d,
             static_cast<int>(group), scores[h].data_ptr<float>());
  }
  scores.mul_(1.0 / std::sqrt(static_cast<double>(d)));
  if (key_mask.defined())
    scores.masked_fill_(key_mask.unsqueeze(1), -std::numeric_limits<float>::infinity());
  return at::bmm(at::softmax(scores, -1), v).view({heads, 1, d});
}

}  // namespace

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            int64_t max_score_floats, const at::Tensor& key_mask) {
  const int64_t heads = q.size(0), t = q.size(1), d = q.size(2);
  const int64_t kv_heads = k.size(0), len = k.size(1), group = heads / kv_heads;
  if (t == 1 && q.is_cpu() && k.stride(2) == 1 && k.stride(1) == d && group <= kMaxGemvRows &&
      q.scalar_type() == at::kFloat && k.scalar_type() == at::kFloat &&
      v.scalar_type() == at::kFloat)
    return decode_attention(q, k, v, key_mask);
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
    if (nb > 1) {
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
