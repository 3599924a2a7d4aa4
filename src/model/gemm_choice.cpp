#include "model/gemm_choice.h"

#include <algorithm>
#include <chrono>

#include "util/error.h"

namespace dapx {
namespace {

// GFLOP/s of [m, k] x [k, n] in `dtype`: the best of a few runs after a warm-up.
double gemm_rate(at::ScalarType dtype, int64_t m, int64_t k, int64_t n) {
  const at::Tensor a = at::randn({m, k}).to(dtype), b = at::randn({n, k}).to(dtype).t();
  at::mm(a, b);  // warm-up: packing buffers, thread pool
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    at::mm(a, b);
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    best = std::min(best, dt.count());
  }
  return 2.0 * m * k * n / best / 1e9;
}

GemmProbe measure() {
  GemmProbe p;
  // A prefill chunk's slice against a layer-sized weight tile; small enough that the slow
  // bf16 fallback costs tens of milliseconds, large enough for the fast kernels to show.
  p.f32_gflops = gemm_rate(at::kFloat, 64, 512, 512);
  p.bf16_gflops = gemm_rate(at::kBFloat16, 64, 512, 512);
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
