#pragma once
// One KV head's rows of a raw cache buffer (f32, or bf16 bits), as the attention kernels read
// them: f32 rows in place, bf16 rows widened tile by tile into the caller's scratch (which
// stays in L1), so the kernels' inner loops are the same for both dtypes.
#include <cstdint>

namespace dapx {

struct CacheRows {
  const void* base;
  bool bf16;
  int64_t offset;  // elements from base to this head's row 0
  int64_t d;       // elements per row

  // Rows [j0, j0 + n) as f32: a pointer into the cache, or into scratch (n * d floats).
  template <typename Ops>
  const float* rows(int64_t j0, int64_t n, float* scratch) const {
    if (!bf16) return static_cast<const float*>(base) + offset + j0 * d;
    Ops::widen(static_cast<const uint16_t*>(base) + offset + j0 * d, n * d, scratch);
    return scratch;
  }
};

}  // namespace dapx
