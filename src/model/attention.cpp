#include "model/attention.h"

#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "model/decode_attention.h"
#include "model/prefill_attention.h"
#include "util/error.h"

namespace dapx {

namespace {

bool raw_cache_dtype(at::ScalarType t) { return t == at::kFloat || t == at::kBFloat16; }

// The raw kernels read an f32 or bf16 CPU cache with contiguous rows, K and V of equal layout
// and dtype.
void check_raw_cache(const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_mask,
                     const char* what) {
  if (k.dim() != 3 || !v.sizes().equals(k.sizes()) || !v.strides().equals(k.strides()))
    throw Error(std::string(what) + ": keys and values must be [kv_heads, len, d] of equal layout");
  if (!k.is_cpu() || !v.is_cpu() || !raw_cache_dtype(k.scalar_type()) ||
      v.scalar_type() != k.scalar_type() || k.stride(2) != 1 || k.stride(1) != k.size(2))
    throw Error(std::string(what) + ": needs an f32 or bf16 CPU cache with contiguous rows");
  if (key_mask.defined() && (!key_mask.is_cpu() || key_mask.dim() != 2 ||
                             key_mask.size(0) != k.size(0) || key_mask.size(1) < k.size(1)))
    throw Error(std::string(what) + ": key mask must be [kv_heads, len] on the CPU");
}

// The cache's mask is a bool view with unit row stride: used in place (no copy per layer).
at::Tensor bool_rows(const at::Tensor& key_mask) {
  return !key_mask.defined() || (key_mask.scalar_type() == at::kBool && key_mask.stride(1) == 1)
             ? key_mask
             : key_mask.to(at::kBool).contiguous();
}

// Points a kernel's arguments (DecodeAttention or PrefillAttention) at the layer's cache and
// mask; returns the mask tensor the pointer reads, to be kept alive while the kernel runs.
template <typename Args>
at::Tensor point_at_cache(Args& a, const at::Tensor& k, const at::Tensor& v,
                          const at::Tensor& key_mask) {
  a.k = k.data_ptr();
  a.v = v.data_ptr();
  a.bf16 = k.scalar_type() == at::kBFloat16;
  a.head_stride = k.stride(0);
  a.kv_heads = k.size(0);
  a.len = k.size(1);
  a.d = k.size(2);
  const at::Tensor mask = bool_rows(key_mask);
  if (mask.defined()) {
    a.mask = mask.data_ptr<bool>();
    a.mask_stride = mask.stride(0);
  }
  return mask;
}

}  // namespace

bool raw_kernels_apply(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  return q.is_cpu() && k.is_cpu() && v.is_cpu() && q.scalar_type() == at::kFloat &&
         raw_cache_dtype(k.scalar_type()) && v.scalar_type() == k.scalar_type() && k.dim() == 3 &&
         k.stride(2) == 1 && k.stride(1) == k.size(2) && v.strides().equals(k.strides());
}

void decode_attention(const float* q, int64_t heads, const at::Tensor& k, const at::Tensor& v,
                      const at::Tensor& key_mask, float* out) {
  check_raw_cache(k, v, key_mask, "decode attention");
  DecodeAttention a;
  const at::Tensor mask = point_at_cache(a, k, v, key_mask);
  a.q = q;
  a.heads = heads;
  a.out = out;
  attend_one_token(a);
}

at::Tensor prefill_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const at::Tensor& key_mask, int64_t pos0, int64_t band,
                             const at::Tensor& vertical, bool bf16_products) {
  check_raw_cache(k, v, key_mask, "prefill attention");
  if (q.dim() != 3 || q.size(2) != k.size(2) || q.size(1) > k.size(1))
    throw Error("prefill attention: queries must be [heads, t <= len, d]");
  const at::Tensor qc = q.contiguous();
  at::Tensor out = at::empty(q.sizes(), q.options());
  PrefillAttention a;
  const at::Tensor mask = point_at_cache(a, k, v, key_mask);
  a.q = qc.data_ptr<float>();
  a.heads = q.size(0);
  a.t = q.size(1);
  a.pos0 = pos0;
  at::Tensor vert;
  if (band > 0) {
    vert = vertical.to(at::kCPU, at::kLong).contiguous();
    if (vert.dim() != 2 || vert.size(0) != k.size(0))
      throw Error("sparse attention: vertical keys must be [kv_heads, V]");
    a.band = band;
    a.vertical = vert.data_ptr<int64_t>();
    a.n_vertical = a.vertical_stride = vert.size(1);
  }
  a.out = out.data_ptr<float>();
  a.bf16_products = bf16_products;
  attend_prefill(a);
  return out;
}

at::Tensor accumulated_attention(const at::Tensor& q, const at::Tensor& keys,
                                 const std::vector<int64_t>& positions, int64_t n_scored) {
  check_raw_cache(keys, keys, {}, "accumulated attention");
  if (q.dim() != 3 || q.size(2) != keys.size(2) || q.size(1) != int64_t(positions.size()))
    throw Error("accumulated attention: queries must be [heads, rows, d], one position per row");
  const at::Tensor qc = q.contiguous();
  at::Tensor out = at::empty({keys.size(0), n_scored}, q.options());
  AttentionColumnSums a;
  a.q = qc.data_ptr<float>();
  a.k = keys.data_ptr();
  a.bf16 = keys.scalar_type() == at::kBFloat16;
  a.head_stride = keys.stride(0);
  a.positions = positions.data();
  a.heads = q.size(0);
  a.kv_heads = keys.size(0);
  a.rows = q.size(1);
  a.len = keys.size(1);
  a.d = keys.size(2);
  a.n_scored = n_scored;
  a.out = out.data_ptr<float>();
  attention_column_sums(a);
  return out;
}

bool fused_attention_applies(const at::Tensor& q, const at::Tensor& key_mask) {
#if TORCH_VERSION_MAJOR >= 2
  return q.is_cuda() && !key_mask.defined();
#else
  return false;  // LibTorch 1.x has no scaled_dot_product_attention
#endif
}

at::Tensor fused_attention(const at::Tensor& q, const at::Tensor& cache_k,
                           const at::Tensor& cache_v) {
#if TORCH_VERSION_MAJOR >= 2
  const at::Tensor k = cache_k.to(q.scalar_type()), v = cache_v.to(q.scalar_type());
  const int64_t heads = q.size(0), t = q.size(1), d = q.size(2);
  const int64_t kv_heads = k.size(0), len = k.size(1), group = heads / kv_heads;
  // Each query head's K/V: a copy of the layer's (small next to the n x n scores it avoids)
  // that every SDPA kernel takes, whatever its GQA support.
  const auto per_head = [&](const at::Tensor& x) {
    return group == 1 ? x
                      : x.unsqueeze(1).expand({kv_heads, group, len, d}).reshape({heads, len, d});
  };
  // The queries are the last t keys. t == len: SDPA's own causal mask (its alignment is the
  // top-left corner, right when t == len); t == 1 sees everything; otherwise a [t, len] mask,
  // bottom-right aligned: query i sees keys <= len - t + i.
  c10::optional<at::Tensor> mask;
  if (t > 1 && t < len) {
    const at::Tensor qi = at::arange(t, q.options().dtype(at::kLong)).unsqueeze(1);
    const at::Tensor kj = at::arange(len, q.options().dtype(at::kLong)).unsqueeze(0);
    mask = kj <= qi + (len - t);
  }
  return at::scaled_dot_product_attention(q.unsqueeze(0), per_head(k).unsqueeze(0),
                                          per_head(v).unsqueeze(0), mask, 0.0,
                                          /*is_causal=*/t > 1 && t == len)
      .squeeze(0);
#else
  throw Error("fused attention needs LibTorch >= 2.0 (this build has " TORCH_VERSION ")");
#endif
}

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& key_mask, bool bf16_products) {
  if (q.dim() != 3 || k.dim() != 3 || q.size(2) != k.size(2))
    throw Error("attention: queries must be [heads, t, d] over keys [kv_heads, len, d]");
  if (fused_attention_applies(q, key_mask)) return fused_attention(q, k, v);
  if (!raw_kernels_apply(q, k, v)) return blocked_attention(q, k, v, kScoreBufferFloats, key_mask);
  if (q.size(1) != 1)  // (t = 0 included)
    return prefill_attention(q, k, v, key_mask, -1, 0, {}, bf16_products);
  const at::Tensor qc = q.contiguous();
  at::Tensor out = at::empty(q.sizes(), q.options());
  decode_attention(qc.data_ptr<float>(), q.size(0), k, v, key_mask, out.data_ptr<float>());
  return out;
}

at::Tensor attention_at(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                        const at::Tensor& key_mask, int64_t pos0, bool bf16_products) {
  if (q.dim() != 3 || k.dim() != 3 || pos0 < 0 || pos0 + q.size(1) > k.size(1))
    throw Error("attention: queries at positions past the cache's keys");
  if (raw_kernels_apply(q, k, v))
    return prefill_attention(q, k, v, key_mask, pos0, 0, {}, bf16_products);
  const int64_t len = pos0 + q.size(1);
  return causal_attention(q, k.narrow(1, 0, len), v.narrow(1, 0, len),
                          key_mask.defined() ? key_mask.narrow(1, 0, len) : key_mask,
                          bf16_products);
}

at::Tensor blocked_attention(const at::Tensor& q, const at::Tensor& cache_k,
                             const at::Tensor& cache_v, int64_t max_score_floats,
                             const at::Tensor& key_mask) {
  // A cache in another dtype than the queries (bf16 on a GPU) is computed on in theirs.
  const at::Tensor k = cache_k.to(q.scalar_type()), v = cache_v.to(q.scalar_type());
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
