#pragma once
// Causal multi-head attention of new queries over a layer's cache, in f32, without ever
// repeating K/V for GQA and without a score matrix for the whole prompt.
#include <ATen/ATen.h>

#include <vector>

namespace dapx {

// Floats in one query block's score buffer: 16 MiB. Below glibc's largest mmap threshold
// (32 MiB), so after the first block the buffers come back from the heap instead of being
// mapped and page-faulted in for every block; 64 MiB blocks made prefill 1.35x slower at 4k
// and the tiny draft's 16k prefill 1.8x slower.
constexpr int64_t kScoreBufferFloats = int64_t{4} << 20;

// q: [heads, t, d] (the t newest tokens), k/v: [kv_heads, len, d] where the last t entries
// are the new tokens themselves and the first len - t are older (all visible). Query i sees
// every older entry and new entries 0..i. Returns [heads, t, d]. key_mask (bool [kv_heads,
// len], optional) hides padded slots of a head-adaptive cache.
// On an f32 or bf16 CPU cache the raw kernels run (decode_attention for t == 1, prefill_attention
// otherwise); on CUDA fused_attention where it applies; elsewhere blocked_attention.
// bf16_products: the CPU prefill kernel's products on bf16 pairs where the CPU has them
// (PrefillAttention::bf16_products).
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& key_mask = {}, bool bf16_products = false);

// As causal_attention for queries at positions pos0..pos0+t-1 of a cache that may hold later
// keys too (hidden from them): a prefill chunk resumed inside cached prefix blocks. On the raw
// CPU kernels always the prefill kernel, so each row gets the bits it gets in its whole chunk.
at::Tensor attention_at(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                        const at::Tensor& key_mask, int64_t pos0, bool bf16_products = false);

// On a GPU with LibTorch >= 2: LibTorch's fused scaled_dot_product_attention (flash or
// memory-efficient kernels: no score matrix), same arguments and result as causal_attention,
// differentiable. Applies where the queries are on CUDA and no key mask hides slots.
bool fused_attention_applies(const at::Tensor& q, const at::Tensor& key_mask);
at::Tensor fused_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// The same through LibTorch's matmul and softmax, on any device: queries in blocks whose
// [heads, block, len] score buffer holds at most max_score_floats. Differentiable (training).
at::Tensor blocked_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             int64_t max_score_floats = kScoreBufferFloats,
                             const at::Tensor& key_mask = {});

// Where the raw CPU kernels below apply: f32 or bf16 CPU caches, contiguous key rows, K and V of
// equal layout.
bool raw_kernels_apply(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// Prefill attention on an f32 or bf16 CPU cache, the work of attend_prefill (prefill_attention.h):
// tiled, online softmax, no score matrix. q [heads, t, d] at positions pos0.. (-1: the last t
// keys), k/v the layer's live [kv_heads, len, d] views, key_mask as above. band > 0 makes it
// sparse (sparse_attention.h): the band plus vertical, int64 [kv_heads, V] ascending positions.
at::Tensor prefill_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const at::Tensor& key_mask = {}, int64_t pos0 = -1, int64_t band = 0,
                             const at::Tensor& vertical = {}, bool bf16_products = false);

// H2O's key scores on an f32 or bf16 CPU cache, the work of attention_column_sums
// (prefill_attention.h): q [heads, rows, d] with row r at positions[r] (seeing keys <= it),
// keys [kv_heads, len, d]; returns [kv_heads, n_scored]: per KV head, its group's softmax
// probabilities summed over rows and heads, per key.
at::Tensor accumulated_attention(const at::Tensor& q, const at::Tensor& keys,
                                 const std::vector<int64_t>& positions, int64_t n_scored);

// One new token over an f32 or bf16 CPU cache (decode), on raw buffers: q [heads, d] (already
// rotated), k/v the layer's live [kv_heads, len, d] views whose last entry is this token,
// key_mask as above; writes out [heads, d]. The work is attend_one_token's
// (decode_attention.h); causal_attention uses it for t == 1 on CPU.
void decode_attention(const float* q, int64_t heads, const at::Tensor& k, const at::Tensor& v,
                      const at::Tensor& key_mask, float* out);

}  // namespace dapx
