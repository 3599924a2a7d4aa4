#pragma once
// The work a generation asks of the machine, to read its timings against the machine's limits:
// prefill is bound by the GEMM rate (FLOPs), decode by the read bandwidth (bytes per token).
#include <cstdint>

#include "io/model_config.h"

namespace dapx::bench {

// FLOPs of a dense causal prefill of n tokens: 2 per weight per token for the layer matmuls
// (the LM head runs only for the last token) plus QK^T and PV over the causal triangle.
double prefill_flops(const ModelConfig& c, int64_t n);

// Bytes one decode step reads: every weight of the target once, and the live KV cache.
inline double decode_bytes_per_token(double weight_bytes, double kv_bytes) {
  return weight_bytes + kv_bytes;
}

}  // namespace dapx::bench
