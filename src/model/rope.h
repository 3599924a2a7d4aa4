#pragma once
// Rotary position embedding in the Hugging Face "rotate_half" layout, with the llama3
// frequency rescaling. Angles are computed in double, then applied in f32.
#include <ATen/ATen.h>

#include "io/model_config.h"

namespace dapx {

class Rope {
 public:
  explicit Rope(const ModelConfig& cfg);
  // x: [t, heads, head_dim] f32, positions: int64 [t]. Returns the rotated tensor.
  at::Tensor apply(const at::Tensor& x, const at::Tensor& positions) const;
  const std::vector<double>& inv_freq() const { return inv_freq_; }

 private:
  int head_dim_;
  std::vector<double> inv_freq_;
  at::Tensor inv_freq_tensor_;  // f64 [head_dim/2]
};

}  // namespace dapx
