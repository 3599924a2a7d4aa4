#pragma once
// Symmetric int8 quantisation of matrix rows, the one definition (Linear quantises the weights
// it is given; the GGUF loader quantises dequantised rows without keeping a copy of them).
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace dapx {

// Rows of an f32 matrix src [rows, in] into int8 dst and scales sc [rows, ceil(in / block)]:
// per row and block of `block` columns, scale = max |w| / 127 (1 for an all-zero block),
// q = round(w / scale) to nearest even.
inline void quantize_int8_rows(const float* src, int64_t rows, int64_t in, int64_t block,
                               int8_t* dst, float* sc) {
  const int64_t blocks = (in + block - 1) / block;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t j0 = b * block, j1 = std::min(in, j0 + block);
      float amax = 0.f;
      for (int64_t j = j0; j < j1; ++j) amax = std::max(amax, std::abs(src[i * in + j]));
      const float scale = amax > 0.f ? amax / 127.f : 1.f;
      sc[i * blocks + b] = scale;
      for (int64_t j = j0; j < j1; ++j)
        dst[i * in + j] = static_cast<int8_t>(std::lrint(src[i * in + j] / scale));
    }
}

}  // namespace dapx
