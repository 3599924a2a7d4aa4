#include "model/gemm_choice.h"

#include <algorithm>
#include <chrono>

#include "util/error.h"

namespace dapx {
namespace {

// Seconds of one [m, k] x [k, n] product in `dtype`, after a warm-up (packing buffers, the
// thread pool, oneDNN's JIT).
struct Product {
  at::Tensor a, b;
  Product(at::ScalarType dtype, int64_t m, int64_t k, int64_t n)
      : a(at::randn({m, k}).to(dtype)), b(at::randn({n, k}).to(dtype).t()) {
    at::mm(a, b);
  }
  double seconds() const {
    const auto t0 = std::chrono::steady_clock::now();
    at::mm(a, b);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
};

GemmProbe measure() {
  // A prefill chunk's slice against a layer-sized weight tile; small enough that the slow
  // bf16 fallback costs tens of milliseconds, large enough for the fast kernels to show.
  constexpr int64_t m = 64, k = 512, n = 512;
  const Product f32(at::kFloat, m, k, n), bf16(at::kBFloat16, m, k, n);
  // The best of up to five interleaved runs each: on a shared machine one slow moment must
  // not decide (a single run once chose f32 under a profiler, doubling a prefill). A fallback
  // 4x slower than f32 has shown itself after one run.
  double best_f32 = 1e30, best_bf16 = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    best_f32 = std::min(best_f32, f32.seconds());
    best_bf16 = std::min(best_bf16, bf16.seconds());
    if (best_bf16 > 4 * best_f32) break;
  }
  GemmProbe p;
  p.f32_gflops = 2.0 * m * k * n / best_f32 / 1e9;
  p.bf16_gflops = 2.0 * m * k * n / best_bf16 / 1e9;
  p.fastest = p.bf16_gflops > p.f32_gflops ? at::kBFloat16 : at::kFloat;
  return p;
}

}  // namespace

GemmChoice parse_gemm_choice(const std::string& name) {
  if (name == "auto") return GemmChoice::kAuto;
  if (name == "f32" || name == "float32") return GemmChoice::kF32;
  if (name == "bf16" || name == "bfloat16") return GemmChoice::kBf16;
  throw Error("unknown GEMM choice '" + name + "': use auto, bf16 or f32");
}

const GemmProbe& probe_cpu_gemm() {
  static const GemmProbe probe = measure();  // thread-safe, once per process
  return probe;
}

at::ScalarType resolve_gemm(GemmChoice choice) {
  switch (choice) {
    case GemmChoice::kF32:
      return at::kFloat;
    case GemmChoice::kBf16:
      return at::kBFloat16;
    case GemmChoice::kAuto:
      break;
  }
  return probe_cpu_gemm().fastest;
}

}  // namespace dapx
