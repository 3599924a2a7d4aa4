#include "machine_limits.h"

#include <immintrin.h>
#include <omp.h>

#include <vector>

#include "engine/stats.h"

namespace dapx::bench {

double gemm_gflops(at::ScalarType dtype, int64_t m, int64_t k, int64_t n) {
  const at::Tensor a = at::randn({m, k}).to(dtype), w = at::randn({n, k}).to(dtype);
  const double flop = 2.0 * m * k * n;
  const Stopwatch first;
  at::Tensor c = at::mm(a, w.t());  // warm-up
  const double once = first.seconds();
  // A GEMM this slow (LibTorch's bf16 without AVX512-BF16 runs at about 1 GFLOP/s) has told its
  // rate in one run: start-up costs are lost in it.
  if (once > 0.5) return flop / once / 1e9;
  int reps = 0;
  const Stopwatch clock;
  while (clock.seconds() < 0.5 || reps < 2) {  // half a second gives a steady rate
    c = at::mm(a, w.t());
    ++reps;
  }
  return flop * reps / clock.seconds() / 1e9;
}

namespace {

// prefetch: bytes ahead to prefetch in software (0: the hardware prefetchers alone).
__attribute__((target("avx2"))) float sum_avx2(const float* p, int64_t n, int64_t prefetch) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  const char* ahead = reinterpret_cast<const char*>(p) + prefetch;
  for (int64_t i = 0; i + 32 <= n; i += 32) {
    if (prefetch > 0) {
      _mm_prefetch(ahead + 4 * i, _MM_HINT_T0);
      _mm_prefetch(ahead + 4 * i + 64, _MM_HINT_T0);
    }
    a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_loadu_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_loadu_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_loadu_ps(p + i + 24));
  }
  float out[8];
  _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}

}  // namespace

double read_bandwidth_gbs(int64_t bytes) {
  const int64_t n = bytes / 4;
  std::vector<float> buf(n, 1.0f);
  volatile float sink = 0;
  double best = 0;
  // The best of plain streams and software-prefetched ones (as the decode GEMV reads): the
  // limit must not sit below what a kernel reaches.
  for (int rep = 0; rep < 6; ++rep) {
    const int64_t prefetch = rep % 2 == 0 ? 0 : 8192;
    const Stopwatch clock;
    float total = 0;
#pragma omp parallel reduction(+ : total)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t per = (n / nt) / 32 * 32;
      const float* part = buf.data() + t * per;
      if (__builtin_cpu_supports("avx2")) {
        total += sum_avx2(part, per, prefetch);
      } else {
        for (int64_t i = 0; i < per; ++i) total += part[i];
      }
    }
    sink = sink + total;
    best = std::max(best, bytes / clock.seconds() / 1e9);
  }
  return best;
}

MachineLimits measure_machine_limits() {
  MachineLimits m;
  m.gemm_f32_gflops = gemm_gflops(at::kFloat);
  m.gemm_bf16_gflops = gemm_gflops(at::kBFloat16, 256);  // fewer rows: slow without AVX512-BF16
  m.read_gbs = read_bandwidth_gbs();
  return m;
}

}  // namespace dapx::bench
