#pragma once
// The element count of a shape, refusing what a hostile file header could make wrap around.
#include <cstdint>
#include <limits>
#include <vector>

namespace dapx {

// Product of the dims; false on a negative dim or overflow. Every partial product must fit
// int64_t, as numel() multiplies in that order ([2^32, 2^31, 0] has 0 elements but overflows
// on the way).
inline bool checked_numel(const std::vector<int64_t>& shape, uint64_t* out) {
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (d != 0 && n > kMax / static_cast<uint64_t>(d)) return false;
    n *= static_cast<uint64_t>(d);
  }
  *out = n;
  return true;
}

}  // namespace dapx
