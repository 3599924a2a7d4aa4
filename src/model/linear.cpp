#include "model/linear.h"

#include "model/gemv.h"

namespace dapx {

Linear::Linear(at::Tensor weight, at::Tensor bias)
    : weight_(std::move(weight)), bias_(std::move(bias)) {}

at::Tensor Linear::operator()(const at::Tensor& x) const {
  const int64_t rows = x.size(0);
  if (weight_.is_cpu() && rows <= kMaxGemvRows) {
    const at::Tensor xc = x.contiguous();
    at::Tensor y = at::empty({rows, out_features()}, x.options());
    if (weight_.scalar_type() == at::kBFloat16)
      gemv_bf16(reinterpret_cast<const uint16_t*>(weight_.data_ptr()), out_features(),
                in_features(), xc.data_ptr<float>(), static_cast<int>(rows), y.data_ptr<float>());
    else
      gemv_f32(weight_.data_ptr<float>(), out_features(), in_features(), xc.data_ptr<float>(),
               static_cast<int>(rows), y.data_ptr<float>());
    if (bias_.defined()) y.add_(bias_);
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
