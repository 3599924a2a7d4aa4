#pragma once
// KV cache built for per-head compaction. Per layer, K and V are [kv_heads, capacity, head_dim]
// with `length` live entries in every head. Keys are stored after RoPE, so dropping entries
// never re-rotates anything and later tokens keep their original positions. The cache knows
// each entry's original position per head (-1: an empty slot of a head-adaptive row), which
// is where kept-position dumps and the attention mask of padded slots come from.
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace dapx {

class LayerKV {
 public:
  LayerKV(int64_t kv_heads, int64_t head_dim, at::ScalarType dtype, at::Device device = at::kCPU);

  // Appends k/v of shape [kv_heads, t, head_dim] at positions pos0..pos0+t-1; grows the
  // buffer when needed.
  void append(const at::Tensor& k, const at::Tensor& v, int64_t pos0);
  // Appends one token's k/v at `pos`, each [kv_heads, head_dim] raw f32 (decode on an f32 CPU
  // cache: no tensor ops per layer and token).
  void append_token(const float* k, const float* v, int64_t pos);
  // Live views [kv_heads, length, head_dim] (empty before the first append).
  at::Tensor keys() const;
  at::Tensor values() const;
  // Keeps, per head, the entries idx[h] (int64 [kv_heads, keep], ascending per head). The new
  // buffer holds keep + reserve_extra slots, so the memory of dropped entries is released.
  // Head-adaptive budgets (AdaKV) pad a head's row with -1 after its kept entries: those
  // slots hold nothing (position -1) and are masked out of attention (see key_mask).
  void compact(const at::Tensor& idx, int64_t reserve_extra = 0);
  // int64 [kv_heads, length] on the CPU: each slot's original position, -1 for an empty slot.
  at::Tensor positions() const;
  // bool [kv_heads, length] on the cache's device, true where positions() < 0; undefined when
  // every slot is live.
  at::Tensor key_mask() const;
  // Ensures room for `extra` more entries without reallocating during decode.
  void reserve(int64_t extra);

  int64_t length() const { return length_; }
  at::ScalarType dtype() const { return dtype_; }
  at::TensorOptions options() const { return at::TensorOptions().dtype(dtype_).device(device_); }
  int64_t capacity() const { return k_.defined() ? k_.size(1) : 0; }
  // Bytes held by the buffers (capacity) and by live entries.
  int64_t allocated_bytes() const;
  int64_t live_bytes() const;

 private:
  void grow_to(int64_t capacity);
  int64_t kv_heads_, head_dim_;
  at::ScalarType dtype_;
  at::Device device_;
  at::Tensor k_, v_;
  at::Tensor pos_;      // int64 [kv_heads, capacity], CPU
  at::Tensor padding_;  // pos_ < 0 on the device, [kv_heads, capacity]; undefined: none
  int64_t length_ = 0;
};

class KVCache {
 public:
  KVCache(int num_layers, int64_t kv_heads, int64_t head_dim, at::ScalarType dtype,
          at::Device device = at::kCPU);
  LayerKV& layer(int l) { return layers_.at(l); }
  const LayerKV& layer(int l) const { return layers_.at(l); }
  int num_layers() const { return static_cast<int>(layers_.size()); }
  void reserve(int64_t extra);
  int64_t allocated_bytes() const;
  int64_t live_bytes() const;
  // Live entries per layer (every head of a layer holds the same count).
  std::vector<int64_t> lengths() const;

 private:
  std::vector<LayerKV> layers_;
};

}  // namespace dapx
