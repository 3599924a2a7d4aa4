// GEMV kernels against double-precision loops: bf16, f32 and int8 weights, odd sizes (tails of the
// 64-, 32-, 16- and 8-wide vector loops), several input rows, and batches of matrices that share
// one parallel region (each with its own input), split over 1 to 7 threads; AVX-512 (VNNI for
// int8), AVX2 and portable loops where the CPU has them.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "io/safetensors.h"
#include "kernel_levels.h"
#include "model/gemv.h"

namespace dapx {
namespace {

struct Matrix {
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
};

Matrix random_matrix(int64_t n, int64_t k, std::mt19937& rng) {
  std::normal_distribution<float> nd;
  Matrix m;
  for (int64_t i = 0; i < n * k; ++i) {
    m.f32.push_back(nd(rng));
    m.bf16.push_back(float_to_bf16(m.f32.back()));
  }
  return m;
}

std::vector<float> random_vector(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd;
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// y[r][i] = sum_j W[i][j] x[r][j] in double, W as the kernel sees it (bf16 rounded or not).
double expected(const Matrix& m, bool bf16, int64_t k, const std::vector<float>& x, int r,
                int64_t i) {
  double e = 0;
  for (int64_t j = 0; j < k; ++j) {
    const double w = bf16 ? bf16_to_float(m.bf16[i * k + j]) : m.f32[i * k + j];
    e += w * x[r * k + j];
  }
  return e;
}

// What the kernel tests run on CPUs without AVX-512 (or without AVX2): the levels the CPU has,
// each once under its own name; the others left out, saying which feature is missing.
TEST(KernelLevels, ALevelTheCpuLacksIsLeftOutNotRunAsANarrowerOne) {
  const auto all = {CpuKernels::kAvx512, CpuKernels::kAvx2, CpuKernels::kPortable};
  using test::Avx512Needs;
  const test::LevelPlan avx2_only = test::plan_levels(all, Avx512Needs::kF, {true, false, false});
  EXPECT_EQ(avx2_only.run, (std::vector<CpuKernels>{CpuKernels::kAvx2, CpuKernels::kPortable}));
  EXPECT_EQ(avx2_only.ran, "avx2, portable");
  EXPECT_EQ(avx2_only.left_out, "avx512 (no AVX-512F on this CPU)");
  const test::LevelPlan no_vnni = test::plan_levels(all, Avx512Needs::kVnni, {true, true, false});
  EXPECT_EQ(no_vnni.ran, "avx2, portable");
  EXPECT_EQ(no_vnni.left_out, "avx512 (no AVX-512 VNNI + BW on this CPU)");
  const test::LevelPlan plain = test::plan_levels(all, Avx512Needs::kF, {false, false, false});
  EXPECT_EQ(plain.ran, "portable");
  EXPECT_EQ(plain.left_out, "avx512 (no AVX2 + FMA on this CPU), avx2 (no AVX2 + FMA on this CPU)");
  const test::LevelPlan every = test::plan_levels(all, Avx512Needs::kVnni, {true, true, true});
  EXPECT_EQ(every.ran, "avx512, avx2, portable");
  EXPECT_EQ(every.left_out, "");
  // The best level is named by what it is, and not run twice.
  const test::LevelPlan best =
      test::plan_levels({CpuKernels::kBest, CpuKernels::kAvx2, CpuKernels::kPortable},
                        Avx512Needs::kF, {true, false, false});
  EXPECT_EQ(best.ran, "avx2, portable");
}

TEST(Gemv, MatchesNaiveLoopsForBf16AndF32) {
  const std::vector<CpuKernels> levels =
      test::kernel_levels({CpuKernels::kAvx512, CpuKernels::kAvx2, CpuKernels::kPortable});
  std::mt19937 rng(3);
  for (int64_t n : {1, 5, 33}) {
    for (int64_t k : {1, 7, 8, 17, 61, 100, 256}) {  // tails of the 64-, 32-, 16- and 8-wide steps
      for (int rows : {1, 3, kMaxGemvRows}) {
        const Matrix m = random_matrix(n, k, rng);
        const std::vector<float> x = random_vector(rows * k, rng);
        for (CpuKernels kernels : levels) {
          std::vector<float> y32(rows * n), y16(rows * n);
          const GemvTarget t32{m.f32.data(), GemvWeights::kF32, n, x.data(), y32.data()};
          const GemvTarget t16{m.bf16.data(), GemvWeights::kBf16, n, x.data(), y16.data()};
          gemv_batch(&t32, 1, k, rows, kernels);
          gemv_batch(&t16, 1, k, rows, kernels);
          const double tol = 1e-4 * (1 + std::sqrt(double(k)));
          for (int r = 0; r < rows; ++r)
            for (int64_t i = 0; i < n; ++i) {
              EXPECT_NEAR(y32[r * n + i], expected(m, false, k, x, r, i), tol)
                  << "n " << n << " k " << k << " kernels " << test::level_name(kernels);
              EXPECT_NEAR(y16[r * n + i], expected(m, true, k, x, r, i), tol)
                  << "n " << n << " k " << k << " kernels " << test::level_name(kernels);
            }
        }
      }
    }
  }
}

// int8 weights with one scale per row and block of 64 columns, times the input quantised the
// same way: against the dequantised product in double (with the input quantised as the kernel
// does, and within the quantisation's bound of the exact input), for widths below one block,
// at and across block edges, with vector tails.
// Weight scales per 64 columns (dapx's own int8) and per 32 (a GGUF Q8_0 matrix kept as it is,
// two weight blocks to each block of x).
TEST(Gemv, Int8MatchesDequantizedLoops) {
  const std::vector<CpuKernels> levels = test::kernel_levels(
      {CpuKernels::kAvx512, CpuKernels::kAvx2, CpuKernels::kPortable}, test::Avx512Needs::kVnni);
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> qd(-127, 127);
  std::uniform_real_distribution<float> sd(0.001f, 0.05f);
  for (int64_t wb : {kInt8Block, int64_t{32}})
    for (int64_t n : {1, 5, 33})
      for (int64_t k : {1, 7, 8, 31, 32, 33, 61, 64, 65, 96, 200, 256})
        for (int rows : {1, 3, kMaxGemvRows}) {
          const int64_t blocks = int8_blocks(k), wblocks = (k + wb - 1) / wb;
          std::vector<int8_t> q(n * k);
          std::vector<float> scales(n * wblocks);
          for (auto& v : q) v = static_cast<int8_t>(qd(rng));
          for (auto& v : scales) v = sd(rng);
          const std::vector<float> x = random_vector(rows * k, rng);
          for (CpuKernels kernels : levels) {
            std::vector<float> y(rows * n, -1.f);
            const GemvTarget t{q.data(), GemvWeights::kInt8, n, x.data(),
                               y.data(), scales.data(),      wb};
            gemv_batch(&t, 1, k, rows, kernels);
            for (int r = 0; r < rows; ++r) {
              // the input as the kernel uses it: int8 per block of 64, scale max |x| / 127
              std::vector<double> xq(k), half_step(blocks);
              for (int64_t b = 0; b < blocks; ++b) {
                const int64_t j0 = b * kInt8Block, j1 = std::min(k, j0 + kInt8Block);
                float amax = 0.f;
                for (int64_t j = j0; j < j1; ++j) amax = std::max(amax, std::abs(x[r * k + j]));
                const float sx = amax / 127.f, inv = 1.f / sx;
                half_step[b] = sx / 2.0;
                for (int64_t j = j0; j < j1; ++j)
                  xq[j] = std::round(x[r * k + j] * inv) * double(sx);
              }
              for (int64_t i = 0; i < n; ++i) {
                double e = 0, exact = 0, bound = 1e-4;
                for (int64_t j = 0; j < k; ++j) {
                  const double wj = double(q[i * k + j]) * scales[i * wblocks + j / wb];
                  e += wj * xq[j];
                  exact += wj * x[r * k + j];
                  bound += std::abs(wj) * half_step[j / kInt8Block];
                }
                ASSERT_NEAR(y[r * n + i], e, 1e-4 * (1 + std::sqrt(double(k))))
                    << "block " << wb << " n " << n << " k " << k << " rows " << rows << " kernels "
                    << test::level_name(kernels);
                // quantising x moves each x[j] by at most half a step of its block
                EXPECT_NEAR(y[r * n + i], exact, bound);
              }
            }
          }
        }
}

// Batched decode's promise at the kernel: row r of a many-row product is the one-row product of
// x[r] bit for bit (rows share widened weights, never sums), for every weight kind and kernel
// level, up to 16 rows (groups of 4 and 2 plus their remainders). For bf16 pairs a row alone
// runs the pair instruction and three or more rows its FMA form: this checks the two agree.
TEST(Gemv, EachRowOfABatchEqualsItsRowAloneBitForBit) {
  const std::vector<CpuKernels> levels =
      test::kernel_levels({CpuKernels::kAvx512, CpuKernels::kAvx2, CpuKernels::kPortable});
  std::mt19937 rng(17);
  std::uniform_int_distribution<int> qd(-127, 127);
  for (int64_t k : {7, 61, 200, 896}) {
    const int64_t n = 37, blocks = int8_blocks(k);
    const Matrix m = random_matrix(n, k, rng);
    std::vector<int8_t> q(n * k);
    std::vector<float> scales(n * blocks, 0.01f);
    for (auto& v : q) v = static_cast<int8_t>(qd(rng));
    for (int rows : {2, 3, 5, 8, 13, 16}) {
      const std::vector<float> x = random_vector(rows * k, rng);
      for (CpuKernels kernels : levels)
        for (GemvWeights kind :
             {GemvWeights::kBf16, GemvWeights::kF32, GemvWeights::kInt8, GemvWeights::kBf16Pairs}) {
          const bool bf16 = kind == GemvWeights::kBf16 || kind == GemvWeights::kBf16Pairs;
          const void* w = bf16                        ? static_cast<const void*>(m.bf16.data())
                          : kind == GemvWeights::kF32 ? static_cast<const void*>(m.f32.data())
                                                      : static_cast<const void*>(q.data());
          std::vector<float> all(rows * n), one(n);
          const GemvTarget batch{w, kind, n, x.data(), all.data(), scales.data()};
          gemv_batch(&batch, 1, k, rows, kernels);
          for (int r = 0; r < rows; ++r) {
            const GemvTarget alone{w, kind, n, x.data() + r * k, one.data(), scales.data()};
            gemv_batch(&alone, 1, k, 1, kernels);
            for (int64_t i = 0; i < n; ++i)
              ASSERT_EQ(all[r * n + i], one[i])
                  << "k " << k << " rows " << rows << " row " << r << " kind "
                  << static_cast<int>(kind) << " kernels " << test::level_name(kernels);
          }
        }
    }
  }
}

// Pair products: bf16 weights times x rounded to bf16, summed in f32. Against a double sum of
// the same rounded products (bound: f32 accumulation over k terms), and every level against the
// plain loop bit for bit (it adds in the instruction's order; normal values only here).
TEST(Gemv, Bf16PairsMatchRoundedProductsAndEveryLevelAgreesBitForBit) {
  const std::vector<CpuKernels> levels =
      test::kernel_levels({CpuKernels::kAvx512, CpuKernels::kAvx2, CpuKernels::kPortable});
  std::mt19937 rng(23);
  for (int64_t k : {1, 31, 32, 33, 100, 896, 4864}) {
    const int64_t n = 21;
    const Matrix m = random_matrix(n, k, rng);
    for (int rows : {1, 2, 3, 8, 11}) {
      const std::vector<float> x = random_vector(rows * k, rng);
      std::vector<float> plain(rows * n);
      const GemvTarget p{m.bf16.data(), GemvWeights::kBf16Pairs, n, x.data(), plain.data()};
      gemv_batch(&p, 1, k, rows, CpuKernels::kPortable);
      for (int r = 0; r < rows; ++r)
        for (int64_t i = 0; i < n; ++i) {
          double e = 0, mag = 0;
          for (int64_t j = 0; j < k; ++j) {
            const double t = static_cast<double>(bf16_to_float(m.bf16[i * k + j])) *
                             bf16_to_float(float_to_bf16(x[r * k + j]));
            e += t;
            mag += std::abs(t);
          }
          ASSERT_NEAR(plain[r * n + i], e, 1e-6 * mag * std::sqrt(static_cast<double>(k)) + 1e-6)
              << "k " << k << " rows " << rows << " row " << r << " output " << i;
        }
      for (CpuKernels kernels : levels) {
        std::vector<float> y(rows * n, -1.f);
        const GemvTarget t{m.bf16.data(), GemvWeights::kBf16Pairs, n, x.data(), y.data()};
        gemv_batch(&t, 1, k, rows, kernels);
        for (int64_t e = 0; e < rows * n; ++e)
          ASSERT_EQ(y[e], plain[e]) << "k " << k << " rows " << rows << " element " << e
                                    << " kernels " << test::level_name(kernels);
      }
    }
  }
}

TEST(Gemv, BatchOfMatricesWithTheirOwnInputsMatchesEachAlone) {
  const std::vector<CpuKernels> levels =
      test::kernel_levels({CpuKernels::kAvx512, CpuKernels::kAvx2, CpuKernels::kPortable});
  std::mt19937 rng(5);
  const int64_t k = 200;  // large enough work to run in parallel; odd row counts split unevenly
  const std::vector<int64_t> ns = {129, 3, 1000, 17};
  const int rows = 2;
  std::vector<Matrix> mats;
  std::vector<std::vector<float>> xs, ys;
  std::vector<GemvTarget> targets;
  for (size_t m = 0; m < ns.size(); ++m) {
    mats.push_back(random_matrix(ns[m], k, rng));
    xs.push_back(random_vector(rows * k, rng));
    ys.emplace_back(rows * ns[m], -1.f);
  }
  for (size_t m = 0; m < ns.size(); ++m) {
    const bool bf16 = m % 2 == 0;  // a batch may mix weight dtypes
    targets.push_back({bf16 ? static_cast<const void*>(mats[m].bf16.data())
                            : static_cast<const void*>(mats[m].f32.data()),
                       bf16 ? GemvWeights::kBf16 : GemvWeights::kF32, ns[m], xs[m].data(),
                       ys[m].data()});
  }
  const int saved = omp_get_max_threads();
  for (int threads : {1, 3, 7})
    for (CpuKernels kernels : levels) {
      for (auto& y : ys) std::fill(y.begin(), y.end(), -1.f);
      omp_set_num_threads(threads);
      gemv_batch(targets.data(), static_cast<int>(targets.size()), k, rows, kernels);
      for (size_t m = 0; m < ns.size(); ++m)
        for (int r = 0; r < rows; ++r)
          for (int64_t i = 0; i < ns[m]; ++i)
            ASSERT_NEAR(ys[m][r * ns[m] + i], expected(mats[m], m % 2 == 0, k, xs[m], r, i), 2e-3)
                << "matrix " << m << " row " << r << " output " << i << ", " << threads
                << " threads"
                << ", kernels " << test::level_name(kernels);
    }
  omp_set_num_threads(saved);
}

}  // namespace
}  // namespace dapx
