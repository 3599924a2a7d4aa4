#pragma once
// bf16 <-> f32, the one definition (safetensors conversion, raw kernels, KV cache): bf16 is the
// upper 16 bits of an f32. Narrowing rounds to nearest even, as LibTorch's conversion does, so
// a value appended through a tensor copy and through the decode step's raw append is the same
// bf16; NaN stays a (quiet) NaN, and overflow rounds the largest finite values up to infinity.
#include <cstdint>
#include <cstring>

namespace dapx {

inline float bf16_to_f32(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

}  // namespace dapx
