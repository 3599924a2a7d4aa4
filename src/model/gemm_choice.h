#pragma once
// Which dtype runs the CPU prefill GEMM faster on this machine. LibTorch's bf16 GEMM is fast
// with AVX512-BF16 or AMX (about 5x the f32 rate) and a slow fallback without (about 1/60 of
// it), so the choice is measured, not read from a CPU-name table: a short probe of both on a
// layer-sized product, once per process (the result is cached): the best of up to five
// interleaved runs each, a few ms where bf16 is fast; about 0.05 s where it is not (a warm-up
// and one run of a 34-MFLOP product at 1.3-1.5 GFLOP/s, then the probe stops).
#include <ATen/ATen.h>

#include <string>

namespace dapx {

enum class GemmChoice { kAuto, kF32, kBf16 };

// "auto", "f32"/"float32" or "bf16"/"bfloat16"; anything else is an error naming the choices.
GemmChoice parse_gemm_choice(const std::string& name);

struct GemmProbe {
  double f32_gflops = 0, bf16_gflops = 0;
  at::ScalarType fastest = at::kFloat;
};
// Measured on the first call, then cached for the process.
const GemmProbe& probe_cpu_gemm();

// kF32 / kBf16 as asked; kAuto: the probe's fastest.
at::ScalarType resolve_gemm(GemmChoice choice);

}  // namespace dapx
