#include "model/sparse_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace dapx {

at::Tensor sparse_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            int64_t pos0, const at::Tensor& vertical, int64_t band,
                            bool bf16_products) {
  if (!raw_kernels_apply(q, k, v) || band < 1)
    return blocked_sparse_attention(q, k, v, pos0, vertical, band);
  return prefill_attention(q, k, v, {}, pos0, band, vertical, bf16_products);
}

at::Tensor blocked_sparse_attention(const at::Tensor& q, const at::Tensor& cache_k,
                                    const at::Tensor& cache_v, int64_t pos0,
                                    const at::Tensor& vertical, int64_t band,
                                    int64_t max_score_floats) {
  // A cache in another dtype than the queries (bf16 on a GPU) is computed on in theirs.
  const at::Tensor k = cache_k.to(q.scalar_type()), v = cache_v.to(q.scalar_type());
  const int64_t heads = q.size(0), t = q.size(1), d = q.size(2);
  const int64_t kv_heads = k.size(0), group = heads / kv_heads, nv = vertical.size(1);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const auto long_opts = q.options().dtype(at::kLong);
  // vertical keys and values gathered once per layer: [kv, V, d]
  const at::Tensor vidx = vertical.unsqueeze(-1).expand({kv_heads, nv, d});
  const at::Tensor kv_keys = at::gather(k, 1, vidx), kv_vals = at::gather(v, 1, vidx);
  const at::Tensor qg = q.view({kv_heads, group, t, d});
  at::Tensor out = at::empty({kv_heads, group, t, d}, q.options());
  const int64_t block =
      std::max<int64_t>(1, max_score_floats / std::max<int64_t>(1, heads * (nv + band + 1)));
  for (int64_t b0 = 0; b0 < t; b0 += block) {
    const int64_t nb = std::min(block, t - b0), p0 = pos0 + b0;
    const at::Tensor qpos = at::arange(p0, p0 + nb, long_opts).view({nb, 1});
    const at::Tensor qb = qg.narrow(2, b0, nb).reshape({kv_heads, group * nb, d});
    // band part: keys [lo, p0 + nb) cover every query's (p - band, p]
    const int64_t lo = std::max<int64_t>(0, p0 - band + 1), nband = p0 + nb - lo;
    at::Tensor sb = at::bmm(qb, k.narrow(1, lo, nband).transpose(1, 2)).mul_(scale);
    const at::Tensor bpos = at::arange(lo, p0 + nb, long_opts).view({1, nband});
    sb.view({kv_heads, group, nb, nband})
        .masked_fill_((bpos > qpos) | (bpos <= qpos - band), neg_inf);
    // vertical part: only keys older than the band
    at::Tensor sv = at::bmm(qb, kv_keys.transpose(1, 2)).mul_(scale);  // [kv, g*nb, V]
    const at::Tensor vpos = vertical.view({kv_heads, 1, 1, nv});
    sv.view({kv_heads, group, nb, nv})
        .masked_fill_(vpos > (qpos.view({1, 1, nb, 1}) - band), neg_inf);
    const at::Tensor probs = at::softmax(at::cat({sv, sb}, -1), -1);
    const at::Tensor o = at::bmm(probs.narrow(-1, 0, nv), kv_vals) +
                         at::bmm(probs.narrow(-1, nv, nband), v.narrow(1, lo, nband));
    out.narrow(2, b0, nb).copy_(o.view({kv_heads, group, nb, d}));
  }
  return out.view({heads, t, d});
}

}  // namespace dapx
