#include "model/linear.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>

#include "util/bf16.h"
#include "util/error.h"
#include "util/int8_rows.h"

namespace dapx {
namespace {

// Weight elements per converted tile (32 MiB in f32): the layer matrices of 0.5B-1.5B models
// convert whole, one GEMM each, which measured fastest here (qwen2.5-0.5b shape, 1024-token
// prefill: 91% of the f32 GEMM rate, against 81% with 16 MiB tiles and 49% with 512 KiB tiles,
// whose small GEMMs BLAS runs poorly); larger matrices (an LM head over many rows) are split,
// which bounds the buffer.
constexpr int64_t kTileElements = int64_t{1} << 23;

void quantize_rows(const at::Tensor& w, int8_t* dst, float* sc) {
  const int64_t out = w.size(0), in = w.size(1), blocks = int8_blocks(in);
  const float* src = w.data_ptr<float>();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < out; ++i)
    quantize_int8_rows(src + i * in, 1, in, kInt8Block, dst + i * in, sc + i * blocks);
}

// Converted to f32 a chunk of rows at a time, so quantising a large matrix (an LM head) does
// not hold a full f32 copy of it.
void quantize(const at::Tensor& weight, at::Tensor& q, at::Tensor& scales) {
  const int64_t out = weight.size(0), in = weight.size(1), blocks = int8_blocks(in);
  q = at::empty({out, in}, at::kChar);
  scales = at::empty({out, blocks}, at::kFloat);
  // 1 Mi elements (4 MiB of f32) per chunk: larger temporaries raised the peak RSS of an
  // int8 qwen2.5-0.5b load by ~300 MiB here (freed heap memory the allocator keeps).
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 20) / std::max<int64_t>(in, 1));
  for (int64_t r0 = 0; r0 < out; r0 += chunk) {
    const int64_t rows = std::min(chunk, out - r0);
    const at::Tensor w = weight.narrow(0, r0, rows).to(at::kFloat).contiguous();
    if (!at::isfinite(w).all().item<bool>())
      throw Error("int8 weights: the weight holds a NaN or infinite value (rows " +
                  std::to_string(r0) + "-" + std::to_string(r0 + rows - 1) + ")");
    quantize_rows(w, q.data_ptr<int8_t>() + r0 * in, scales.data_ptr<float>() + r0 * blocks);
  }
}

}  // namespace

Linear::Linear(at::Tensor weight, at::Tensor bias, const LinearFormat& format)
    : weight_(std::move(weight)), bias_(std::move(bias)), gemm_(format.gemm) {
  if (gemm_ != at::kFloat && gemm_ != at::kBFloat16)
    throw Error("Linear: the GEMM dtype must be f32 or bf16");
  if (format.int8) {
    if (!weight_.is_cpu()) throw Error("int8 weights run on the CPU only");
    if (weight_.requires_grad()) throw Error("int8 weights cannot be trained");
    at::Tensor q;
    quantize(weight_, q, scales_);
    weight_ = std::move(q);
  }
}

Linear::Linear(Int8Weights weights, at::Tensor bias, const LinearFormat& format)
    : weight_(std::move(weights.q)),
      bias_(std::move(bias)),
      scales_(std::move(weights.scales)),
      block_(weights.block),
      gemm_(format.gemm) {
  if (gemm_ != at::kFloat && gemm_ != at::kBFloat16)
    throw Error("Linear: the GEMM dtype must be f32 or bf16");
  if (block_ != 32 && block_ != kInt8Block)
    throw Error("int8 weights: blocks of 32 or " + std::to_string(kInt8Block) + " columns, not " +
                std::to_string(block_));
  if (!weight_.is_cpu() || weight_.scalar_type() != at::kChar || weight_.dim() != 2 ||
      !weight_.is_contiguous())
    throw Error("int8 weights: q must be a contiguous 2-D int8 CPU tensor");
  const int64_t blocks = (in_features() + block_ - 1) / block_;
  if (!scales_.is_cpu() || scales_.scalar_type() != at::kFloat || !scales_.is_contiguous() ||
      scales_.dim() != 2 || scales_.size(0) != out_features() || scales_.size(1) != blocks)
    throw Error("int8 weights: the scales must be f32 [" + std::to_string(out_features()) + ", " +
                std::to_string(blocks) + "]");
}

int64_t Linear::bytes() const {
  int64_t b = weight_.numel() * static_cast<int64_t>(weight_.element_size());
  if (scales_.defined()) b += scales_.numel() * static_cast<int64_t>(sizeof(float));
  return b;
}

at::Tensor Linear::dequantized() const {
  if (!scales_.defined()) return weight_.to(at::kFloat);
  at::Tensor w = at::empty({out_features(), in_features()}, at::kFloat);
  for (int64_t o0 = 0; o0 < out_features(); o0 += 1024) {
    at::Tensor rows = w.narrow(0, o0, std::min<int64_t>(1024, out_features() - o0));
    convert_rows(o0, rows);
  }
  return w;
}

GemvTarget Linear::gemv_target(const float* x, float* y) const {
  const at::ScalarType t = weight_.scalar_type();
  if (!weight_.is_cpu() || !weight_.is_contiguous() ||
      (t != at::kBFloat16 && t != at::kFloat && t != at::kChar))
    throw Error("Linear: the GEMV path needs contiguous bf16, f32 or int8 CPU weights");
  // bf16 weights whose prefill GEMM runs in bf16 take pair products where the CPU has them:
  // decode then rounds its inputs to bf16 as prefill does, at a quarter of the instructions.
  const GemvWeights kind = t == at::kChar       ? GemvWeights::kInt8
                           : t == at::kBFloat16 ? (gemm_ == at::kBFloat16 && cpu_has_avx512_bf16()
                                                       ? GemvWeights::kBf16Pairs
                                                       : GemvWeights::kBf16)
                                                : GemvWeights::kF32;
  return {weight_.data_ptr(),
          kind,
          out_features(),
          x,
          y,
          scales_.defined() ? scales_.data_ptr<float>() : nullptr,
          block_};
}

void Linear::add_bias(float* y, int rows) const {
  if (!bias_.defined()) return;
  const float* b = bias_.data_ptr<float>();
  const int64_t n = out_features();
  for (int r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; ++i) y[r * n + i] += b[i];
}

void Linear::convert_rows(int64_t o0, at::Tensor& dst) const {
  const int64_t n = dst.size(0), in = in_features();
  if (!scales_.defined()) {
    dst.copy_(weight_.narrow(0, o0, n));  // vectorised and parallel in ATen
    return;
  }
  const int64_t block = block_, blocks = (in + block - 1) / block;
  const int8_t* q = weight_.data_ptr<int8_t>() + o0 * in;
  const float* sc = scales_.data_ptr<float>() + o0 * blocks;
  const bool bf16 = dst.scalar_type() == at::kBFloat16;
  float* f = bf16 ? nullptr : dst.data_ptr<float>();
  auto* h = bf16 ? reinterpret_cast<uint16_t*>(dst.data_ptr()) : nullptr;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t b = 0; b < blocks; ++b) {  // a scale per block (no division per element)
      const float scale = sc[i * blocks + b];
      for (int64_t j = b * block; j < std::min(in, (b + 1) * block); ++j) {
        const float v = static_cast<float>(q[i * in + j]) * scale;
        if (bf16)
          h[i * in + j] = f32_to_bf16(v);
        else
          f[i * in + j] = v;
      }
    }
}

// y[:, tile] = x W_tile^T (no bias; in the GEMM dtype) tile by tile: each tile of weight rows is
// converted into one reused buffer and multiplied straight into its columns of y (BLAS writes a
// column block of a row-major matrix in place), so no full-size copy of the weight is made per
// call.
at::Tensor Linear::tiled_gemm(const at::Tensor& x) const {
  const int64_t out = out_features(), in = in_features(), rows = x.size(0);
  const int64_t tile = std::clamp<int64_t>(kTileElements / std::max<int64_t>(in, 1), 16, out);
  const at::Tensor xg = x.to(gemm_).contiguous();
  at::Tensor y = at::empty({rows, out}, x.options().dtype(gemm_));
  at::Tensor buf = at::empty({tile, in}, x.options().dtype(gemm_));
  for (int64_t o0 = 0; o0 < out; o0 += tile) {
    const int64_t n = std::min(tile, out - o0);
    at::Tensor w = buf.narrow(0, 0, n);
    convert_rows(o0, w);
    at::Tensor dst = y.narrow(1, o0, n);
    at::mm_out(dst, xg, w.t());
  }
  return y;
}

at::ScalarType Linear::input_dtype() const {
  if (!weight_.is_cpu()) return weight_.scalar_type();
  return weight_.scalar_type() == at::kFloat ? at::kFloat : gemm_;
}

at::Tensor Linear::operator()(const at::Tensor& x, at::ScalarType out) const {
  const int64_t rows = x.size(0);
  // The raw GEMV is invisible to autograd: a weight being trained takes the GEMM.
  const bool grad = weight_.requires_grad() && at::GradMode::is_enabled();
  if (weight_.is_cpu() && rows <= kMaxGemvRows && !grad) {
    const at::Tensor xc = x.to(at::kFloat).contiguous();
    at::Tensor y = at::empty({rows, out_features()}, xc.options());
    const GemvTarget t = gemv_target(xc.data_ptr<float>(), y.data_ptr<float>());
    gemv_batch(&t, 1, in_features(), static_cast<int>(rows));
    add_bias(y.data_ptr<float>(), static_cast<int>(rows));
    return y.to(out);
  }
  if (weight_.is_cpu()) {
    const at::ScalarType t = weight_.scalar_type();
    if (t == at::kFloat || (t == gemm_ && !scales_.defined())) {  // no conversion needed
      const at::Tensor xg = x.to(t);
      const at::Tensor y =
          bias_.defined() ? at::addmm(bias_.to(t), xg, weight_.t()) : at::mm(xg, weight_.t());
      return y.to(out);
    }
    at::Tensor y = tiled_gemm(x).to(out);
    if (bias_.defined()) y.add_(bias_.to(out));
    return y;
  }
  const at::Tensor y = at::linear(x.to(weight_.scalar_type()), weight_,
                                  bias_.defined() ? bias_.to(weight_.scalar_type()) : bias_);
  return y.to(out);
}

}  // namespace dapx
