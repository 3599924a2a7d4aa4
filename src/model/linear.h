#pragma once
// A weight matrix plus optional bias, applied to f32 activations. Weights are held in the
// weight dtype (--dtype: bf16 halves memory and decode traffic, f32 is exact).
#include <ATen/ATen.h>

#include "model/gemv.h"

namespace dapx {

class Linear {
 public:
  Linear() = default;
  Linear(at::Tensor weight, at::Tensor bias);  // weight [out, in], bias [out] or undefined
  // x: [rows, in] f32 -> [rows, out] f32. A few rows (decode) use the streaming GEMV; many
  // rows (prefill) use a BLAS GEMM, converting bf16 weights to f32 on the fly on CPUs
  // without native bf16 GEMM.
  at::Tensor operator()(const at::Tensor& x) const;
  // The raw product for the decode path (CPU weights): y[rows, out] = x[rows, in] W^T, without
  // the bias; add_bias then adds it to each of `rows` rows.
  GemvTarget gemv_target(const float* x, float* y) const;
  void add_bias(float* y, int rows = 1) const;
  const at::Tensor& weight() const { return weight_; }
  int64_t out_features() const { return weight_.size(0); }
  int64_t in_features() const { return weight_.size(1); }
  int64_t bytes() const { return weight_.numel() * static_cast<int64_t>(weight_.element_size()); }

 private:
  at::Tensor weight_, bias_;
};

}  // namespace dapx
