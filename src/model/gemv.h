#pragma once
// Matrix-vector products for decode: y[r][n] = sum_k W[n][k] * x[r][k] for a few rows r.
// Decode is bound by reading W once per token, so these stream W exactly once for all rows,
// spread the output rows over the OpenMP threads, and convert bf16 -> f32 in registers.
// Torch-free (raw pointers) so it can be tested under the sanitizers.
#include <cstdint>

namespace dapx {

// W: [n, k] row-major. x: [rows, k], y: [rows, n], both f32. rows <= kMaxGemvRows.
constexpr int kMaxGemvRows = 8;
void gemv_bf16(const uint16_t* w, int64_t n, int64_t k, const float* x, int rows, float* y);
void gemv_f32(const float* w, int64_t n, int64_t k, const float* x, int rows, float* y);
// True when the AVX2+FMA kernels run (otherwise the portable loop).
bool gemv_uses_avx2();

}  // namespace dapx
