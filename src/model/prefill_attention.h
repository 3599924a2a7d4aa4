#pragma once
// Attention of a block of new tokens over a cache on raw f32 or bf16 buffers: the prefill's
// attention, in the manner of flash attention. The queries of one KV head's whole GQA group are
// taken in tiles, the keys in tiles of 64; each query row keeps a running max, sum and weighted
// value sum (online softmax), so a score never leaves the tile (no [heads, t, len] matrix, no masks
// built in memory) and each key/value tile is read once per query tile.
// Dense causal, or sparse (SpecKV's prefill): each query sees a local band of recent keys plus
// its KV head's "vertical" keys. Torch-free (raw pointers) so it runs under the sanitizers.
#include <cstdint>

#include "model/cpu_features.h"

namespace dapx {

struct PrefillAttention {
  const float* q = nullptr;  // [heads, t, d] contiguous, already rotated
  // Key j (at position j) of KV head h at k + h * head_stride + j * d: f32, or bf16 bits when
  // bf16 (widened tile by tile; see cache_rows.h).
  const void* k = nullptr;
  const void* v = nullptr;  // same layout and dtype as k
  bool bf16 = false;
  int64_t head_stride = 0;  // elements between KV heads
  // Optional: mask[h * mask_stride + j] true hides key j of KV head h (padded slots).
  const bool* mask = nullptr;
  int64_t mask_stride = 0;
  // The cache holds len keys; query i is at position pos0 + i (pos0 + t <= len). pos0 = -1:
  // len - t (the last t keys are the queries' own tokens).
  int64_t heads = 0, kv_heads = 0, t = 0, len = 0, d = 0, pos0 = -1;
  // Sparse when band > 0: the query at p sees keys (p - band, p] and the vertical keys
  // <= p - band, vertical[h * vertical_stride + 0..n_vertical) ascending positions of KV head h.
  // (Sparse prefill fills a fresh cache: no mask then.)
  int64_t band = 0;
  const int64_t* vertical = nullptr;
  int64_t n_vertical = 0, vertical_stride = 0;
  float* out = nullptr;                    // [heads, t, d]
  CpuKernels kernels = CpuKernels::kBest;  // narrower loops than the CPU has (tests compare)
  // Where the CPU has AVX512-BF16 (and d is a multiple of 16): both products on bf16-rounded
  // queries, keys and softmax weights with f32 sums (twice the f32 rate), for a prefill whose
  // GEMM already runs in bf16. Elsewhere the f32 products run.
  bool bf16_products = false;
};

// out[h][i] = softmax(q[h][i] . K^T / sqrt(d)) V over the keys query i sees (above) of KV head
// h / (heads / kv_heads) that the mask does not hide; a query that sees no key gets zeros, a
// NaN score makes its query's output NaN.
// Dense: query i sees every key at a position <= pos0 + i.
void attend_prefill(const PrefillAttention& a);

// H2O's key scores, with the same tiles: for each KV head h, the softmax attention
// probabilities of its group's query rows summed per key,
//   out[h][j] = sum over heads g of h and rows r of softmax(q[g][r] . K^T / sqrt(d))[j],
// for keys j < n_scored, where row r (at positions[r]) sees keys j <= positions[r]. Two passes
// over the keys per row tile: row max and sum, then the normalised probabilities.
struct AttentionColumnSums {
  const float* q = nullptr;  // [heads, rows, d] contiguous, already rotated
  const void* k = nullptr;   // as PrefillAttention::k (f32, or bf16 bits when bf16)
  bool bf16 = false;
  int64_t head_stride = 0;
  const int64_t* positions = nullptr;  // [rows], each < len
  int64_t heads = 0, kv_heads = 0, rows = 0, len = 0, d = 0, n_scored = 0;
  float* out = nullptr;  // [kv_heads, n_scored]
  CpuKernels kernels = CpuKernels::kBest;
};
void attention_column_sums(const AttentionColumnSums& a);

}  // namespace dapx
