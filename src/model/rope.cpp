#include "model/rope.h"

#include <cmath>

namespace dapx {

Rope::Rope(const ModelConfig& cfg) : head_dim_(cfg.head_dim) {
  const int half = head_dim_ / 2;
  for (int i = 0; i < half; ++i) {
    double f = std::pow(cfg.rope_theta, -2.0 * i / head_dim_);
    if (cfg.rope_scaling) {  // llama3: long wavelengths slowed by `factor`, smooth in between
      const RopeScaling& s = *cfg.rope_scaling;
      const double wavelen = 2 * M_PI / f;
      const double low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
      const double high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
      if (wavelen > low_wavelen) {
        f /= s.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) /
                              (s.high_freq_factor - s.low_freq_factor);
        f = (1 - smooth) * f / s.factor + smooth * f;
      }
    }
    inv_freq_.push_back(f);
  }
  inv_freq_tensor_ = at::tensor(inv_freq_, at::kDouble);
}

RotaryTables Rope::tables(int64_t pos0, int64_t t, at::Device device) const {
  const at::Tensor positions = at::arange(pos0, pos0 + t, at::kDouble);
  const at::Tensor angle = positions.unsqueeze(1) * inv_freq_tensor_.unsqueeze(0);
  return {angle.cos().to(at::kFloat).unsqueeze(1).to(device),
          angle.sin().to(at::kFloat).unsqueeze(1).to(device)};
}

void Rope::angles(int64_t pos, float* cos, float* sin) const {
  for (size_t i = 0; i < inv_freq_.size(); ++i) {
    const double angle = static_cast<double>(pos) * inv_freq_[i];
    cos[i] = static_cast<float>(std::cos(angle));
    sin[i] = static_cast<float>(std::sin(angle));
  }
}

at::Tensor Rope::apply(const at::Tensor& x, const RotaryTables& r) const {
  const int half = head_dim_ / 2;
  const at::Tensor x1 = x.narrow(-1, 0, half);
  const at::Tensor x2 = x.narrow(-1, half, half);
  return at::cat({x1 * r.cos - x2 * r.sin, x2 * r.cos + x1 * r.sin}, -1);
}

}  // namespace dapx
