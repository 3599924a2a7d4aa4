#pragma once
// The prefill's element-wise steps over a chunk's rows, each one fused pass, parallel over the
// rows: through LibTorch an RMSNorm is five passes (square, mean, rsqrt, two products) and the
// MLP's SiLU gate three more, plus a bf16 conversion before every GEMM: 7% of a 1k-token prefill
// on a Xeon whose bf16 GEMM runs at ~0.2 TFLOP/s (3.2% + 1.4% after), a larger share where the
// GEMM is faster. The norm is the decode step's rms_norm_row; the decode step's SiLU product is
// silu_mul_rows on one row. Torch-free, sanitizer-tested.
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
