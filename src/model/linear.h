#pragma once
// A weight matrix plus optional bias, applied to f32 activations. Weights are held in the
// weight dtype (--dtype: bf16 halves memory and decode traffic, f32 is exact), or quantised to
// int8 at load (--weights int8: symmetric, one f32 scale per row and block of 64 columns; half
// the bytes of bf16 again).
#include <ATen/ATen.h>

#include <vector>

#include "model/gemv.h"

namespace dapx {

// How a model's matrices are held and multiplied; chosen once per model (ComputeOptions).
struct LinearFormat {
  bool int8 = false;  // quantise bf16/f16/f32 weights to int8 at construction (CPU only)
  // The dtype of the CPU GEMM for many rows (prefill): kFloat, or kBFloat16 where the CPU's
  // bf16 GEMM is faster (AVX512-BF16, AMX). See gemm_choice.h.
  at::ScalarType gemm = at::kFloat;
};

// Weights already quantised to int8 (a GGUF Q8_0 matrix): q [out, in] int8, scales [out,
// ceil(in / block)] f32, block 32 or kInt8Block; W = q * scale exactly.
struct Int8Weights {
  at::Tensor q, scales;
  int64_t block = kInt8Block;
};

class Linear {
 public:
  Linear() = default;
  // Held as they are (CPU only); format.gemm is the prefill GEMM's dtype.
  Linear(Int8Weights weights, at::Tensor bias, const LinearFormat& format);
  // weight [out, in], bias [out] or undefined.
  Linear(at::Tensor weight, at::Tensor bias, const LinearFormat& format = {});
  // x: [rows, in] f32 (or already in input_dtype()) -> [rows, out] in `out` (f32 or bf16). A
  // few rows (decode) use the streaming GEMV; many rows (prefill) a BLAS GEMM in the format's
  // GEMM dtype, bf16 or int8 weights converted to it into one buffer of at most 32 MiB (a
  // layer matrix whole, larger ones tile by tile). out = bf16 keeps a bf16 GEMM's result as it
  // is, for a next step that rounds to bf16 anyway (the MLP's SiLU product).
  at::Tensor operator()(const at::Tensor& x, at::ScalarType out = at::kFloat) const;
  // The dtype the GEMM reads its input in: a caller that prepares the input (a fused norm)
  // writes it in this dtype and spares each product a conversion pass.
  at::ScalarType input_dtype() const;
  // The raw product for the decode path (CPU weights): y[rows, out] = x[rows, in] W^T, without
  // the bias; add_bias then adds it to each of `rows` rows.
  GemvTarget gemv_target(const float* x, float* y) const;
  void add_bias(float* y, int rows = 1) const;
  int64_t out_features() const { return weight_.size(0); }
  int64_t in_features() const { return weight_.size(1); }
  // Bytes of the weight as held (int8: with its scales).
  int64_t bytes() const;
  bool int8() const { return scales_.defined(); }
  // The tensors bytes() counts: the weight as held and, for int8, its scales.
  std::vector<at::Tensor> held() const {
    return scales_.defined() ? std::vector<at::Tensor>{weight_, scales_}
                             : std::vector<at::Tensor>{weight_};
  }
  // The weight as f32 [out, in] (int8: dequantised), for tests and reference checks.
  at::Tensor dequantized() const;

 private:
  at::Tensor tiled_gemm(const at::Tensor& x) const;
  // Rows [o0, o0 + dst.size(0)) of the weight, converted into dst (f32 or bf16).
  void convert_rows(int64_t o0, at::Tensor& dst) const;

  at::Tensor weight_, bias_;
  at::Tensor scales_;  // f32 [out, ceil(in / block_)] when the weight is int8
  int64_t block_ = kInt8Block;
  at::ScalarType gemm_ = at::kFloat;
};

}  // namespace dapx
