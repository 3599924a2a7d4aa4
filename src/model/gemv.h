#pragma once
// Matrix-vector products for decode: y[r][n] = sum_k W[n][k] * x[r][k] for a few rows r.
// Decode is bound by reading W once per token, so these stream W exactly once for all rows,
// spread the output rows over the OpenMP threads, and convert bf16 or int8 -> f32 in registers.
// Torch-free (raw pointers) so it can be tested under the sanitizers.
#include <cstdint>

#include "model/cpu_features.h"

namespace dapx {

// W: [n, k] row-major. x: [rows, k], y: [rows, n], both f32. Any number of rows works (each
// weight row is read once and reused for every x row from L1; row r's sum never depends on
// the other rows); Linear takes the GEMV up to kMaxGemvRows rows, a GEMM beyond.
constexpr int kMaxGemvRows = 8;
void gemv_bf16(const uint16_t* w, int64_t n, int64_t k, const float* x, int rows, float* y);
void gemv_f32(const float* w, int64_t n, int64_t k, const float* x, int rows, float* y);
void gemv_int8(const int8_t* w, const float* scales, int64_t n, int64_t k, const float* x, int rows,
               float* y);

// How W is stored. int8: symmetric, one f32 scale per row and block of kInt8Block columns
// (the last block of a row may be shorter): W[i][j] = q[i][j] * scales[i * blocks + j / 64].
// The int8 GEMV quantises x the same way (per row and block, scale max |x| / 127) and sums
// integer products: the activations' rounding is part of an int8 decode step.
// kBf16Pairs: bf16 weights times x rounded to bf16 (nearest even), as pair products with f32
// sums (AVX512-BF16's vdpbf16ps; the plain loops compute the same products). Chosen where the
// prefill's GEMM already runs in bf16 (--gemm bf16, what auto picks on CPUs with fast bf16
// products), so decode rounds its inputs as prefill does. It needs a quarter of the
// instructions of widening each weight to f32, which keeps a batched decode step memory-bound.
enum class GemvWeights { kF32, kBf16, kInt8, kBf16Pairs };
constexpr int64_t kInt8Block = 64;
inline int64_t int8_blocks(int64_t k) { return (k + kInt8Block - 1) / kInt8Block; }

// One product of a batch: W [n, k] times its own input x [rows, k] into y [rows, n].
struct GemvTarget {
  const void* w;
  GemvWeights kind;
  int64_t n;
  const float* x;
  float* y;
  const float* scales = nullptr;  // int8: [n, ceil(k / block)]
  // int8: the columns each weight scale covers, kInt8Block or 32 (a GGUF Q8_0 matrix kept as
  // it is; x is still quantised per kInt8Block, so a 64-column block of x meets two weight
  // blocks).
  int64_t block = kInt8Block;
};
// Several products of the same width k in one parallel region: the output rows of all of them
// are split evenly over the threads, so small matrices (K and V next to Q, gate next to up,
// the keys of each KV head) do not each pay a fork/join and an uneven split.
// `kernels` narrower than the CPU has: tests compare the loops (AVX-512 VNNI for int8, AVX2,
// portable).
void gemv_batch(const GemvTarget* targets, int count, int64_t k, int rows,
                CpuKernels kernels = CpuKernels::kBest);

// True when the AVX2+FMA kernels run (otherwise the portable loop).
bool gemv_uses_avx2();

}  // namespace dapx
