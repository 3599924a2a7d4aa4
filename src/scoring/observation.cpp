// Observation attention, reduction over KV groups and pooling along the key axis.
#include <cmath>
#include <limits>
#include <string>

#include "scoring/scoring.h"
#include "util/error.h"

namespace dapx {

namespace {

std::string shape_of(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

void require_float(const at::Tensor& t, const char* what) {
  if (!t.defined()) throw Error(std::string(what) + " is undefined");
  if (!at::isFloatingType(t.scalar_type()))
    throw Error(std::string(what) + " must be a floating-point tensor");
}

}  // namespace

at::Tensor observation_attention(const at::Tensor& q_obs, const at::Tensor& keys,
                                 const at::Tensor& q_positions, int64_t key_pos0) {
  require_float(q_obs, "observation_attention: q_obs");
  require_float(keys, "observation_attention: keys");
  if (q_obs.dim() != 3 || keys.dim() != 3)
    throw Error(
        "observation_attention: expected q_obs [heads, rows, head_dim] and keys "
        "[kv_heads, n, head_dim], got " +
        shape_of(q_obs) + " and " + shape_of(keys));
  const int64_t heads = q_obs.size(0), rows = q_obs.size(1), d = q_obs.size(2);
  const int64_t kv_heads = keys.size(0), n = keys.size(1);
  if (keys.size(2) != d)
    throw Error("observation_attention: head_dim differs between q_obs " + shape_of(q_obs) +
                " and keys " + shape_of(keys));
  if (kv_heads <= 0 || heads % kv_heads != 0)
    throw Error("observation_attention: " + std::to_string(heads) +
                " query heads cannot be grouped over " + std::to_string(kv_heads) +
                " KV heads (heads must be a multiple of kv_heads)");
  if (!q_positions.defined() || q_positions.dim() != 1 || q_positions.size(0) != rows ||
      at::isFloatingType(q_positions.scalar_type()))
    throw Error("observation_attention: q_positions must be an integer tensor [" +
                std::to_string(rows) + "] (one position per observation row)");
  if (key_pos0 < 0) throw Error("observation_attention: key_pos0 must be >= 0");
  const int64_t group = heads / kv_heads;
  const at::Tensor pos = q_positions.to(keys.device(), at::kLong);
  if (rows > 0 && n == 0)
    throw Error("observation_attention: no keys to attend to (keys has length 0)");
  const int64_t first_row_pos = rows > 0 ? pos.min().item<int64_t>() : 0;  // one sync
  if (rows > 0 && first_row_pos < key_pos0)
    throw Error("observation_attention: an observation row at position " +
                std::to_string(first_row_pos) + " precedes every key (keys start at position " +
                std::to_string(key_pos0) + "), so it would attend to nothing");

  const at::Tensor q = q_obs.to(keys.device(), at::kFloat).reshape({kv_heads, group * rows, d});
  const at::Tensor k = keys.to(at::kFloat);
  at::Tensor scores = at::bmm(q, k.transpose(1, 2));  // [kv_heads, group * rows, n]
  scores.mul_(1.0 / std::sqrt(static_cast<double>(d)));
  // Row r hides key j when key_pos0 + j > pos[r]; skip the mask when nothing is hidden.
  if (rows > 0 && first_row_pos < key_pos0 + n - 1) {
    const at::Tensor kpos = at::arange(key_pos0, key_pos0 + n, pos.options()).unsqueeze(0);
    const at::Tensor hidden = kpos > pos.unsqueeze(1);  // [rows, n]
    scores.view({kv_heads, group, rows, n})
        .masked_fill_(hidden, -std::numeric_limits<float>::infinity());
  }
  // Softmax in place: the score matrix is the largest buffer of a compressing prefill at long
  // prompts ([heads, rows, n] f32), so no second one. A row with every key hidden is NaN, as
  // at::softmax makes it.
  scores.sub_(std::get<0>(scores.max(-1, /*keepdim=*/true))).exp_();
  scores.div_(scores.sum(-1, /*keepdim=*/true));
  return scores.view({heads, rows, n});
}

at::Tensor reduce_over_group(const at::Tensor& attn, int64_t kv_heads, Reduce r,
                             const at::Tensor& row_weights) {
  require_float(attn, "reduce_over_group: attn");
  if (attn.dim() != 3)
    throw Error("reduce_over_group: expected attn [heads, rows, n], got " + shape_of(attn));
  const int64_t heads = attn.size(0), rows = attn.size(1), n = attn.size(2);
  if (kv_heads <= 0 || heads % kv_heads != 0)
    throw Error("reduce_over_group: " + std::to_string(heads) +
                " query heads cannot be grouped over " + std::to_string(kv_heads) +
                " KV heads (heads must be a multiple of kv_heads)");
  if (rows == 0) throw Error("reduce_over_group: attn has no rows to reduce");
  at::Tensor a = attn.to(at::kFloat);
  if (row_weights.defined()) {
    if (row_weights.dim() != 1 || row_weights.size(0) != rows)
      throw Error("reduce_over_group: row_weights must be [" + std::to_string(rows) +
                  "] (one weight per observation row), got " + shape_of(row_weights));
    a = a * row_weights.to(a.device(), at::kFloat).view({1, rows, 1});
  }
  // Over a group's heads and rows together, on a view: `attn` is often a narrowed (strided)
  // slice, which a reshape would copy whole.
  a = a.view({kv_heads, heads / kv_heads, rows, n});
  switch (r) {
    case Reduce::Max:
      return at::amax(a, {1, 2});
    case Reduce::Mean:
      return a.mean({1, 2});
    case Reduce::Sum:
      return a.sum({1, 2});
  }
  throw Error("reduce_over_group: unknown reduction");
}

at::Tensor linear_row_weights(int64_t rows, at::Device device) {
  if (rows <= 0) throw Error("linear_row_weights: rows must be >= 1");
  const auto opts = at::TensorOptions().dtype(at::kFloat).device(device);
  if (rows == 1) return at::ones({1}, opts);
  return at::arange(rows, opts).div_(static_cast<double>(rows - 1));
}

at::Tensor pool_scores(const at::Tensor& s, int64_t kernel, Pool p, PoolPadding pad) {
  require_float(s, "pool_scores: scores");
  if (s.dim() < 1) throw Error("pool_scores: scores must have a key axis");
  if (kernel < 1)
    throw Error("pool_scores: kernel size must be >= 1, got " + std::to_string(kernel));
  if (pad == PoolPadding::Symmetric && kernel % 2 == 0)
    throw Error(
        "pool_scores: symmetric padding (kernel/2 each side, SpecKV/SnapKV) needs an odd "
        "kernel, got " +
        std::to_string(kernel) + "; use an odd kernel or centered padding");
  at::Tensor x = s.to(at::kFloat);
  if (p == Pool::None || kernel == 1) return x;
  const int64_t n = x.size(-1);
  int64_t left, right;
  double fill;
  if (pad == PoolPadding::Symmetric) {
    left = right = kernel / 2;
    fill = p == Pool::Max ? -std::numeric_limits<double>::infinity() : 0.0;
  } else {
    left = (kernel - 1) / 2;
    right = kernel - 1 - left;
    fill = 0.0;
  }
  std::vector<int64_t> padded_shape = x.sizes().vec();
  padded_shape.back() = n + left + right;
  at::Tensor padded = at::full(padded_shape, fill, x.options());
  padded.narrow(-1, left, n).copy_(x);
  // [..., n, kernel] windows (a view, no copy), then reduce the window axis.
  const at::Tensor windows = padded.unfold(-1, kernel, 1);
  if (p == Pool::Max) return std::get<0>(windows.max(-1));
  return windows.sum(-1).div_(static_cast<double>(kernel));
}

}  // namespace dapx
