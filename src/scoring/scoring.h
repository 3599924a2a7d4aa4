#pragma once
// Shared scoring primitives for the KV-dropping and prompt-compression methods: observation
// attention, reduction over a KV group, pooling along the key axis, deterministic top-k
// selection with a protected window, per-layer (PyramidKV) and per-head (AdaKV) budgets, and
// StreamingLLM's sink + recent positions.
//
// Layouts: keys are [kv_heads, n, head_dim] (post-RoPE), observation queries are
// [heads, rows, head_dim] (post-RoPE); query head h belongs to KV head h / (heads / kv_heads).
// Scores are f32; selected indices are int64 and sorted ascending per head, ready for
// LayerKV::compact. Every function throws dapx::Error on bad input.
//
// Semantics follow the paper's reference implementation (furiosa-ai/draft-based-approx-llm:
// draft_approx_llm/speckv/util.py, draft_approx_llm/specpc/specpc.py, specpc_utils.py) and
// NVIDIA/kvpress (kvpress/presses/{snapkv,pyramidkv,adakv,streaming_llm}_press.py) plus the
// PyramidKV authors' pyramidkv_utils.py; each function says where it differs.
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace dapx {

// ---- Observation attention (observation.cpp) -------------------------------------------

// softmax(q_obs k^T / sqrt(d)) in f32, shape [heads, rows, n]. Key j sits at position
// key_pos0 + j; observation row r sits at position q_positions[r] (int64 [rows]) and does not
// see keys at positions > q_positions[r], which is the causal mask among the observation rows
// themselves when they are the last rows of `keys`. The references add finfo.min (or -inf)
// before the softmax; both give exactly 0 for a hidden key, as here. GQA: the query heads of a
// group are stacked to [kv_heads, group * rows, d] and multiplied with their KV head (bmm); K is
// never repeated. Inputs of other float dtypes are converted to f32.
// Throws if a row sees no key at all (its softmax would be NaN).
at::Tensor observation_attention(const at::Tensor& q_obs, const at::Tensor& keys,
                                 const at::Tensor& q_positions, int64_t key_pos0 = 0);

// ---- Reduction over a KV group (observation.cpp) ----------------------------------------

// Sum exists because SpecPC's reference replaces "mean" by "sum" ("same as mean in topk"),
// which is true within one reduction but changes the balance between vectors of different row
// counts when they are later combined (prefill vector: W rows, decode steps: 1 row).
enum class Reduce { Max, Mean, Sum };

// attn [heads, rows, n] -> [kv_heads, n]: reduces jointly over the query heads of each KV group
// and all rows (the reference views [kv_heads, group * rows, n] and reduces dim 1). kv_heads = 1
// reduces over every head (SpecPC's one vector per layer). row_weights (f32 [rows], optional)
// multiplies row r of every head before reducing (SpecPC's weighted queries, see
// linear_row_weights).
at::Tensor reduce_over_group(const at::Tensor& attn, int64_t kv_heads, Reduce r,
                             const at::Tensor& row_weights = {});

// SpecPC's query weights: row i of `rows` gets i / (rows - 1) (torch.linspace(0, 1, rows)), so
// the oldest row counts 0 and the newest 1. The reference weights only when rows > 1; for
// rows == 1 this returns [1] (unweighted). f32 [rows] on `device`.
at::Tensor linear_row_weights(int64_t rows, at::Device device = at::kCPU);

// ---- Pooling along the key axis (observation.cpp) ---------------------------------------

enum class Pool { None, Max, Avg };

enum class PoolPadding {
  // kernel / 2 on both sides, kernel must be odd (SpecKV, SnapKV, PyramidKV:
  // F.max_pool1d / F.avg_pool1d(padding=k//2)). Max pooling pads with -inf (max_pool1d's
  // implicit padding); avg pooling pads with zeros and always divides by kernel
  // (avg_pool1d's default count_include_pad=True), so edge values shrink.
  Symmetric,
  // (kernel-1)/2 left, kernel-1-(kernel-1)/2 right, any kernel >= 1 (SpecPC: F.pad with the
  // constant 0, then an unpadded pool). Both pool types pad with zeros; avg divides by kernel.
  // For max pooling, zero padding equals -inf padding when all scores are >= 0 (attention
  // probabilities are), but not for negative inputs.
  Centered,
};

// Stride-1 pooling of s [..., n] along the last axis; the output has s's shape (f32).
// Pool::None or kernel == 1 returns the input (as f32).
at::Tensor pool_scores(const at::Tensor& s, int64_t kernel, Pool p, PoolPadding pad);

// ---- Selection (selection.cpp) -----------------------------------------------------------

// Indices that order each row of scores [..., n] by score, highest first; equal scores keep
// index order (lowest index first). Deterministic on every device (stable sort). The
// references use torch.topk, whose order among ties is unspecified. Throws on NaN.
at::Tensor rank_descending(const at::Tensor& scores);

// The k highest-scoring keys per head of scores [kv_heads, n_scored], as int64 [kv_heads, k]
// sorted ascending per head. Ties go to the lowest index. 0 <= k <= n_scored.
at::Tensor topk_keep(const at::Tensor& scores, int64_t k);

// SpecKV / SnapKV cache selection: every index in the window [window_begin, window_end) plus
// the (budget - window size) highest-scoring indices of [0, n_scored) outside the window,
// int64 [kv_heads, count] ascending per head. The window may lie anywhere (normally it is
// [n_scored, n_scored + W)); scored keys inside it are never picked twice. When the budget
// exceeds the keys available, every key is kept (count = candidates + window size). Throws if
// budget < window size or a range is negative or reversed.
at::Tensor keep_with_window(const at::Tensor& scores, int64_t budget, int64_t window_begin,
                            int64_t window_end);

// StreamingLLM: the first `sinks` positions plus the most recent (budget - sinks), int64
// [kv_heads, min(budget, n)] ascending (identical for every head). budget >= n keeps all.
// Throws if sinks > budget or any size is negative.
at::Tensor streaming_keep(int64_t kv_heads, int64_t n, int64_t sinks, int64_t budget);

// ---- Budgets (budgets.cpp) ---------------------------------------------------------------

// PyramidKV's per-layer budgets (KV entries kept per head, window included), decreasing
// linearly with depth. With B = budget - window (the selected part of a uniform budget):
//   min = B / beta, max = 2 B - min;
//   if n >= 0 and max >= n - window: max = n - window, min = 2 B - max;
//   layer l keeps window + round(max - l (max - min) / (num_layers - 1)).
// This is the authors' pyramidkv_utils.py schedule with kvpress's real-valued steps and
// Python round (half to even): the authors floor both min and the step, which makes the total
// exceed num_layers * budget (e.g. by 5% for 32 layers, budget 256, window 32); here the
// values are symmetric about B, so the total is num_layers * budget up to float rounding.
// n (prompt length, -1 = unknown) reproduces the authors' cases: n <= budget keeps n in every
// layer; n < 2 B falls back to the uniform budget; otherwise the pyramid with the clamp above.
// num_layers == 1 gives the uniform budget. Throws unless budget > window >= 0 and beta >= 1.
std::vector<int64_t> pyramid_budgets(int64_t num_layers, int64_t budget, int64_t window,
                                     double beta = 20, int64_t n = -1);

// AdaKV: splits total_keep entries among the heads of one layer, scores [kv_heads, n] ->
// int64 [kv_heads] per-head budgets summing to total_keep. Each head first gets its own top
// floor(floor(total_keep / kv_heads) * alpha_safeguard) entries (kvpress AdaKVPress, default
// alpha 0.20); the rest of total_keep goes to the highest scores over all heads jointly
// (flattened, ties to the lower head then the lower index). A head's kept set is then its own
// top-`budget[h]` entries (rank_descending), so topk per head reproduces the joint selection.
at::Tensor adaptive_head_budgets(const at::Tensor& scores, int64_t total_keep,
                                 double alpha_safeguard = 0.20);

}  // namespace dapx
