// Per-token vector ops of the decode step against their textbook formulas in double.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "model/activation_rows.h"
#include "model/vector_ops.h"
#include "util/bf16.h"

namespace dapx {
namespace {

std::vector<float> random_vector(int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

TEST(VectorOps, RmsNormMatchesFormulaAndMayRunInPlace) {
  const int64_t n = 37;
  const std::vector<float> x = random_vector(n, 1), w = random_vector(n, 2);
  const float eps = 1e-6f;
  double ms = 0;
  for (float v : x) ms += double(v) * v;
  ms /= n;
  std::vector<float> out(n), in_place = x;
  rms_norm_row(x.data(), w.data(), n, eps, out.data());
  rms_norm_row(in_place.data(), w.data(), n, eps, in_place.data());
  for (int64_t i = 0; i < n; ++i) {
    const double want = x[i] / std::sqrt(ms + eps) * w[i];
    EXPECT_NEAR(out[i], want, 1e-5 * (1 + std::abs(want)));
    EXPECT_EQ(in_place[i], out[i]);
  }
}

TEST(VectorOps, RotateHalfRotatesEachPairOfEveryRow) {
  const int64_t rows = 3, d = 8, half = d / 2;
  const std::vector<float> x = random_vector(rows * d, 3);
  std::vector<float> cos(half), sin(half), y = x;
  for (int64_t i = 0; i < half; ++i) {
    cos[i] = static_cast<float>(std::cos(0.3 * (i + 1)));
    sin[i] = static_cast<float>(std::sin(0.3 * (i + 1)));
  }
  rotate_half_rows(y.data(), rows, d, cos.data(), sin.data());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < half; ++i) {
      const double a = x[r * d + i], b = x[r * d + half + i];
      EXPECT_NEAR(y[r * d + i], a * cos[i] - b * sin[i], 1e-6);
      EXPECT_NEAR(y[r * d + half + i], b * cos[i] + a * sin[i], 1e-6);
      // a rotation keeps the pair's length
      EXPECT_NEAR(std::hypot(y[r * d + i], y[r * d + half + i]), std::hypot(a, b), 1e-5);
    }
}

TEST(VectorOps, AddRow) {
  const int64_t n = 19;
  const std::vector<float> a = random_vector(n, 4), b = random_vector(n, 5);
  std::vector<float> sum = a;
  add_row(sum.data(), b.data(), n);
  for (int64_t i = 0; i < n; ++i) EXPECT_FLOAT_EQ(sum[i], a[i] + b[i]);
}

// The prefill's many-row versions: the same values as the per-row decode ops (f32), rounded
// once to bf16 where they write bf16; the SiLU product (the decode step's too, on one row)
// against its formula in double.
TEST(ActivationRows, RmsNormRowsMatchTheDecodeRowAndRoundOnceToBf16) {
  const int64_t rows = 5, n = 37;
  const std::vector<float> x = random_vector(rows * n, 6), w = random_vector(n, 7);
  std::vector<float> f32(rows * n), want(n);
  std::vector<uint16_t> bf16(rows * n);
  rms_norm_rows(x.data(), w.data(), rows, n, 1e-6f, f32.data());
  rms_norm_rows(x.data(), w.data(), rows, n, 1e-6f, bf16.data());
  for (int64_t r = 0; r < rows; ++r) {
    rms_norm_row(x.data() + r * n, w.data(), n, 1e-6f, want.data());
    double ss = 0;  // and the formula in double, independent of both
    for (int64_t i = 0; i < n; ++i) ss += double(x[r * n + i]) * x[r * n + i];
    const double inv = 1 / std::sqrt(ss / n + 1e-6);
    for (int64_t i = 0; i < n; ++i) {
      const double formula = x[r * n + i] * inv * w[i];
      EXPECT_NEAR(f32[r * n + i], formula, 1e-6 * (1 + std::abs(formula))) << r << " " << i;
      EXPECT_EQ(f32[r * n + i], want[i]);
      EXPECT_EQ(bf16[r * n + i], f32_to_bf16(want[i]));
    }
  }
}

TEST(ActivationRows, SiluMulRowsMatchTheFormulaAcrossBlocksAndTails) {
  const int64_t n = (1 << 14) * 2 + 13;  // three parallel blocks, a tail of 13 past the lanes
  std::vector<float> a = random_vector(n, 8), b = random_vector(n, 9);
  for (int64_t i = 0; i < n; ++i) a[i] *= 4;  // SiLU's both sides and its saturation
  a[0] = -100.f, a[1] = 100.f, a[2] = 0.f, b[0] = b[1] = b[2] = 1.f;
  std::vector<float> f32 = a;
  std::vector<uint16_t> ha(n), hb(n), h16(n);
  for (int64_t i = 0; i < n; ++i) ha[i] = f32_to_bf16(a[i]), hb[i] = f32_to_bf16(b[i]);
  h16 = ha;
  silu_mul_rows(f32.data(), b.data(), n);
  silu_mul_rows(h16.data(), hb.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const double want = a[i] / (1 + std::exp(-double(a[i]))) * b[i];
    ASSERT_NEAR(f32[i], want, 4e-7 * (1 + std::abs(want))) << i;
    // bf16: computed from the bf16 inputs in f32, rounded once (ties may round either way).
    const double a16 = bf16_to_f32(ha[i]), b16 = bf16_to_f32(hb[i]);
    const double want16 = a16 / (1 + std::exp(-a16)) * b16;
    ASSERT_NEAR(bf16_to_f32(h16[i]), want16, std::abs(want16) * 0x1p-8 + 1e-30) << i;
  }
  EXPECT_NEAR(f32[0], 0.f, 1e-30);  // exp(100) overflows: 0, not NaN
  EXPECT_FLOAT_EQ(f32[1], 100.f);
  EXPECT_EQ(f32[2], 0.f);
  std::vector<uint16_t> nan = {f32_to_bf16(NAN), 0, 0, 0, 0, 0, 0, 0}, one(8, f32_to_bf16(1.f));
  silu_mul_rows(nan.data(), one.data(), 8);
  EXPECT_TRUE(std::isnan(bf16_to_f32(nan[0])));
}

}  // namespace
}  // namespace dapx
