#pragma once
// Attention of one new token over a cache on raw f32 or bf16 buffers: the decode step's attention.
// Keys are split into ranges processed in parallel, each keeping a running max, sum and
// weighted value sum (online softmax), combined at the end ("flash decoding"): every key and
// value is read once, with no score matrix, no packing copies and one parallel region per
// layer. The GQA group of query heads shares each key and value row while it is in L1.
// Torch-free (raw pointers) so it runs under the sanitizers.
#include <cstdint>

#include "model/cpu_features.h"

namespace dapx {

struct DecodeAttention {
  const float* q = nullptr;  // [heads, d], already rotated
  // Key j of KV head h at k + h * head_stride + j * d, f32 or (bf16) bf16 bits: a bf16 cache
  // is read in tiles widened to f32 in L1, so memory traffic is half that of f32.
  const void* k = nullptr;
  const void* v = nullptr;  // same layout and dtype as k
  bool bf16 = false;
  int64_t head_stride = 0;  // elements between KV heads (the cache capacity times d)
  // Optional: mask[h * mask_stride + j] true hides key j of KV head h (padded slots).
  const bool* mask = nullptr;
  int64_t mask_stride = 0;
  int64_t heads = 0, kv_heads = 0, len = 0, d = 0;
  float* out = nullptr;  // [heads, d]
  // Narrower loops than the CPU has (tests compare); AVX-512 runs the AVX2 loops here (decode
  // attention reads the cache once: bandwidth-bound).
  CpuKernels kernels = CpuKernels::kBest;
};

// out[h] = softmax(q[h] . K^T / sqrt(d)) V over KV head h / (heads / kv_heads); a head whose
// keys are all masked gets zeros.
void attend_one_token(const DecodeAttention& a);

}  // namespace dapx
