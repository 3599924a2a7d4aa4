#include "model/gemv.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "model/cpu_features.h"
#include "util/bf16.h"

namespace dapx {
namespace {

inline float same(float v) { return v; }
inline float to_f32(float v) { return v; }
inline float to_f32(uint16_t v) { return bf16_to_f32(v); }

// int8 weights multiply int8 activations: x is quantised per row and block of kInt8Block
// (symmetric, scale = max |x| / 127, as llama.cpp's Q8_0 does), so a block's dot product is an
// exact integer sum scaled once by w_scale * x_scale. Integer dot products are about 4x
// cheaper than widening each weight to f32, which keeps the int8 GEMV memory-bound.
struct QuantizedInput {
  std::vector<int8_t> q;     // [rows, k]
  std::vector<float> scale;  // [rows, blocks]; NaN when the block holds a NaN (it propagates)
  QuantizedInput(const float* x, int rows, int64_t k) : q(rows * k), scale(rows * int8_blocks(k)) {
    const int64_t blocks = int8_blocks(k);
    for (int r = 0; r < rows; ++r)
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t j0 = b * kInt8Block, j1 = std::min(k, j0 + kInt8Block);
        float amax = 0.f;
        for (int64_t j = j0; j < j1; ++j)
          if (const float a = std::abs(x[r * k + j]); !(a <= amax)) amax = a;  // NaN stays
        const float s = amax > 0.f ? amax / 127.f : (amax == 0.f ? 1.f : amax);
        scale[r * blocks + b] = s;
        const float inv = std::isfinite(s) ? 1.f / s : 0.f;
        for (int64_t j = j0; j < j1; ++j) {  // round half away from zero (no libm call)
          const float v = x[r * k + j] * inv;
          q[r * k + j] = static_cast<int8_t>(v + (v < 0.f ? -0.5f : 0.5f));
        }
      }
  }
};

// The input of the pair-product kernels, made once per distinct x of a gemv_batch: x rounded
// to bf16 (nearest even), and the same values as f32 split per 32-column chunk into its 16 odd
// columns, then its 16 even ones (zero past k), for the FMA form of the kernel.
struct PairsInput {
  int64_t kp = 0;  // k rounded up to 32
  // 64-byte aligned (each row too: kp is a multiple of 16 floats): a 512-bit load never
  // straddles two cache lines, which halved the FMA form's speed.
  uint16_t* bf16 = nullptr;  // [rows, kp]
  float* split = nullptr;    // [rows, kp]
  // `storage` is the caller's, reused from step to step: a fresh buffer of this size is a
  // fresh mapping from the kernel, whose page faults cost as much as the products.
  PairsInput(const float* x, int rows, int64_t k, std::vector<float>& storage)
      : kp((k + 31) / 32 * 32) {
    const size_t floats = static_cast<size_t>(rows * kp);  // split, then bf16 (half as many)
    storage.resize(std::max(storage.size(), floats + floats / 2 + 32));
    split = align64(storage.data());
    bf16 = reinterpret_cast<uint16_t*>(split + floats);
    for (int r = 0; r < rows; ++r) {
      int64_t j = 0;
#ifdef DAPX_X86
      if (cpu_has_avx512_bf16())
        j = round_split_avx512(x + r * k, k, bf16 + r * kp, split + r * kp);
#endif
      for (; j < kp; ++j) {
        const uint16_t b = j < k ? f32_to_bf16(x[r * k + j]) : 0;
        bf16[r * kp + j] = b;
        const int64_t c = j / 32 * 32, l = (j % 32) / 2;
        split[r * kp + c + (j % 2 ? l : 16 + l)] = bf16_to_f32(b);
      }
    }
  }
#ifdef DAPX_X86
  // Whole 32-column chunks of one row (rounded as vdpbf16ps's inputs: nearest even, subnormals
  // to zero); returns the columns done.
  __attribute__((target("avx512bf16,avx512bw,avx512f,avx2,fma"))) static int64_t round_split_avx512(
      const float* x, int64_t k, uint16_t* b, float* sp) {
    const __m512i high = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
    int64_t j = 0;
    for (; j + 32 <= k; j += 32) {
      const __m512i v =
          (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + j + 16), _mm512_loadu_ps(x + j));
      _mm512_storeu_si512(b + j, v);
      _mm512_store_ps(sp + j, _mm512_castsi512_ps(_mm512_and_si512(v, high)));
      _mm512_store_ps(sp + j + 16, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
    }
    return j;
  }
#endif
  template <typename T>
  static T* align64(T* p) {
    const auto a = reinterpret_cast<uintptr_t>(p);
    return reinterpret_cast<T*>((a + 63) / 64 * 64);
  }
};
// Up to this many x rows the pair instruction runs; more take its FMA form (same sums).
constexpr int kMaxPairInstructionRows = 2;

#ifdef DAPX_X86
// Flush-to-zero and denormals-are-zero while in scope (vdpbf16ps's rounding environment), on
// this thread; the caller's MXCSR comes back on exit.
class FlushDenormals {
 public:
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }
  ~FlushDenormals() { _mm_setcsr(saved_); }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  unsigned saved_;
};
#endif

// Weight scales cover `wb` columns (kInt8Block, or 32 for a GGUF Q8_0 matrix); x's cover
// kInt8Block. A 64-column block of x meets one or two weight blocks, each summed on its own and
// scaled by both scales.
void int8_rows_portable(const int8_t* w, const float* scales, int64_t wb, int64_t i0, int64_t i1,
                        int64_t n, int64_t k, const float* x, int rows, float* y) {
  const int64_t blocks = int8_blocks(k), wblocks = (k + wb - 1) / wb;
  const QuantizedInput in(x, rows, k);
  for (int64_t i = i0; i < i1; ++i)
    for (int r = 0; r < rows; ++r) {
      float acc = 0.f;
      for (int64_t b = 0; b < blocks; ++b)
        for (int64_t j0 = b * kInt8Block; j0 < std::min(k, (b + 1) * kInt8Block); j0 += wb) {
          int32_t dot = 0;
          for (int64_t j = j0; j < std::min(k, j0 + wb); ++j)
            dot += int32_t{w[i * k + j]} * in.q[r * k + j];
          acc +=
              static_cast<float>(dot) * (scales[i * wblocks + j0 / wb] * in.scale[r * blocks + b]);
        }
      y[r * n + i] = acc;
    }
}

// Portable path: output rows [i0, i1) of W [n, k], one element at a time.
template <typename W, typename Convert>
void rows_portable(const W* w, int64_t i0, int64_t i1, int64_t n, int64_t k, const float* x,
                   int rows, float* y, Convert convert) {
  for (int64_t i = i0; i < i1; ++i) {
    const W* wr = w + i * k;
    for (int r = 0; r < rows; ++r) {
      const float* xr = x + r * k;
      float acc = 0.f;
      for (int64_t j = 0; j < k; ++j) acc += convert(wr[j]) * xr[j];
      y[r * n + i] = acc;
    }
  }
}

// Pair products (kBf16Pairs) on bf16 weights and x already rounded to bf16: each (weight row,
// x row) sum is one 16-lane accumulator over 32-column chunks, lane l adding column 2l + 1,
// then 2l, of each chunk (vdpbf16ps's order), the lanes summed at the end; columns past k count
// as zeros. The plain loop runs where the CPU has no AVX512-BF16 (and in tests); it adds in the
// instruction's order and sums the lanes in the same tree, so the two agree bit for bit except
// where subnormals occur (the instruction flushes them to zero).
void pairs_rows_portable(const uint16_t* w, int64_t i0, int64_t i1, int64_t n, int64_t k,
                         const PairsInput& in, int rows, float* y) {
  for (int64_t i = i0; i < i1; ++i)
    for (int r = 0; r < rows; ++r) {
      const uint16_t* wr = w + i * k;
      const uint16_t* xr = in.bf16 + r * in.kp;
      float lane[16] = {};
      for (int64_t c = 0; c < k; c += 32)
        for (int l = 0; l < 16; ++l)
          for (const int64_t j : {c + 2 * l + 1, c + 2 * l})
            if (j < k) lane[l] += bf16_to_f32(wr[j]) * bf16_to_f32(xr[j]);
      float s8[8], s4[4];  // the lanes summed in _mm512_reduce_add_ps's tree
      for (int l = 0; l < 8; ++l) s8[l] = lane[l] + lane[l + 8];
      for (int l = 0; l < 4; ++l) s4[l] = s8[l] + s8[l + 4];
      y[r * n + i] = (s4[0] + s4[2]) + (s4[1] + s4[3]);
    }
}

#ifdef DAPX_X86
__attribute__((target("avx2,fma"))) inline __m256 load8(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

__attribute__((target("avx2,fma"))) inline __m256 load8(const float* p) {
  return _mm256_loadu_ps(p);
}

// Software prefetch kPrefetchBytes ahead of a weight stream: the hardware prefetchers alone left
// a quarter of the read bandwidth unused on a 2-core Xeon (a plain bf16 GEMV: 14-15 -> 19-20
// GB/s with 4-8 KiB ahead; bench_gemv's LM head: 14.5 -> 23.3 GB/s). Prefetches past the end
// of the matrix are harmless (they never fault).
constexpr int64_t kPrefetchBytes = 8192;
inline void prefetch_ahead(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p) + kPrefetchBytes;
  for (int64_t b = 0; b < bytes; b += 64) _mm_prefetch(c + b, _MM_HINT_T0);
}

// One weight row at a time with four independent accumulators: measured fastest on large
// matrices (a single sequential stream per thread keeps the prefetchers ahead; interleaving
// 2-8 rows was 20-40% slower). Each row is read once and reused for every x row from L1; two x
// rows at a time share each widened weight vector (a row's order of operations is that of a
// row alone, so its sum never depends on the other rows).
template <int R, typename W>
__attribute__((target("avx2,fma"))) inline void row_group_avx2(const W* wr, int64_t k,
                                                               const float* x, float* const* out) {
  const int64_t k32 = k / 32 * 32, k8 = k / 8 * 8;
  __m256 a[R][4];
  for (int r = 0; r < R; ++r) a[r][0] = a[r][1] = a[r][2] = a[r][3] = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j < k32; j += 32) {
    prefetch_ahead(wr + j, 32 * sizeof(W));
    const __m256 w0 = load8(wr + j), w1 = load8(wr + j + 8), w2 = load8(wr + j + 16),
                 w3 = load8(wr + j + 24);
    for (int r = 0; r < R; ++r) {
      const float* xr = x + r * k;
      a[r][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xr + j), a[r][0]);
      a[r][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xr + j + 8), a[r][1]);
      a[r][2] = _mm256_fmadd_ps(w2, _mm256_loadu_ps(xr + j + 16), a[r][2]);
      a[r][3] = _mm256_fmadd_ps(w3, _mm256_loadu_ps(xr + j + 24), a[r][3]);
    }
  }
  for (; j < k8; j += 8) {
    const __m256 w0 = load8(wr + j);
    for (int r = 0; r < R; ++r)
      a[r][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + r * k + j), a[r][0]);
  }
  for (int r = 0; r < R; ++r) {
    float s =
        hsum8(_mm256_add_ps(_mm256_add_ps(a[r][0], a[r][1]), _mm256_add_ps(a[r][2], a[r][3])));
    for (int64_t t = j; t < k; ++t) s += to_f32(wr[t]) * x[r * k + t];
    *out[r] = s;
  }
}

template <typename W, typename Convert>
__attribute__((target("avx2,fma"))) void rows_avx2(const W* w, int64_t i0, int64_t i1, int64_t n,
                                                   int64_t k, const float* x, int rows, float* y,
                                                   Convert) {
  for (int64_t i = i0; i < i1; ++i) {
    const W* wr = w + i * k;
    for (int r0 = 0; r0 < rows; r0 += 2) {
      float* out[2] = {y + r0 * n + i, r0 + 1 < rows ? y + (r0 + 1) * n + i : nullptr};
      if (r0 + 1 < rows)
        row_group_avx2<2>(wr, k, x + r0 * k, out);
      else
        row_group_avx2<1>(wr, k, x + r0 * k, out);
    }
  }
}

__attribute__((target("avx512f,avx2,fma"))) inline __m512 load16(const uint16_t* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

__attribute__((target("avx512f,avx2,fma"))) inline __m512 load16(const float* p) {
  return _mm512_loadu_ps(p);
}

// As rows_avx2, 16 lanes wide: half the instructions per weight, which on a core that streams
// 30 GB/s leaves the loop memory-bound (AVX2 needs ~2 widen/multiply-add per 8 weights).
// R x rows share each widened weight vector (batched decode: the widening is paid once per
// group, not once per row); each row keeps its own four accumulators and the exact order of
// operations of a group of one, so a row's sum never depends on its batch-mates.
template <int R, typename W>
__attribute__((target("avx512f,avx2,fma"))) inline void row_group_avx512(const W* wr, int64_t k,
                                                                         const float* x,
                                                                         float* const* out) {
  const int64_t k64 = k / 64 * 64, k16 = k / 16 * 16;
  __m512 a[R][4];
  for (int r = 0; r < R; ++r) a[r][0] = a[r][1] = a[r][2] = a[r][3] = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j < k64; j += 64) {
    prefetch_ahead(wr + j, 64 * sizeof(W));
    const __m512 w0 = load16(wr + j), w1 = load16(wr + j + 16), w2 = load16(wr + j + 32),
                 w3 = load16(wr + j + 48);
    for (int r = 0; r < R; ++r) {
      const float* xr = x + r * k;
      a[r][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xr + j), a[r][0]);
      a[r][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xr + j + 16), a[r][1]);
      a[r][2] = _mm512_fmadd_ps(w2, _mm512_loadu_ps(xr + j + 32), a[r][2]);
      a[r][3] = _mm512_fmadd_ps(w3, _mm512_loadu_ps(xr + j + 48), a[r][3]);
    }
  }
  for (; j < k16; j += 16) {
    const __m512 w0 = load16(wr + j);
    for (int r = 0; r < R; ++r)
      a[r][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + r * k + j), a[r][0]);
  }
  for (int r = 0; r < R; ++r) {
    float s = _mm512_reduce_add_ps(
        _mm512_add_ps(_mm512_add_ps(a[r][0], a[r][1]), _mm512_add_ps(a[r][2], a[r][3])));
    for (int64_t t = j; t < k; ++t) s += to_f32(wr[t]) * x[r * k + t];
    *out[r] = s;
  }
}

// Several x rows (batched decode) against WR weight rows at once. Each (weight row, x row) sum
// is the one-row loop's four accumulator chains (a0 over columns 0-15 of every 64-column
// block, a1 over 16-31, ...), and the chains are independent, so they can run one after
// another: pass q runs chain q of all WR x XR pairs (16 chains in flight with 4 x 4, enough
// for two FMA ports), loading each weight and x vector once per pass. Per FMA that is half a
// load instead of the 1.25 of one weight row at a time, and the sums are bit for bit those of
// the one-row loop, whatever the other rows.
template <int WR, int XR, typename W>
__attribute__((target("avx512f,avx2,fma"))) void block_avx512(const W* w, int64_t i, int64_t n,
                                                              int64_t k, const float* x, float* y) {
  const int64_t k64 = k / 64 * 64, k16 = k / 16 * 16;
  alignas(64) float part[4][WR][XR][16];
  for (int q = 0; q < 4; ++q) {
    __m512 a[WR][XR];
    for (int p = 0; p < WR; ++p)
      for (int r = 0; r < XR; ++r) a[p][r] = _mm512_setzero_ps();
    for (int64_t j = 16 * q; j < k64; j += 64) {
      __m512 wv[WR];
      for (int p = 0; p < WR; ++p) {
        if (q == 0) prefetch_ahead(w + (i + p) * k + j, 64 * sizeof(W));
        wv[p] = load16(w + (i + p) * k + j);
      }
      for (int r = 0; r < XR; ++r) {
        const __m512 xv = _mm512_loadu_ps(x + r * k + j);
        for (int p = 0; p < WR; ++p) a[p][r] = _mm512_fmadd_ps(wv[p], xv, a[p][r]);
      }
    }
    if (q == 0)  // the 16-wide remainder joins chain 0, as in the one-row loop
      for (int64_t j = k64; j < k16; j += 16)
        for (int p = 0; p < WR; ++p) {
          const __m512 wv = load16(w + (i + p) * k + j);
          for (int r = 0; r < XR; ++r)
            a[p][r] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + r * k + j), a[p][r]);
        }
    for (int p = 0; p < WR; ++p)
      for (int r = 0; r < XR; ++r) _mm512_store_ps(part[q][p][r], a[p][r]);
  }
  for (int p = 0; p < WR; ++p)
    for (int r = 0; r < XR; ++r) {
      const __m512 sum = _mm512_add_ps(
          _mm512_add_ps(_mm512_load_ps(part[0][p][r]), _mm512_load_ps(part[1][p][r])),
          _mm512_add_ps(_mm512_load_ps(part[2][p][r]), _mm512_load_ps(part[3][p][r])));
      float s = _mm512_reduce_add_ps(sum);
      const W* wr = w + (i + p) * k;
      for (int64_t t = k16; t < k; ++t) s += to_f32(wr[t]) * x[r * k + t];
      y[r * n + i + p] = s;
    }
}

template <int WR, typename W>
__attribute__((target("avx512f,avx2,fma"))) void block_rows_avx512(const W* w, int64_t i, int64_t n,
                                                                   int64_t k, const float* x,
                                                                   int rows, float* y) {
  for (int r0 = 0; r0 < rows; r0 += 4) {
    const float* xg = x + r0 * k;
    float* yg = y + r0 * n;
    switch (std::min(4, rows - r0)) {
      case 4:
        block_avx512<WR, 4>(w, i, n, k, xg, yg);
        break;
      case 3:
        block_avx512<WR, 3>(w, i, n, k, xg, yg);
        break;
      case 2:
        block_avx512<WR, 2>(w, i, n, k, xg, yg);
        break;
      default:
        block_avx512<WR, 1>(w, i, n, k, xg, yg);
        break;
    }
  }
}

template <typename W, typename Convert>
__attribute__((target("avx512f,avx2,fma"))) void rows_avx512(const W* w, int64_t i0, int64_t i1,
                                                             int64_t n, int64_t k, const float* x,
                                                             int rows, float* y, Convert) {
  if (rows == 1) {  // decode alone: one sequential weight stream per thread (bandwidth-bound)
    for (int64_t i = i0; i < i1; ++i) {
      float* out[1] = {y + i};
      row_group_avx512<1>(w + i * k, k, x, out);
    }
    return;
  }
  int64_t i = i0;
  for (; i + 4 <= i1; i += 4) block_rows_avx512<4>(w, i, n, k, x, rows, y);
  switch (i1 - i) {
    case 3:
      block_rows_avx512<3>(w, i, n, k, x, rows, y);
      break;
    case 2:
      block_rows_avx512<2>(w, i, n, k, x, rows, y);
      break;
    case 1:
      block_rows_avx512<1>(w, i, n, k, x, rows, y);
      break;
    default:
      break;
  }
}

// As int8_rows_portable: 32 weights per step with maddubs (|w| as unsigned times x with w's
// sign: pairs of products, at most 2 * 127 * 127, fit int16) then madd into int32 lanes.
__attribute__((target("avx2,fma"))) void int8_rows_avx2(const int8_t* w, const float* scales,
                                                        int64_t wb, int64_t i0, int64_t i1,
                                                        int64_t n, int64_t k, const float* x,
                                                        int rows, float* y) {
  const int64_t blocks = int8_blocks(k), wblocks = (k + wb - 1) / wb;
  const QuantizedInput in(x, rows, k);
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t i = i0; i < i1; ++i) {
    const int8_t* wr = w + i * k;
    const float* ws = scales + i * wblocks;
    for (int r = 0; r < rows; ++r) {
      const int8_t* xr = in.q.data() + r * k;
      __m256 acc = _mm256_setzero_ps();
      float tail = 0.f;
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t j0 = b * kInt8Block, j1 = std::min(k, j0 + kInt8Block);
        const float xs = in.scale[r * blocks + b];
        __m256i dot = _mm256_setzero_si256();
        int64_t j = j0;
        for (; j + 32 <= j1; j += 32) {
          prefetch_ahead(wr + j, 32);
          const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + j));
          const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + j));
          const __m256i pairs =
              _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
          dot = _mm256_add_epi32(dot, _mm256_madd_epi16(pairs, ones));
          if (wb == 32) {  // each 32 columns are a weight block of their own
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(ws[j / 32] * xs), acc);
            dot = _mm256_setzero_si256();
          }
        }
        if (wb != 32)
          acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(ws[b] * xs), acc);
        int32_t rest = 0;  // fewer than 32 columns: within one weight block
        for (int64_t t = j; t < j1; ++t) rest += int32_t{wr[t]} * xr[t];
        if (j < j1) tail += static_cast<float>(rest) * (ws[j / wb] * xs);
      }
      y[r * n + i] = hsum8(acc) + tail;
    }
  }
}

// As int8_rows_avx2 with AVX-512 VNNI: one 64-column block per register, and dpbusd sums four
// u8 x s8 products per lane in one instruction (|w| times x carrying w's sign, as above). The
// AVX2 loop needs three instructions for that and made int8 decode compute-bound on a Xeon.
__attribute__((target("avx512f,avx512bw,avx512vnni,avx2,fma"))) void int8_rows_vnni(
    const int8_t* w, const float* scales, int64_t wb, int64_t i0, int64_t i1, int64_t n, int64_t k,
    const float* x, int rows, float* y) {
  static_assert(kInt8Block == 64, "one block per 512-bit register");
  const int64_t blocks = int8_blocks(k), whole = k / kInt8Block, wblocks = (k + wb - 1) / wb;
  const QuantizedInput in(x, rows, k);
  const __m512i zero = _mm512_setzero_si512();
  for (int64_t i = i0; i < i1; ++i) {
    const int8_t* wr = w + i * k;
    const float* ws = scales + i * wblocks;
    for (int r = 0; r < rows; ++r) {
      const int8_t* xr = in.q.data() + r * k;
      __m512 acc = _mm512_setzero_ps();
      for (int64_t b = 0; b < whole; ++b) {
        prefetch_ahead(wr + b * kInt8Block, kInt8Block);
        const __m512i wv = _mm512_loadu_si512(wr + b * kInt8Block);
        const __m512i xv = _mm512_loadu_si512(xr + b * kInt8Block);
        const __m512i xs = _mm512_mask_sub_epi8(xv, _mm512_movepi8_mask(wv), zero, xv);
        const __m512i dot = _mm512_dpbusd_epi32(zero, _mm512_abs_epi8(wv), xs);
        const float xscale = in.scale[r * blocks + b];
        // Lanes 0-7 sum columns 0-31 of the block, lanes 8-15 columns 32-63: with 32-column
        // weight blocks each half takes its own weight scale.
        const __m512 scale = wb == 32
                                 ? _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(ws[2 * b] * xscale),
                                                        _mm512_set1_ps(ws[2 * b + 1] * xscale))
                                 : _mm512_set1_ps(ws[b] * xscale);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc);
      }
      float tail = 0.f;
      if (whole < blocks) {  // the last, shorter block: one or two weight blocks
        const float xscale = in.scale[r * blocks + whole];
        for (int64_t j0 = whole * kInt8Block; j0 < k; j0 += wb) {
          int32_t rest = 0;
          for (int64_t j = j0; j < std::min(k, j0 + wb); ++j) rest += int32_t{wr[j]} * xr[j];
          tail += static_cast<float>(rest) * (ws[j0 / wb] * xscale);
        }
      }
      y[r * n + i] = _mm512_reduce_add_ps(acc) + tail;
    }
  }
}

// kBf16Pairs with AVX512-BF16: one vdpbf16ps multiplies 32 bf16 weights by 32 bf16 inputs and
// adds the pairs into 16 f32 lanes, with no widening of the weights: a quarter of the
// instructions per weight of the widening loop, so B = 8 rows still stream W at the memory's
// pace. WR weight rows x XR x rows per block; each (weight row, x row) pair has its own single
// accumulator, so its sum never depends on the block it ran in or on the other rows.
template <int WR, int XR>
__attribute__((target("avx512bf16,avx512bw,avx512f,avx2,fma"))) inline void pairs_block(
    const uint16_t* w, int64_t i, int64_t n, int64_t k, const uint16_t* xb, int64_t kp, float* y) {
  __m512 a[WR][XR];
  for (int p = 0; p < WR; ++p)
    for (int r = 0; r < XR; ++r) a[p][r] = _mm512_setzero_ps();
  const int64_t k32 = k / 32 * 32;
  for (int64_t j = 0; j < k32; j += 32) {
    __m512bh wv[WR];
    for (int p = 0; p < WR; ++p) {
      prefetch_ahead(w + (i + p) * k + j, 64);
      wv[p] = (__m512bh)_mm512_loadu_si512(w + (i + p) * k + j);
    }
    for (int r = 0; r < XR; ++r) {
      const __m512bh xv = (__m512bh)_mm512_loadu_si512(xb + r * kp + j);
      for (int p = 0; p < WR; ++p) a[p][r] = _mm512_dpbf16_ps(a[p][r], wv[p], xv);
    }
  }
  if (k32 < k) {  // the last chunk, zero-filled past k
    const __mmask32 m = (1u << (k - k32)) - 1u;
    __m512bh wv[WR];
    for (int p = 0; p < WR; ++p)
      wv[p] = (__m512bh)_mm512_maskz_loadu_epi16(m, w + (i + p) * k + k32);
    for (int r = 0; r < XR; ++r) {
      const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(m, xb + r * kp + k32);
      for (int p = 0; p < WR; ++p) a[p][r] = _mm512_dpbf16_ps(a[p][r], wv[p], xv);
    }
  }
  for (int p = 0; p < WR; ++p)
    for (int r = 0; r < XR; ++r) y[r * n + i + p] = _mm512_reduce_add_ps(a[p][r]);
}

// The same sums with AVX-512 multiply-adds, for many x rows: vdpbf16ps issues every second
// cycle where two FMA ports take two multiply-adds a cycle, so past a few rows the FMAs win.
// A 32-column chunk of a bf16 weight row splits into its odd columns (the high halves of its
// 32-bit words, masked) and its even columns (shifted up): one instruction per 16 weights.
// The inputs come split the same way (PairsInput). A product of two bf16 values is exact in
// f32, so fma(w, x, acc) rounds exactly as vdpbf16ps's "acc += w * x" does, odd column first;
// with MXCSR's flush-to-zero and denormals-are-zero set, as the instruction has them, the sums
// are bit for bit those of pairs_block (tested).
template <int WR, int XR>
__attribute__((target("avx512bw,avx512f,avx2,fma"))) inline void pairs_fma_chunk(
    const __m512i* v, const float* xs, int64_t kp, int64_t j, __m512 (&a)[WR][XR]) {
  const __m512i high = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  __m512 odd[WR], even[WR];
  for (int p = 0; p < WR; ++p) {
    odd[p] = _mm512_castsi512_ps(_mm512_and_si512(v[p], high));
    even[p] = _mm512_castsi512_ps(_mm512_slli_epi32(v[p], 16));
  }
  for (int r = 0; r < XR; ++r) {
    const __m512 xo = _mm512_loadu_ps(xs + r * kp + j), xe = _mm512_loadu_ps(xs + r * kp + j + 16);
    for (int p = 0; p < WR; ++p) {
      a[p][r] = _mm512_fmadd_ps(odd[p], xo, a[p][r]);
      a[p][r] = _mm512_fmadd_ps(even[p], xe, a[p][r]);
    }
  }
}

template <int WR, int XR>
__attribute__((target("avx512bw,avx512f,avx2,fma"))) inline void pairs_fma_block(
    const uint16_t* w, int64_t i, int64_t n, int64_t k, const float* xs, int64_t kp, float* y) {
  __m512 a[WR][XR];
  for (int p = 0; p < WR; ++p)
    for (int r = 0; r < XR; ++r) a[p][r] = _mm512_setzero_ps();
  const int64_t k32 = k / 32 * 32;
  for (int64_t j = 0; j < k32; j += 32) {
    __m512i v[WR];
    for (int p = 0; p < WR; ++p) {
      prefetch_ahead(w + (i + p) * k + j, 64);
      v[p] = _mm512_loadu_si512(w + (i + p) * k + j);
    }
    pairs_fma_chunk<WR, XR>(v, xs, kp, j, a);
  }
  if (k32 < k) {
    const __mmask32 m = (1u << (k - k32)) - 1u;
    __m512i v[WR];
    for (int p = 0; p < WR; ++p) v[p] = _mm512_maskz_loadu_epi16(m, w + (i + p) * k + k32);
    pairs_fma_chunk<WR, XR>(v, xs, kp, k32, a);
  }
  for (int p = 0; p < WR; ++p)
    for (int r = 0; r < XR; ++r) y[r * n + i + p] = _mm512_reduce_add_ps(a[p][r]);
}

// Weight rows [i0, i1) against XR x rows with the pair instruction: blocks of 4 weight rows,
// then one row at a time.
template <int XR>
__attribute__((target("avx512bf16,avx512bw,avx512f,avx2,fma"))) void pairs_group(
    const uint16_t* w, int64_t i0, int64_t i1, int64_t n, int64_t k, const PairsInput& in,
    float* y) {
  int64_t i = i0;
  for (; i + 4 <= i1; i += 4) pairs_block<4, XR>(w, i, n, k, in.bf16, in.kp, y);
  for (; i < i1; ++i) pairs_block<1, XR>(w, i, n, k, in.bf16, in.kp, y);
}

// WR weight rows against every x row in groups of 4 (the weight rows stay in L1 from one
// group to the next; 4 x 4 accumulators load each x vector once for 4 weight rows, which keeps
// the inputs of a wide matrix, read from L2, off the critical path).
template <int WR>
__attribute__((target("avx512bw,avx512f,avx2,fma"))) void pairs_fma_rows(
    const uint16_t* w, int64_t i, int64_t n, int64_t k, const PairsInput& in, int rows, float* y) {
  for (int r0 = 0; r0 < rows; r0 += 4) {
    const float* xs = in.split + r0 * in.kp;
    float* yg = y + r0 * n;
    switch (std::min(4, rows - r0)) {
      case 4:
        pairs_fma_block<WR, 4>(w, i, n, k, xs, in.kp, yg);
        break;
      case 3:
        pairs_fma_block<WR, 3>(w, i, n, k, xs, in.kp, yg);
        break;
      case 2:
        pairs_fma_block<WR, 2>(w, i, n, k, xs, in.kp, yg);
        break;
      default:
        pairs_fma_block<WR, 1>(w, i, n, k, xs, in.kp, yg);
        break;
    }
  }
}

// Up to kMaxPairInstructionRows x rows the pair instruction is cheaper per weight (no split);
// beyond, its FMA form is faster (the same sums).
__attribute__((target("avx512bf16,avx512bw,avx512f,avx2,fma"))) void pairs_rows_avx512(
    const uint16_t* w, int64_t i0, int64_t i1, int64_t n, int64_t k, const PairsInput& in, int rows,
    float* y) {
  if (rows <= kMaxPairInstructionRows) {
    if (rows == 2) return pairs_group<2>(w, i0, i1, n, k, in, y);
    return pairs_group<1>(w, i0, i1, n, k, in, y);
  }
  const FlushDenormals flush;
  int64_t i = i0;
  for (; i + 4 <= i1; i += 4) pairs_fma_rows<4>(w, i, n, k, in, rows, y);
  for (; i < i1; ++i) pairs_fma_rows<1>(w, i, n, k, in, rows, y);
}

#else
// Other CPUs (e.g. ARM hosts of a CUDA build) take the portable loop.
template <typename W, typename Convert>
void rows_avx2(const W* w, int64_t i0, int64_t i1, int64_t n, int64_t k, const float* x, int rows,
               float* y, Convert convert) {
  rows_portable(w, i0, i1, n, k, x, rows, y, convert);
}
void int8_rows_avx2(const int8_t* w, const float* scales, int64_t wb, int64_t i0, int64_t i1,
                    int64_t n, int64_t k, const float* x, int rows, float* y) {
  int8_rows_portable(w, scales, wb, i0, i1, n, k, x, rows, y);
}
#endif

// Output rows [i0, i1) of one target with the loops `kernels` names (cpu_kernels resolved).
void target_rows(const GemvTarget& t, const PairsInput* xb, int64_t i0, int64_t i1, int64_t k,
                 int rows, CpuKernels kernels) {
  const bool avx2 = kernels != CpuKernels::kPortable;
  switch (t.kind) {
    case GemvWeights::kBf16Pairs: {
      const auto* w = static_cast<const uint16_t*>(t.w);
#ifdef DAPX_X86
      if (kernels == CpuKernels::kAvx512 && cpu_has_avx512_bf16())
        return pairs_rows_avx512(w, i0, i1, t.n, k, *xb, rows, t.y);
#endif
      return pairs_rows_portable(w, i0, i1, t.n, k, *xb, rows, t.y);
    }
    case GemvWeights::kBf16: {
      const auto* w = static_cast<const uint16_t*>(t.w);
#ifdef DAPX_X86
      if (kernels == CpuKernels::kAvx512)
        return rows_avx512(w, i0, i1, t.n, k, t.x, rows, t.y, bf16_to_f32);
#endif
      if (avx2)
        rows_avx2(w, i0, i1, t.n, k, t.x, rows, t.y, bf16_to_f32);
      else
        rows_portable(w, i0, i1, t.n, k, t.x, rows, t.y, bf16_to_f32);
      return;
    }
    case GemvWeights::kF32: {
      const auto* w = static_cast<const float*>(t.w);
#ifdef DAPX_X86
      if (kernels == CpuKernels::kAvx512)
        return rows_avx512(w, i0, i1, t.n, k, t.x, rows, t.y, same);
#endif
      if (avx2)
        rows_avx2(w, i0, i1, t.n, k, t.x, rows, t.y, same);
      else
        rows_portable(w, i0, i1, t.n, k, t.x, rows, t.y, same);
      return;
    }
    case GemvWeights::kInt8: {
      const auto* w = static_cast<const int8_t*>(t.w);
#ifdef DAPX_X86
      if (kernels == CpuKernels::kAvx512 && cpu_has_avx512_vnni())
        return int8_rows_vnni(w, t.scales, t.block, i0, i1, t.n, k, t.x, rows, t.y);
#endif
      if (avx2)
        int8_rows_avx2(w, t.scales, t.block, i0, i1, t.n, k, t.x, rows, t.y);
      else
        int8_rows_portable(w, t.scales, t.block, i0, i1, t.n, k, t.x, rows, t.y);
      return;
    }
  }
}

// Below this many multiply-adds a fork/join costs more than it saves.
constexpr int64_t kMinParallelWork = 1 << 15;

}  // namespace

bool gemv_uses_avx2() { return cpu_has_avx2(); }

void gemv_batch(const GemvTarget* targets, int count, int64_t k, int rows, CpuKernels want) {
  int64_t total = 0;
  for (int m = 0; m < count; ++m) total += targets[m].n;
  const CpuKernels kernels = cpu_kernels(want);
  // The pair-product targets' inputs rounded to bf16, once per distinct x.
  // (Buffers kept per calling thread: a step's hundred products reuse one.)
  thread_local std::vector<std::vector<float>> storage;
  std::vector<std::unique_ptr<PairsInput>> inputs;
  std::vector<const PairsInput*> xb(count, nullptr);
  for (int m = 0; m < count; ++m) {
    if (targets[m].kind != GemvWeights::kBf16Pairs) continue;
    for (int e = 0; e < m && !xb[m]; ++e)
      if (xb[e] && targets[e].x == targets[m].x) xb[m] = xb[e];
    if (xb[m]) continue;
    if (storage.size() <= inputs.size()) storage.resize(inputs.size() + 1);
    xb[m] = inputs
                .emplace_back(
                    std::make_unique<PairsInput>(targets[m].x, rows, k, storage[inputs.size()]))
                .get();
  }
#pragma omp parallel if (total * k * rows >= kMinParallelWork)
  {
    int tid = 0, threads = 1;
#ifdef _OPENMP
    tid = omp_get_thread_num();
    threads = omp_get_num_threads();
#endif
    // This thread's contiguous share of the concatenated output rows.
    const int64_t first = total * tid / threads, last = total * (tid + 1) / threads;
    int64_t base = 0;
    for (int m = 0; m < count; ++m) {
      const int64_t lo = std::max(first, base), hi = std::min(last, base + targets[m].n);
      if (lo < hi) target_rows(targets[m], xb[m], lo - base, hi - base, k, rows, kernels);
      base += targets[m].n;
    }
  }
}

void gemv_bf16(const uint16_t* w, int64_t n, int64_t k, const float* x, int rows, float* y) {
  const GemvTarget t{w, GemvWeights::kBf16, n, x, y};
  gemv_batch(&t, 1, k, rows);
}

void gemv_f32(const float* w, int64_t n, int64_t k, const float* x, int rows, float* y) {
  const GemvTarget t{w, GemvWeights::kF32, n, x, y};
  gemv_batch(&t, 1, k, rows);
}

void gemv_int8(const int8_t* w, const float* scales, int64_t n, int64_t k, const float* x, int rows,
               float* y) {
  const GemvTarget t{w, GemvWeights::kInt8, n, x, y, scales};
  gemv_batch(&t, 1, k, rows);
}

}  // namespace dapx
