#include "model/linear.h"

#include "util/error.h"

namespace dapx {

Linear::Linear(at::Tensor weight, at::Tensor bias)
    : weight_(std::move(weight)), bias_(std::move(bias)) {}

GemvTarget Linear::gemv_target(const float* x, float* y) const {
  if (!weight_.is_cpu() || !weight_.is_contiguous() ||
      (weight_.scalar_type() != at::kBFloat16 && weight_.scalar_type() != at::kFloat))
    throw Error("Linear: the GEMV path needs contiguous bf16 or f32 CPU weights");
  return {weight_.data_ptr(), weight_.scalar_type() == at::kBFloat16, out_features(), x, y};
}

void Linear::add_bias(float* y, int rows) const {
  if (!bias_.defined()) return;
  const float* b = bias_.data_ptr<float>();
  const int64_t n = out_features();
  for (int r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; ++i) y[r * n + i] += b[i];
}

at::Tensor Linear::operator()(const at::Tensor& x) const {
  const int64_t rows = x.size(0);
  // The raw GEMV is invisible to autograd: a weight being trained takes the GEMM.
  const bool grad = weight_.requires_grad() && at::GradMode::is_enabled();
  if (weight_.is_cpu() && rows <= kMaxGemvRows && !grad) {
    const at::Tensor xc = x.contiguous();
    at::Tensor y = at::empty({rows, out_features()}, x.options());
    const GemvTarget t = gemv_target(xc.data_ptr<float>(), y.data_ptr<float>());
    gemv_batch(&t, 1, in_features(), static_cast<int>(rows));
    add_bias(y.data_ptr<float>(), static_cast<int>(rows));
    return y;
  }
  if (weight_.is_cpu()) {
    // LibTorch's CPU bf16 GEMM is a slow fallback without AVX512-BF16; f32 GEMM goes to BLAS.
    const at::Tensor w = weight_.scalar_type() == at::kFloat ? weight_ : weight_.to(at::kFloat);
    return bias_.defined() ? at::addmm(bias_, x, w.t()) : at::mm(x, w.t());
  }
  const at::Tensor y = at::linear(x.to(weight_.scalar_type()), weight_,
                                  bias_.defined() ? bias_.to(weight_.scalar_type()) : bias_);
  return y.to(at::kFloat);
}

}  // namespace dapx
