#include "kv/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "util/bf16.h"
#include "util/error.h"

namespace dapx {

LayerKV::LayerKV(int64_t kv_heads, int64_t head_dim, at::ScalarType dtype, at::Device device)
    : kv_heads_(kv_heads), head_dim_(head_dim), dtype_(dtype), device_(device) {}

void LayerKV::grow_to(int64_t capacity) {
  at::Tensor k = at::empty({kv_heads_, capacity, head_dim_}, options());
  at::Tensor v = at::empty({kv_heads_, capacity, head_dim_}, options());
  if (length_ > 0) {
    k.narrow(1, 0, length_).copy_(keys());
    v.narrow(1, 0, length_).copy_(values());
  }
  k_ = std::move(k);
  v_ = std::move(v);
  at::Tensor pos = at::full({kv_heads_, capacity}, -1, at::kLong);
  if (length_ > 0) pos.narrow(1, 0, length_).copy_(pos_.narrow(1, 0, length_));
  pos_ = std::move(pos);
  if (padding_.defined()) {
    at::Tensor pad = at::zeros({kv_heads_, capacity}, padding_.options());
    pad.narrow(1, 0, length_).copy_(padding_.narrow(1, 0, length_));
    padding_ = std::move(pad);
  }
}

void LayerKV::reserve(int64_t extra) {
  if (length_ + extra > capacity()) grow_to(length_ + extra);
}

void LayerKV::append(const at::Tensor& k, const at::Tensor& v, int64_t pos0) {
  const int64_t t = k.size(1);
  if (k.size(0) != kv_heads_ || k.size(2) != head_dim_ || !v.sizes().equals(k.sizes()))
    throw Error("KV append: expected [kv_heads, t, head_dim] keys and values of equal shape");
  if (length_ + t > capacity()) grow_to(std::max(length_ + t, capacity() * 3 / 2 + 16));
  k_.narrow(1, length_, t).copy_(k);
  v_.narrow(1, length_, t).copy_(v);
  pos_.narrow(1, length_, t).copy_(at::arange(pos0, pos0 + t, at::kLong).expand({kv_heads_, t}));
  if (padding_.defined()) padding_.narrow(1, length_, t).fill_(false);
  length_ += t;
}

void LayerKV::append_token(const float* k, const float* v, int64_t pos) {
  if ((dtype_ != at::kFloat && dtype_ != at::kBFloat16) || !device_.is_cpu())
    throw Error("KV append_token: needs an f32 or bf16 CPU cache");
  if (length_ + 1 > capacity()) grow_to(std::max(length_ + 1, capacity() * 3 / 2 + 16));
  const int64_t cap = capacity();
  for (int64_t h = 0; h < kv_heads_; ++h) {
    const int64_t at = (h * cap + length_) * head_dim_;
    if (dtype_ == at::kFloat) {
      const size_t bytes = head_dim_ * sizeof(float);
      std::memcpy(k_.data_ptr<float>() + at, k + h * head_dim_, bytes);
      std::memcpy(v_.data_ptr<float>() + at, v + h * head_dim_, bytes);
    } else {  // rounded as a tensor copy rounds (bf16.h)
      auto* kd = reinterpret_cast<uint16_t*>(k_.data_ptr()) + at;
      auto* vd = reinterpret_cast<uint16_t*>(v_.data_ptr()) + at;
      for (int64_t i = 0; i < head_dim_; ++i) {
        kd[i] = f32_to_bf16(k[h * head_dim_ + i]);
        vd[i] = f32_to_bf16(v[h * head_dim_ + i]);
      }
    }
    pos_.data_ptr<int64_t>()[h * cap + length_] = pos;
    if (padding_.defined()) padding_.data_ptr<bool>()[h * cap + length_] = false;
  }
  ++length_;
}

at::Tensor LayerKV::keys() const {
  return k_.defined() ? k_.narrow(1, 0, length_) : at::empty({kv_heads_, 0, head_dim_}, options());
}
at::Tensor LayerKV::values() const {
  return v_.defined() ? v_.narrow(1, 0, length_) : at::empty({kv_heads_, 0, head_dim_}, options());
}

void LayerKV::compact(const at::Tensor& idx, int64_t reserve_extra) {
  if (idx.dim() != 2 || idx.size(0) != kv_heads_)
    throw Error("KV compact: index must be [kv_heads, keep]");
  const int64_t keep = idx.size(1);
  if (keep > length_) throw Error("KV compact: more entries kept than the cache holds");
  const at::Tensor index = idx.to(device_, at::kLong);
  if (keep > 0 && (index.min().item<int64_t>() < -1 || index.max().item<int64_t>() >= length_))
    throw Error("KV compact: index out of range");
  const at::Tensor cpu_index = index.to(at::kCPU);
  const bool padded = keep > 0 && (cpu_index < 0).any().item<bool>();
  // gather along the token axis: [kv, keep] -> [kv, keep, d]. Padded slots get copies of
  // entry 0: finite values, so attention may weight them by 0 without producing NaN.
  const at::Tensor g = index.clamp_min(0).unsqueeze(-1).expand({kv_heads_, keep, head_dim_});
  at::Tensor k = at::empty({kv_heads_, keep + reserve_extra, head_dim_}, options());
  at::Tensor v = at::empty({kv_heads_, keep + reserve_extra, head_dim_}, options());
  k.narrow(1, 0, keep).copy_(at::gather(keys(), 1, g));
  v.narrow(1, 0, keep).copy_(at::gather(values(), 1, g));
  k_ = std::move(k);
  v_ = std::move(v);
  at::Tensor pos = at::full({kv_heads_, keep + reserve_extra}, -1, at::kLong);
  pos.narrow(1, 0, keep)
      .copy_(at::gather(positions(), 1, cpu_index.clamp_min(0)).masked_fill(cpu_index < 0, -1));
  pos_ = std::move(pos);
  length_ = keep;
  padding_ = padded ? (pos_ < 0).to(device_) : at::Tensor();  // append clears a slot's bit
}

at::Tensor LayerKV::positions() const {
  return pos_.defined() ? pos_.narrow(1, 0, length_) : at::empty({kv_heads_, 0}, at::kLong);
}

at::Tensor LayerKV::key_mask() const {
  return padding_.defined() ? padding_.narrow(1, 0, length_) : at::Tensor();
}

int64_t LayerKV::allocated_bytes() const {
  return 2 * kv_heads_ * capacity() * head_dim_ * static_cast<int64_t>(c10::elementSize(dtype_));
}

int64_t LayerKV::live_bytes() const {
  const int64_t entries = padding_.defined()
                              ? kv_heads_ * length_ - key_mask().sum().item<int64_t>()
                              : kv_heads_ * length_;
  return 2 * entries * head_dim_ * static_cast<int64_t>(c10::elementSize(dtype_));
}

KVCache::KVCache(int num_layers, int64_t kv_heads, int64_t head_dim, at::ScalarType dtype,
                 at::Device device) {
  layers_.reserve(num_layers);
  for (int l = 0; l < num_layers; ++l) layers_.emplace_back(kv_heads, head_dim, dtype, device);
}

void KVCache::reserve(int64_t extra) {
  for (auto& l : layers_) l.reserve(extra);
}

int64_t KVCache::allocated_bytes() const {
  int64_t s = 0;
  for (const auto& l : layers_) s += l.allocated_bytes();
  return s;
}

int64_t KVCache::live_bytes() const {
  int64_t s = 0;
  for (const auto& l : layers_) s += l.live_bytes();
  return s;
}

std::vector<int64_t> KVCache::lengths() const {
  std::vector<int64_t> out;
  for (const auto& l : layers_) out.push_back(l.length());
  return out;
}

}  // namespace dapx
