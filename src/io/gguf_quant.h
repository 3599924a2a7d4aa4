#pragma once
// ggml tensor types as stored in GGUF files: block sizes, bytes per row, dequantisation of one
// row to float, and the Q8_0 quantiser. No LibTorch here.
//
// Block layouts (all little-endian, f16 = IEEE half; a row is a sequence of whole blocks):
//   F32, F16, BF16   plain values, block of 1.
//   Q8_0   32 values, 34 bytes: f16 d | int8 q[32];            x = q * d
//   Q4_0   32 values, 18 bytes: f16 d | uint8 qs[16];          x = (nibble - 8) * d; byte j holds
//          element j in its low nibble and element j + 16 in its high nibble.
//   Q4_1   32 values, 20 bytes: f16 d | f16 m | uint8 qs[16];  x = nibble * d + m (nibbles as Q4_0)
//   Q5_0   32 values, 22 bytes: f16 d | uint32 qh | qs[16];    x = ((nibble | bit << 4) - 16) * d;
//          bit i of qh is the fifth bit of element i.
//   Q5_1   32 values, 24 bytes: f16 d | f16 m | uint32 qh | qs[16]; x = (nibble | bit << 4) * d + m
//   Q4_K   256 values (8 sub-blocks of 32), 144 bytes: f16 d | f16 dmin | scales[12] | qs[128].
//          scales packs 8 six-bit scales sc[k] and 8 six-bit mins m[k]: for k < 4, sc[k] is the low
//          6 bits of byte k and m[k] the low 6 bits of byte k + 4; for k >= 4, sc[k] is the low
//          nibble of byte k + 4 plus the top 2 bits of byte k - 4 as bits 4-5, and m[k] the high
//          nibble of byte k + 4 plus the top 2 bits of byte k as bits 4-5.
//          Sub-blocks 2c and 2c+1 (c = 0..3) share qs[32c .. 32c+32): element l of sub-block 2c is
//          the low nibble of qs[32c + l], of sub-block 2c+1 the high nibble.
//          x = d * sc[k] * q - dmin * m[k]
//   Q5_K   256 values, 176 bytes: f16 d | f16 dmin | scales[12] | qh[32] | qs[128]; as Q4_K, plus
//          a fifth bit: element l of sub-block k takes bit k of qh[l] as 16.
//   Q6_K   256 values (16 sub-blocks of 16), 210 bytes: ql[128] | qh[64] | int8 scales[16] | f16 d.
//          Two halves of 128 (h = 0, 1) use ql[64h ..], qh[32h ..], scales[8h ..]. In a half,
//          for l < 32: element l = low nibble of ql[l], element 32 + l = low nibble of ql[32 + l],
//          element 64 + l = high nibble of ql[l], element 96 + l = high nibble of ql[32 + l];
//          their two high bits are bits 0-1, 2-3, 4-5, 6-7 of qh[l]; the 6-bit value q is
//          offset by 32; element e of the half uses scales[8h + e / 16].  x = d * scale * (q - 32)
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dapx {

// The numeric values are ggml's (they are what a GGUF tensor info stores).
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
};

struct GgmlTypeInfo {
  GgmlType type;
  const char* name;    // "Q4_K"
  int64_t block_size;  // elements per block (1 for plain types)
  size_t block_bytes;  // bytes per block
  bool dequantizable;  // dequantize_row() decodes it
};

// The type with numeric value `type`, or nullptr for values this reader does not know (removed
// types such as 4, 5, 31-33, 36-38, and types newer than MXFP4).
const GgmlTypeInfo* find_ggml_type(uint32_t type);
const GgmlTypeInfo& ggml_type_info(GgmlType type);
std::string ggml_type_name(GgmlType type);  // "Q8_0"
// "F32", "f16", "q8_0", ... (case-insensitive) -> the type; throws dapx::Error naming the name.
GgmlType ggml_type_from_name(const std::string& name);
// The types dequantize_row() decodes, comma-separated (for error messages).
std::string dequantizable_ggml_types();

constexpr int64_t kGgmlQK = 32;     // block size of Q4_0, Q4_1, Q5_0, Q5_1, Q8_0
constexpr int64_t kGgmlQK_K = 256;  // super-block size of the K-quants

// Bytes of one row of `row_length` elements. Throws dapx::Error when row_length is negative or
// not a multiple of the type's block size ("row length 100 is not a multiple of 32, the block
// size of Q8_0").
size_t ggml_row_bytes(GgmlType type, int64_t row_length);

// Decodes `n` elements (one row, or several whole rows) starting at `src` into `dst`: reads
// ggml_row_bytes(type, n) bytes, which need no alignment. Throws dapx::Error when the type is
// not dequantizable or `n` is not a multiple of its block size.
void dequantize_row(GgmlType type, const std::byte* src, float* dst, int64_t n);

// A Q8_0 row of n values (a multiple of 32) as it is: its int8 values q[n] and one f32 scale
// per block of 32 (the stored f16, widened); value j = q[j] * scales[j / 32] exactly.
void split_row_q8_0(const std::byte* src, int64_t n, int8_t* q, float* scales);

// Q8_0 quantisation as ggml's reference quantiser does it: per block of 32, d = amax / 127 (stored
// as f16), q = round-half-away(x / d) with the reciprocal of the unrounded d; d = 0 gives q = 0.
// `n` must be a multiple of 32; writes ggml_row_bytes(Q8_0, n) bytes to `dst`.
void quantize_row_q8_0(const float* src, std::byte* dst, int64_t n);
std::vector<std::byte> quantize_q8_0(const float* src, int64_t n);
// Q4_K by rounding to nearest (not ggml's search for the best scales): per sub-block of 32 a
// step over [min(0, lowest), highest] in 15 levels, the steps and mins as 6-bit multiples of
// the super-block's two f16 factors. n must be a multiple of 256.
void quantize_row_q4_k(const float* src, std::byte* dst, int64_t n);
std::vector<std::byte> quantize_q4_k(const float* src, int64_t n);

}  // namespace dapx
