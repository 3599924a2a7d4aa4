#pragma once
// Rotary position embedding in the Hugging Face "rotate_half" layout, with the llama3
// frequency rescaling. Angles are computed in double, then applied in f32.
#include <ATen/ATen.h>

#include <vector>

#include "io/model_config.h"

namespace dapx {

// cos/sin of the angles of t consecutive positions, [t, 1, head_dim/2] f32: computed once per
// forward and shared by every layer.
struct RotaryTables {
  at::Tensor cos, sin;
};

class Rope {
 public:
  explicit Rope(const ModelConfig& cfg);
  RotaryTables tables(int64_t pos0, int64_t t, at::Device device) const;
  // x: [t, heads, head_dim] f32. Returns the rotated tensor.
  at::Tensor apply(const at::Tensor& x, const RotaryTables& tables) const;
  // cos/sin [head_dim/2] of one position into raw buffers (decode), equal to tables(pos, 1).
  void angles(int64_t pos, float* cos, float* sin) const;

 private:
  int head_dim_;
  std::vector<double> inv_freq_;  // [head_dim/2]
  at::Tensor inv_freq_tensor_;    // the same, f64 tensor
};

}  // namespace dapx
