#pragma once
// The prefill's element-wise steps over a chunk's rows, each one fused pass, parallel over the
// rows: through LibTorch an RMSNorm is five passes (square, mean, rsqrt, two products) and the
// MLP's SiLU gate three more, plus a bf16 conversion before every GEMM, which cost ~1/4 of a
// 1k-token prefill where the GEMM runs on bf16 hardware. Same formulas as the decode step's
// vector_ops. Torch-free, sanitizer-tested.
#include <cstdint>

namespace dapx {

// out[r] = x[r] * (1 / sqrt(mean(x[r]^2) + eps)) * w for rows of n values; the uint16_t
// overload writes bf16 (rounded once, to nearest even): the input of a bf16 GEMM.
void rms_norm_rows(const float* x, const float* w, int64_t rows, int64_t n, float eps, float* out);
void rms_norm_rows(const float* x, const float* w, int64_t rows, int64_t n, float eps,
                   uint16_t* out);

// a = silu(a) * b over n values, silu(v) = v / (1 + exp(-v)); the uint16_t overload reads
// and writes bf16, computing in f32 and rounding once.
void silu_mul_rows(float* a, const float* b, int64_t n);
void silu_mul_rows(uint16_t* a, const uint16_t* b, int64_t n);

}  // namespace dapx
