#pragma once
// Sparse prefill attention (SpecKV): each query attends to its KV head's "vertical" keys (the
// top-V by observation score) plus a causal local band of the S most recent keys, instead of
// every earlier key.
#include <ATen/ATen.h>

#include "model/attention.h"

namespace dapx {

// q: [heads, t, d] at positions pos0..pos0+t-1; k/v: [kv_heads, n, d] (key j at position j,
// n >= pos0 + t); vertical: int64 [kv_heads, V] key positions, ascending. Query at p sees band
// keys (p - band, p] and vertical keys <= p - band (so a key is never counted twice).
// Returns [heads, t, d]. On an f32 CPU cache the tiled kernel runs (prefill_attention.h,
// attend_prefill); elsewhere (CUDA) blocked_sparse_attention.
at::Tensor sparse_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            int64_t pos0, const at::Tensor& vertical, int64_t band,
                            bool bf16_products = false);

// The same through LibTorch's matmul and softmax, on any device; max_score_floats bounds the
// score buffer of a query block.
at::Tensor blocked_sparse_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    int64_t pos0, const at::Tensor& vertical, int64_t band,
                                    int64_t max_score_floats = kScoreBufferFloats);

}  // namespace dapx
