// The decode step: one token of each of B sequences through every layer on raw f32 buffers.
// Same formulas as layer_forward, but the per-token vector work (norms, RoPE, bias, SiLU,
// residuals, the KV append) runs as plain loops and each layer's products go through a handful
// of batched GEMVs over the B rows, so one step reads every weight once however many sequences
// it serves, and LibTorch dispatch (tens of microseconds per layer) never rivals the weight
// reads that bound decoding. Attention is per sequence, over that sequence's own cache.
// A row's result never depends on its batch-mates: every kernel here treats rows alone.
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
  const DecodeRow row{token, pos, &cache};
  return decode_batch(&row, 1, capture).select(0, 0);
}

at::Tensor Transformer::decode_batch(const DecodeRow* rows, int count,
                                     QueryCapture* capture) const {
  if (!opts_.device.is_cpu()) throw Error("the raw decode step runs on the CPU only");
  if (count < 1) throw Error("decode_batch: no rows");
  if (capture && count != 1) throw Error("decode_batch: query capture needs a batch of one");
  for (int r = 0; r < count; ++r) {
    check_token(rows[r].token);
    if (!rows[r].cache) throw Error("decode_batch: a row without a cache");
  }
  const int64_t h = cfg_.hidden_size, d = cfg_.head_dim, heads = cfg_.num_heads,
                kv_heads = cfg_.num_kv_heads, inter = cfg_.intermediate_size, b = count;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  std::vector<float> x(b * h), normed(b * h), q(b * heads * d), k(b * kv_heads * d),
      v(b * kv_heads * d), attn(b * heads * d), gate(b * inter), up(b * inter), cos(b * d / 2),
      sin(b * d / 2);

  for (int64_t r = 0; r < b; ++r) {
    const int64_t token = rows[r].token;
    float* xr = x.data() + r * h;
    if (embed_tokens_.scalar_type() == at::kBFloat16) {
      const auto* row = reinterpret_cast<const uint16_t*>(embed_tokens_.data_ptr()) + token * h;
      for (int64_t i = 0; i < h; ++i) xr[i] = bf16_to_float(row[i]);
    } else {
      const float* row = embed_tokens_.data_ptr<float>() + token * h;
      std::copy(row, row + h, xr);
    }
    rope_.angles(rows[r].pos, cos.data() + r * d / 2, sin.data() + r * d / 2);
  }

  for (int l = 0; l < cfg_.num_layers; ++l) {
    const LayerWeights& w = layers_[l];
    for (int64_t r = 0; r < b; ++r)
      rms_norm_row(x.data() + r * h, w.attn_norm.data_ptr<float>(), h, eps, normed.data() + r * h);
    const GemvTarget qkv[] = {w.q.gemv_target(normed.data(), q.data()),
                              w.k.gemv_target(normed.data(), k.data()),
                              w.v.gemv_target(normed.data(), v.data())};
    gemv_batch(qkv, 3, h, count);
    w.q.add_bias(q.data(), count);
    w.k.add_bias(k.data(), count);
    w.v.add_bias(v.data(), count);
    for (int64_t r = 0; r < b; ++r) {
      float* qr = q.data() + r * heads * d;
      float* kr = k.data() + r * kv_heads * d;
      if (cfg_.qk_norm) {
        for (int64_t i = 0; i < heads; ++i)
          rms_norm_row(qr + i * d, w.q_norm.data_ptr<float>(), d, eps, qr + i * d);
        for (int64_t i = 0; i < kv_heads; ++i)
          rms_norm_row(kr + i * d, w.k_norm.data_ptr<float>(), d, eps, kr + i * d);
      }
      rotate_half_rows(qr, heads, d, cos.data() + r * d / 2, sin.data() + r * d / 2);
      rotate_half_rows(kr, kv_heads, d, cos.data() + r * d / 2, sin.data() + r * d / 2);

      LayerKV& kv = rows[r].cache->layer(l);
      kv.append_token(kr, v.data() + r * kv_heads * d, rows[r].pos);
      if (capture)
        capture_queries(*capture, l, cfg_.num_layers,
                        at::from_blob(qr, {heads, 1, d}, at::TensorOptions(at::kFloat)),
                        rows[r].pos);
      decode_attention(qr, heads, kv.keys(), kv.values(), kv.key_mask(),
                       attn.data() + r * heads * d);
    }

    const GemvTarget o = w.o.gemv_target(attn.data(), normed.data());
    gemv_batch(&o, 1, heads * d, count);
    add_row(x.data(), normed.data(), b * h);
    for (int64_t r = 0; r < b; ++r)
      rms_norm_row(x.data() + r * h, w.mlp_norm.data_ptr<float>(), h, eps, normed.data() + r * h);
    const GemvTarget gate_up[] = {w.gate.gemv_target(normed.data(), gate.data()),
                                  w.up.gemv_target(normed.data(), up.data())};
    gemv_batch(gate_up, 2, h, count);
    for (int64_t r = 0; r < b; ++r)  // row by row: one row's pass, as a batch of one takes it
      silu_mul_rows(gate.data() + r * inter, up.data() + r * inter, inter);
    const GemvTarget down = w.down.gemv_target(gate.data(), normed.data());
    gemv_batch(&down, 1, inter, count);
    add_row(x.data(), normed.data(), b * h);
  }

  for (int64_t r = 0; r < b; ++r)
    rms_norm_row(x.data() + r * h, final_norm_.data_ptr<float>(), h, eps, normed.data() + r * h);
  at::Tensor logits = at::empty({b, cfg_.vocab_size}, at::kFloat);
  const GemvTarget head = lm_head_.gemv_target(normed.data(), logits.data_ptr<float>());
  gemv_batch(&head, 1, h, count);
  lm_head_.add_bias(logits.data_ptr<float>(), count);
  return logits;
}

}  // namespace dapx
