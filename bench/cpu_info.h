#pragma once
// What the CPU is, as /proc/cpuinfo says: the model name and the instruction-set flags that
// decide which kernels run (AVX2 + FMA GEMV and attention, native bf16 GEMM with AVX512-BF16 or
// AMX), so that a stored result says on what it was measured.
#include <nlohmann/json.hpp>

namespace dapx::bench {

// {"cpu_model": "...", "cpu_flags": {"avx2": true, "fma": true, "avx512f": false,
// "avx512_bf16": false, "amx_bf16": false}, "hardware_threads": N}; the model is "unknown" and
// every flag false where /proc/cpuinfo cannot be read.
nlohmann::json cpu_info();

}  // namespace dapx::bench
