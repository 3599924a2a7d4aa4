#pragma once
// The machine's physical limits, measured in the same run as the engine so every figure reads
// as a fraction of what the hardware can do.
#include <ATen/ATen.h>

#include <algorithm>

namespace dapx::bench {

// Dense GEMM rate in GFLOP/s for [m, k] x [k, n]^T in the given dtype (LibTorch / BLAS).
double gemm_gflops(at::ScalarType dtype, int64_t m = 1024, int64_t k = 896, int64_t n = 4864);
// Streaming read bandwidth in GB/s over a buffer much larger than the caches, all threads: the
// best of plain and software-prefetched streams.
double read_bandwidth_gbs(int64_t bytes = int64_t{1} << 30);

struct MachineLimits {
  double gemm_f32_gflops = 0, gemm_bf16_gflops = 0, read_gbs = 0;
  // The prefill GEMM this CPU can run: without AVX512-BF16 or AMX, LibTorch's native bf16 GEMM
  // is far slower than f32, and the engine widens bf16 weights to f32 for prefill.
  double best_gemm_gflops() const { return std::max(gemm_f32_gflops, gemm_bf16_gflops); }
};
// The three rates above on the CPU, with LibTorch's current thread count (a few seconds).
MachineLimits measure_machine_limits();

}  // namespace dapx::bench
