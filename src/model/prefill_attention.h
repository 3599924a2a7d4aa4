#pragma once
// Causal attention of a block of new tokens over a cache on raw f32 buffers: the prefill's
// attention, in the manner of flash attention. The queries of one KV head's whole GQA group are
// taken in tiles, the keys in tiles of 64; each query row keeps a running max, sum and
// weighted value sum (online softmax), so a score never leaves the tile (no [heads, t, len]
// matrix, no masks built in memory) and each key/value tile is read once per query tile.
// Torch-free (raw pointers) so it runs under the sanitizers.
#include <cstdint>

namespace dapx {

struct PrefillAttention {
  const float* q = nullptr;  // [heads, t, d] contiguous, already rotated
  const float* k = nullptr;  // key j of KV head h at k + h * head_stride + j * d
  const float* v = nullptr;  // same layout as k
  int64_t head_stride = 0;   // elements between KV heads
  // Optional: mask[h * mask_stride + j] true hides key j of KV head h (padded slots).
  const bool* mask = nullptr;
  int64_t mask_stride = 0;
  // The cache holds len keys; its last t are the queries' own tokens.
  int64_t heads = 0, kv_heads = 0, t = 0, len = 0, d = 0;
  float* out = nullptr;   // [heads, t, d]
  bool portable = false;  // force the plain loops even where AVX2 runs (tests compare both)
};

// out[h][i] = softmax(q[h][i] . K^T / sqrt(d)) V over KV head h / (heads / kv_heads), where
// query i sees keys j < len - t + i + 1 that the mask does not hide; a query that sees no key
// gets zeros.
void attend_causal(const PrefillAttention& a);

}  // namespace dapx
