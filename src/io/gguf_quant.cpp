#include "io/gguf_quant.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>

#include "io/safetensors.h"  // f16_to_float, float_to_f16
#include "util/bf16.h"
#include "util/error.h"

namespace dapx {

namespace {

// Sizes from ggml's block definitions; `true` where dequantize_row() decodes the type.
const GgmlTypeInfo kTypes[] = {
    {GgmlType::F32, "F32", 1, 4, true},
    {GgmlType::F16, "F16", 1, 2, true},
    {GgmlType::Q4_0, "Q4_0", 32, 18, true},
    {GgmlType::Q4_1, "Q4_1", 32, 20, true},
    {GgmlType::Q5_0, "Q5_0", 32, 22, true},
    {GgmlType::Q5_1, "Q5_1", 32, 24, true},
    {GgmlType::Q8_0, "Q8_0", 32, 34, true},
    {GgmlType::Q8_1, "Q8_1", 32, 36, false},
    {GgmlType::Q2_K, "Q2_K", 256, 84, false},
    {GgmlType::Q3_K, "Q3_K", 256, 110, false},
    {GgmlType::Q4_K, "Q4_K", 256, 144, true},
    {GgmlType::Q5_K, "Q5_K", 256, 176, true},
    {GgmlType::Q6_K, "Q6_K", 256, 210, true},
    {GgmlType::Q8_K, "Q8_K", 256, 292, false},
    {GgmlType::IQ2_XXS, "IQ2_XXS", 256, 66, false},
    {GgmlType::IQ2_XS, "IQ2_XS", 256, 74, false},
    {GgmlType::IQ3_XXS, "IQ3_XXS", 256, 98, false},
    {GgmlType::IQ1_S, "IQ1_S", 256, 50, false},
    {GgmlType::IQ4_NL, "IQ4_NL", 32, 18, false},
    {GgmlType::IQ3_S, "IQ3_S", 256, 110, false},
    {GgmlType::IQ2_S, "IQ2_S", 256, 82, false},
    {GgmlType::IQ4_XS, "IQ4_XS", 256, 136, false},
    {GgmlType::I8, "I8", 1, 1, false},
    {GgmlType::I16, "I16", 1, 2, false},
    {GgmlType::I32, "I32", 1, 4, false},
    {GgmlType::I64, "I64", 1, 8, false},
    {GgmlType::F64, "F64", 1, 8, false},
    {GgmlType::IQ1_M, "IQ1_M", 256, 56, false},
    {GgmlType::BF16, "BF16", 1, 2, true},
    {GgmlType::TQ1_0, "TQ1_0", 256, 54, false},
    {GgmlType::TQ2_0, "TQ2_0", 256, 66, false},
    {GgmlType::MXFP4, "MXFP4", 32, 17, false},
};

uint16_t le16(const std::byte* p) {
  return static_cast<uint16_t>(static_cast<uint16_t>(p[0]) | (static_cast<uint16_t>(p[1]) << 8));
}

uint32_t le32(const std::byte* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

float half(const std::byte* p) { return f16_to_float(le16(p)); }

uint8_t u8(const std::byte* p) { return static_cast<uint8_t>(*p); }

// The 6-bit scale and min of sub-block k (0..7) of a Q4_K / Q5_K super-block.
void k_scale_min(const std::byte* scales, int k, int* sc, int* m) {
  if (k < 4) {
    *sc = u8(scales + k) & 0x3f;
    *m = u8(scales + k + 4) & 0x3f;
  } else {
    *sc = (u8(scales + k + 4) & 0x0f) | ((u8(scales + k - 4) >> 6) << 4);
    *m = (u8(scales + k + 4) >> 4) | ((u8(scales + k) >> 6) << 4);
  }
}

void block_q4_0(const std::byte* b, float* y) {
  const float d = half(b);
  const std::byte* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    const int q = u8(qs + j);
    y[j] = static_cast<float>((q & 0x0f) - 8) * d;
    y[j + 16] = static_cast<float>((q >> 4) - 8) * d;
  }
}

void block_q4_1(const std::byte* b, float* y) {
  const float d = half(b), m = half(b + 2);
  const std::byte* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    const int q = u8(qs + j);
    y[j] = static_cast<float>(q & 0x0f) * d + m;
    y[j + 16] = static_cast<float>(q >> 4) * d + m;
  }
}

void block_q5_0(const std::byte* b, float* y) {
  const float d = half(b);
  const uint32_t qh = le32(b + 2);
  const std::byte* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int q = u8(qs + j);
    const int lo = (q & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (q >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = static_cast<float>(lo - 16) * d;
    y[j + 16] = static_cast<float>(hi - 16) * d;
  }
}

void block_q5_1(const std::byte* b, float* y) {
  const float d = half(b), m = half(b + 2);
  const uint32_t qh = le32(b + 4);
  const std::byte* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    const int q = u8(qs + j);
    const int lo = (q & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (q >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = static_cast<float>(lo) * d + m;
    y[j + 16] = static_cast<float>(hi) * d + m;
  }
}

void block_q8_0(const std::byte* b, float* y) {
  const float d = half(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(u8(b + 2 + j))) * d;
}

// Q4_K and Q5_K share the scale layout; `qh` is null for Q4_K.
void block_k_4_5(const std::byte* b, const std::byte* qh, const std::byte* qs, float* y) {
  const float d = half(b), dmin = half(b + 2);
  const std::byte* scales = b + 4;
  for (int c = 0; c < 4; ++c) {
    int sc_lo, m_lo, sc_hi, m_hi;
    k_scale_min(scales, 2 * c, &sc_lo, &m_lo);
    k_scale_min(scales, 2 * c + 1, &sc_hi, &m_hi);
    const float d_lo = d * static_cast<float>(sc_lo), min_lo = dmin * static_cast<float>(m_lo);
    const float d_hi = d * static_cast<float>(sc_hi), min_hi = dmin * static_cast<float>(m_hi);
    float* out = y + 64 * c;
    for (int l = 0; l < 32; ++l) {
      const int q = u8(qs + 32 * c + l);
      int lo = q & 0x0f, hi = q >> 4;
      if (qh) {
        const int h = u8(qh + l);
        lo += ((h >> (2 * c)) & 1) << 4;
        hi += ((h >> (2 * c + 1)) & 1) << 4;
      }
      out[l] = d_lo * static_cast<float>(lo) - min_lo;
      out[32 + l] = d_hi * static_cast<float>(hi) - min_hi;
    }
  }
}

void block_q4_k(const std::byte* b, float* y) { block_k_4_5(b, nullptr, b + 16, y); }

void block_q5_k(const std::byte* b, float* y) { block_k_4_5(b, b + 16, b + 48, y); }

void block_q6_k(const std::byte* b, float* y) {
  const float d = half(b + 208);
  for (int h = 0; h < 2; ++h) {
    const std::byte* ql = b + 64 * h;
    const std::byte* qh = b + 128 + 32 * h;
    const std::byte* sc = b + 192 + 8 * h;
    float* out = y + 128 * h;
    for (int l = 0; l < 32; ++l) {
      const int a = u8(ql + l), c = u8(ql + 32 + l), hb = u8(qh + l);
      const int q[4] = {(a & 0x0f) | ((hb & 3) << 4), (c & 0x0f) | (((hb >> 2) & 3) << 4),
                        (a >> 4) | (((hb >> 4) & 3) << 4), (c >> 4) | (((hb >> 6) & 3) << 4)};
      for (int g = 0; g < 4; ++g) {
        const int e = 32 * g + l;
        const float scale = static_cast<float>(static_cast<int8_t>(u8(sc + e / 16)));
        out[e] = d * scale * static_cast<float>(q[g] - 32);
      }
    }
  }
}

using BlockDecoder = void (*)(const std::byte*, float*);

BlockDecoder block_decoder(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_0:
      return block_q4_0;
    case GgmlType::Q4_1:
      return block_q4_1;
    case GgmlType::Q5_0:
      return block_q5_0;
    case GgmlType::Q5_1:
      return block_q5_1;
    case GgmlType::Q8_0:
      return block_q8_0;
    case GgmlType::Q4_K:
      return block_q4_k;
    case GgmlType::Q5_K:
      return block_q5_k;
    case GgmlType::Q6_K:
      return block_q6_k;
    default:
      return nullptr;
  }
}

}  // namespace

const GgmlTypeInfo* find_ggml_type(uint32_t type) {
  for (const GgmlTypeInfo& t : kTypes)
    if (static_cast<uint32_t>(t.type) == type) return &t;
  return nullptr;
}

const GgmlTypeInfo& ggml_type_info(GgmlType type) {
  const GgmlTypeInfo* t = find_ggml_type(static_cast<uint32_t>(type));
  if (!t) throw Error("unknown ggml tensor type " + std::to_string(static_cast<uint32_t>(type)));
  return *t;
}

std::string ggml_type_name(GgmlType type) {
  const GgmlTypeInfo* t = find_ggml_type(static_cast<uint32_t>(type));
  return t ? t->name : "type " + std::to_string(static_cast<uint32_t>(type));
}

GgmlType ggml_type_from_name(const std::string& name) {
  std::string upper = name;
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  for (const GgmlTypeInfo& t : kTypes)
    if (upper == t.name) return t.type;
  throw Error("unknown ggml tensor type '" + name + "'");
}

std::string dequantizable_ggml_types() {
  std::string s;
  for (const GgmlTypeInfo& t : kTypes) {
    if (!t.dequantizable) continue;
    s += (s.empty() ? "" : ", ") + std::string(t.name);
  }
  return s;
}

size_t ggml_row_bytes(GgmlType type, int64_t row_length) {
  const GgmlTypeInfo& t = ggml_type_info(type);
  if (row_length < 0) throw Error("negative row length " + std::to_string(row_length));
  if (row_length % t.block_size != 0) {
    throw Error("row length " + std::to_string(row_length) + " is not a multiple of " +
                std::to_string(t.block_size) + ", the block size of " + t.name);
  }
  const uint64_t blocks = static_cast<uint64_t>(row_length / t.block_size);
  if (blocks > SIZE_MAX / t.block_bytes) {
    throw Error("row of " + std::to_string(row_length) + " " + t.name + " elements is too large");
  }
  return static_cast<size_t>(blocks) * t.block_bytes;
}

void dequantize_row(GgmlType type, const std::byte* src, float* dst, int64_t n) {
  const GgmlTypeInfo& t = ggml_type_info(type);
  if (!t.dequantizable) {
    throw Error("tensor type " + std::string(t.name) +
                " cannot be dequantised (supported: " + dequantizable_ggml_types() + ")");
  }
  ggml_row_bytes(type, n);  // checks n against the block size
  switch (type) {
    case GgmlType::F32:
      if (n) std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_float(le16(src + 2 * i));
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(le16(src + 2 * i));
      return;
    default:
      break;
  }
  const BlockDecoder decode = block_decoder(type);
  const int64_t blocks = n / t.block_size;
  for (int64_t i = 0; i < blocks; ++i)
    decode(src + static_cast<size_t>(i) * t.block_bytes, dst + i * t.block_size);
}

void split_row_q8_0(const std::byte* src, int64_t n, int8_t* q, float* scales) {
  ggml_row_bytes(GgmlType::Q8_0, n);  // checks n against the block size
  for (int64_t b = 0; b < n / 32; ++b, src += 34) {
    scales[b] = half(src);
    for (int j = 0; j < 32; ++j) q[32 * b + j] = static_cast<int8_t>(u8(src + 2 + j));
  }
}

void quantize_row_q8_0(const float* src, std::byte* dst, int64_t n) {
  ggml_row_bytes(GgmlType::Q8_0, n);  // checks n against the block size
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* x = src + 32 * b;
    std::byte* out = dst + 34 * b;
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) {
      if (!std::isfinite(x[j])) {
        throw Error("cannot quantise to Q8_0: element " + std::to_string(32 * b + j) +
                    " is not finite");
      }
      amax = std::max(amax, std::fabs(x[j]));
    }
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const uint16_t h = float_to_f16(d);
    out[0] = static_cast<std::byte>(h & 0xff);
    out[1] = static_cast<std::byte>(h >> 8);
    for (int j = 0; j < 32; ++j) {
      const float q = std::round(x[j] * id);
      out[2 + j] = static_cast<std::byte>(static_cast<uint8_t>(static_cast<int8_t>(q)));
    }
  }
}

void quantize_row_q4_k(const float* src, std::byte* dst, int64_t n) {
  ggml_row_bytes(GgmlType::Q4_K, n);  // checks n against the super-block size
  for (int64_t b = 0; b < n / 256; ++b) {
    const float* x = src + 256 * b;
    std::byte* out = dst + 144 * b;
    // Per sub-block of 32: the step over [min(0, lowest), highest] in 15 levels, and -min.
    float scale[8], mins[8], max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; ++j) {
      float lo = 0.0f, hi = -INFINITY;
      for (int l = 0; l < 32; ++l) {
        const float v = x[32 * j + l];
        if (!std::isfinite(v))
          throw Error("cannot quantise to Q4_K: element " + std::to_string(256 * b + 32 * j + l) +
                      " is not finite");
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
      scale[j] = std::max(0.0f, (hi - lo) / 15.0f);
      mins[j] = -lo;
      max_scale = std::max(max_scale, scale[j]);
      max_min = std::max(max_min, mins[j]);
    }
    // The super-block's two f16 factors, then each sub-block's 6-bit multiples of them.
    const uint16_t d16 = float_to_f16(max_scale / 63.0f), m16 = float_to_f16(max_min / 63.0f);
    const float d = f16_to_float(d16), dmin = f16_to_float(m16);
    int sc[8], mq[8];
    for (int j = 0; j < 8; ++j) {
      sc[j] = d > 0.0f ? std::clamp(static_cast<int>(std::lround(scale[j] / d)), 0, 63) : 0;
      mq[j] = dmin > 0.0f ? std::clamp(static_cast<int>(std::lround(mins[j] / dmin)), 0, 63) : 0;
    }
    out[0] = static_cast<std::byte>(d16 & 0xff);
    out[1] = static_cast<std::byte>(d16 >> 8);
    out[2] = static_cast<std::byte>(m16 & 0xff);
    out[3] = static_cast<std::byte>(m16 >> 8);
    uint8_t* scales = reinterpret_cast<uint8_t*>(out + 4);
    for (int k = 0; k < 4; ++k) {  // the inverse of k_scale_min
      scales[k] = static_cast<uint8_t>((sc[k] & 63) | ((sc[k + 4] >> 4) << 6));
      scales[k + 4] = static_cast<uint8_t>((mq[k] & 63) | ((mq[k + 4] >> 4) << 6));
      scales[k + 8] = static_cast<uint8_t>((sc[k + 4] & 15) | ((mq[k + 4] & 15) << 4));
    }
    uint8_t q[256];
    for (int j = 0; j < 8; ++j) {
      const float step = d * static_cast<float>(sc[j]), offset = dmin * static_cast<float>(mq[j]);
      for (int l = 0; l < 32; ++l) {
        const float v = step > 0.0f ? (x[32 * j + l] + offset) / step : 0.0f;
        q[32 * j + l] = static_cast<uint8_t>(std::clamp(static_cast<int>(std::lround(v)), 0, 15));
      }
    }
    uint8_t* qs = reinterpret_cast<uint8_t*>(out + 16);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l)
        qs[32 * c + l] = static_cast<uint8_t>(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
  }
}

std::vector<std::byte> quantize_q4_k(const float* src, int64_t n) {
  std::vector<std::byte> out(ggml_row_bytes(GgmlType::Q4_K, n));
  quantize_row_q4_k(src, out.data(), n);
  return out;
}

std::vector<std::byte> quantize_q8_0(const float* src, int64_t n) {
  std::vector<std::byte> out(ggml_row_bytes(GgmlType::Q8_0, n));
  quantize_row_q8_0(src, out.data(), n);
  return out;
}

}  // namespace dapx
