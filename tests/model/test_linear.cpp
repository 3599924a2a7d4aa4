// Linear layers against plain products: int8 quantisation (scales, rounding, the dequantised
// weight), the prefill GEMM that converts bf16 or int8 weights one tile of rows at a time (f32
// and bf16 GEMM, tiles that do not divide the rows), the decode GEMV on int8, and the GEMM
// probe's choices.
#include <gtest/gtest.h>

#include <cmath>

#include "error_message.h"
#include "model/gemm_choice.h"
#include "model/linear.h"
#include "util/error.h"

namespace dapx {
namespace {

TEST(Linear, Int8ScalesAreBlockMaxOver127AndRoundToNearest) {
  // one row, 70 columns: block 0 is columns 0-63, block 1 columns 64-69
  at::Tensor w = at::zeros({2, 70});
  w[0][0] = 1.27f;
  w[0][1] = -0.5f;
  w[0][64] = -2.54f;
  w[0][65] = 0.03f;  // 0.03 / 0.02 = 1.5: rounds to 2 (nearest even of 1.5)
  // row 1 stays zero: scale 1, every value 0
  const Linear lin(w, {}, LinearFormat{true, at::kFloat});
  ASSERT_TRUE(lin.int8());
  EXPECT_EQ(lin.bytes(), 2 * 70 + 2 * 2 * 4);
  const at::Tensor dq = lin.dequantized();
  EXPECT_FLOAT_EQ(dq[0][0].item<float>(), 1.27f);
  EXPECT_NEAR(dq[0][1].item<float>(), -0.5f, 0.01f / 2 + 1e-7);  // 50 steps of 0.01
  EXPECT_FLOAT_EQ(dq[0][64].item<float>(), -2.54f);
  EXPECT_NEAR(dq[0][65].item<float>(), 0.04f, 1e-6);
  EXPECT_EQ(dq[1].abs().max().item<float>(), 0.f);
}

TEST(Linear, Int8ErrorIsAtMostHalfAStepPerBlock) {
  at::manual_seed(4);
  const at::Tensor w = at::randn({37, 200});
  const Linear lin(w, {}, LinearFormat{true, at::kFloat});
  const at::Tensor err = (lin.dequantized() - w).abs();
  for (int64_t b = 0; b * kInt8Block < 200; ++b) {
    const int64_t j0 = b * kInt8Block, n = std::min<int64_t>(kInt8Block, 200 - j0);
    const at::Tensor step = std::get<0>(w.narrow(1, j0, n).abs().max(1)) / 127;  // per row
    EXPECT_TRUE((err.narrow(1, j0, n) <= step.unsqueeze(1) * 0.5001).all().item<bool>())
        << "block " << b;
  }
  EXPECT_THROW(Linear(at::full({2, 3}, NAN), {}, LinearFormat{true, at::kFloat}), Error);
}

// Many rows take the tiled GEMM (weights converted per tile), a few the GEMV; both equal the
// product with the weight as held (bf16-rounded or dequantised), bias included.
TEST(Linear, TiledGemmAndGemvMatchThePlainProduct) {
  at::manual_seed(5);
  // 9000 x 1000: more than one 8 Mi-element tile (8388 rows), so the second tile is partial
  const at::Tensor w = at::randn({9000, 1000}) * 0.05, bias = at::randn({9000});
  const at::Tensor x = at::randn({16, 1000});
  struct Case {
    at::ScalarType dtype;
    bool int8;
    at::ScalarType gemm;
    double tol;  // bf16 GEMM rounds the inputs to 8 significant bits
  };
  for (const Case& c :
       {Case{at::kBFloat16, false, at::kFloat, 1e-4}, Case{at::kBFloat16, true, at::kFloat, 1e-4},
        Case{at::kFloat, true, at::kFloat, 1e-4}, Case{at::kBFloat16, false, at::kBFloat16, 3e-2},
        Case{at::kBFloat16, true, at::kBFloat16, 3e-2}}) {
    const Linear lin(w.to(c.dtype), bias, LinearFormat{c.int8, c.gemm});
    const at::Tensor held = lin.dequantized();
    const at::Tensor want =
        at::addmm(bias.to(at::kDouble), x.to(at::kDouble), held.to(at::kDouble).t());
    for (int64_t rows : {int64_t{16}, int64_t{3}}) {  // GEMM, GEMV
      const at::Tensor got = lin(x.narrow(0, 0, rows));
      const double err = (got.to(at::kDouble) - want.narrow(0, 0, rows)).abs().max().item<double>();
      // The int8 GEMV also quantises x (test_gemv.cpp checks its exact bound): here about
      // 0.04 for these sizes, against 0.47 for the worst case.
      // Where the CPU has AVX512-BF16, a bf16 GEMM's GEMV rounds x to bf16 as the GEMM does.
      const bool pairs = !c.int8 && c.gemm == at::kBFloat16 && cpu_has_avx512_bf16();
      const double gemv_tol = c.int8 ? 0.1 : pairs ? c.tol : 1e-4;
      EXPECT_EQ(lin.gemv_target(nullptr, nullptr).kind == GemvWeights::kBf16Pairs, pairs);
      EXPECT_LT(err, rows > kMaxGemvRows ? c.tol : gemv_tol)
          << c.dtype << (c.int8 ? " int8" : "") << " gemm " << c.gemm << " rows " << rows;
    }
  }
}

TEST(GemmChoice, ParsesForcesAndMeasures) {
  EXPECT_EQ(resolve_gemm(parse_gemm_choice("f32")), at::kFloat);
  EXPECT_EQ(resolve_gemm(parse_gemm_choice("bfloat16")), at::kBFloat16);
  test::expect_error([] { parse_gemm_choice("fp8"); }, {"use auto, bf16 or f32"});
  const GemmProbe& p = probe_cpu_gemm();
  EXPECT_GT(p.f32_gflops, 0);
  EXPECT_GT(p.bf16_gflops, 0);
  EXPECT_EQ(resolve_gemm(GemmChoice::kAuto), p.fastest);
  EXPECT_EQ(p.fastest, p.bf16_gflops > p.f32_gflops ? at::kBFloat16 : at::kFloat);
  EXPECT_EQ(&probe_cpu_gemm(), &p);  // measured once
}

}  // namespace
}  // namespace dapx
