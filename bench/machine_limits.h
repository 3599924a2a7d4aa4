#pragma once
// The machine's physical limits, measured in the same run as the engine so every figure reads
// as a fraction of what the hardware can do.
#include <ATen/ATen.h>

namespace dapx::bench {

// Dense GEMM rate in GFLOP/s for [m, k] x [k, n]^T in the given dtype (LibTorch / BLAS).
double gemm_gflops(at::ScalarType dtype, int64_t m = 1024, int64_t k = 896, int64_t n = 4864);
// Streaming read bandwidth in GB/s over a buffer much larger than the caches, all threads.
double read_bandwidth_gbs(int64_t bytes = int64_t{1} << 30);

}  // namespace dapx::bench
