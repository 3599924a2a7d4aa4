// The decode step: one token through every layer on raw f32 buffers. Same formulas as
// layer_forward, but the per-token vector work (norms, RoPE, bias, SiLU, residuals, the KV
// append) runs as plain loops and each layer's products go through a handful of batched
// GEMVs, so LibTorch dispatch (tens of microseconds per layer) no longer rivals the weight
// reads that bound decoding.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/activation_rows.h"
#include "model/attention.h"
#include "model/transformer.h"
#include "model/vector_ops.h"
#include "util/error.h"

namespace dapx {

at::Tensor Transformer::decode(int token, int64_t pos, KVCache& cache,
                               QueryCapture* capture) const {
  if (!opts_.device.is_cpu()) throw Error("the raw decode step runs on the CPU only");
  check_token(token);
  const int64_t h = cfg_.hidden_size, d = cfg_.head_dim, heads = cfg_.num_heads,
                kv_heads = cfg_.num_kv_heads, inter = cfg_.intermediate_size;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  std::vector<float> x(h), normed(h), q(heads * d), k(kv_heads * d), v(kv_heads * d),
      attn(heads * d), gate(inter), up(inter), cos(d / 2), sin(d / 2);

  if (embed_tokens_.scalar_type() == at::kBFloat16) {
    const auto* row = reinterpret_cast<const uint16_t*>(embed_tokens_.data_ptr()) + token * h;
    for (int64_t i = 0; i < h; ++i) x[i] = bf16_to_float(row[i]);
  } else {
    const float* row = embed_tokens_.data_ptr<float>() + token * h;
    std::copy(row, row + h, x.begin());
  }
  rope_.angles(pos, cos.data(), sin.data());

  for (int l = 0; l < cfg_.num_layers; ++l) {
    const LayerWeights& w = layers_[l];
    rms_norm_row(x.data(), w.attn_norm.data_ptr<float>(), h, eps, normed.data());
    const GemvTarget qkv[] = {w.q.gemv_target(normed.data(), q.data()),
                              w.k.gemv_target(normed.data(), k.data()),
                              w.v.gemv_target(normed.data(), v.data())};
    gemv_batch(qkv, 3, h, 1);
    w.q.add_bias(q.data());
    w.k.add_bias(k.data());
    w.v.add_bias(v.data());
    if (cfg_.qk_norm) {
      for (int64_t i = 0; i < heads; ++i)
        rms_norm_row(q.data() + i * d, w.q_norm.data_ptr<float>(), d, eps, q.data() + i * d);
      for (int64_t i = 0; i < kv_heads; ++i)
        rms_norm_row(k.data() + i * d, w.k_norm.data_ptr<float>(), d, eps, k.data() + i * d);
    }
    rotate_half_rows(q.data(), heads, d, cos.data(), sin.data());
    rotate_half_rows(k.data(), kv_heads, d, cos.data(), sin.data());

    LayerKV& kv = cache.layer(l);
    kv.append_token(k.data(), v.data(), pos);
    if (capture)
      capture_queries(*capture, l, cfg_.num_layers,
                      at::from_blob(q.data(), {heads, 1, d}, at::TensorOptions(at::kFloat)), pos);
    decode_attention(q.data(), heads, kv.keys(), kv.values(), kv.key_mask(), attn.data());

    const GemvTarget o = w.o.gemv_target(attn.data(), normed.data());
    gemv_batch(&o, 1, heads * d, 1);
    add_row(x.data(), normed.data(), h);
    rms_norm_row(x.data(), w.mlp_norm.data_ptr<float>(), h, eps, normed.data());
    const GemvTarget gate_up[] = {w.gate.gemv_target(normed.data(), gate.data()),
                                  w.up.gemv_target(normed.data(), up.data())};
    gemv_batch(gate_up, 2, h, 1);
    silu_mul_rows(gate.data(), up.data(), inter);  // one row: no parallel region
    const GemvTarget down = w.down.gemv_target(gate.data(), normed.data());
    gemv_batch(&down, 1, inter, 1);
    add_row(x.data(), normed.data(), h);
  }

  rms_norm_row(x.data(), final_norm_.data_ptr<float>(), h, eps, normed.data());
  at::Tensor logits = at::empty({cfg_.vocab_size}, at::kFloat);
  const GemvTarget head = lm_head_.gemv_target(normed.data(), logits.data_ptr<float>());
  gemv_batch(&head, 1, h, 1);
  lm_head_.add_bias(logits.data_ptr<float>());
  return logits;
}

}  // namespace dapx
