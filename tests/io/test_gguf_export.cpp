// HF model -> GGUF file (write_gguf_model) -> weights read back (gguf_weight_store): every
// weight comes back under its HF name, exactly for F32/BF16 files, within F16 rounding and
// within half a Q8_0 step; the config comes back equal (llama3 RoPE scaling included); a
// `llama` file holds q/k rows in llama.cpp's order and they come back in HF order.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "io/gguf.h"
#include "io/gguf_export.h"
#include "io/gguf_model.h"
#include "io/gguf_weights.h"
#include "io/random_model.h"
#include "temp_dir.h"
#include "util/bf16.h"
#include "util/error.h"
#include "util/int8_rows.h"

namespace dapx {
namespace {

using test::TempDir;

float at(const TensorView& v, int64_t i) {
  uint16_t h;
  switch (v.dtype) {
    case DType::F32: {
      float f;
      std::memcpy(&f, v.data + 4 * i, 4);
      return f;
    }
    case DType::BF16:
      std::memcpy(&h, v.data + 2 * i, 2);
      return bf16_to_f32(h);
    case DType::F16:
      std::memcpy(&h, v.data + 2 * i, 2);
      return f16_to_float(h);
  }
  return NAN;
}

// Q4_K's super-blocks are 256 wide: a Q4_K case gets rows of 256.
ModelConfig tiny_config(Arch arch, bool wide = false) {
  ModelShape shape = shape_preset("tiny", arch);
  shape.vocab = 512;
  if (wide) shape.hidden = shape.intermediate = 256, shape.head_dim = 64;
  ModelConfig cfg = make_config(arch, shape);
  cfg.bos_token_id = 1;
  cfg.eos_token_ids = {2};
  return cfg;
}

// How far Q4_K may move element i: half its sub-block's step, plus what storing the steps and
// mins as 6-bit multiples of the super-block's f16 factors costs (up to 15 levels of a step
// rounded by max_step / 126, and a min rounded by max_min / 126).
float q4_k_bound(const TensorView& a, int64_t i) {
  const int64_t super = i / 256 * 256;
  float max_step = 0.0f, max_min = 0.0f, step = 0.0f;
  for (int64_t j = super; j < super + 256; j += 32) {
    float lo = 0.0f, hi = -INFINITY;
    for (int64_t k = j; k < j + 32; ++k) lo = std::min(lo, at(a, k)), hi = std::max(hi, at(a, k));
    const float s = (hi - lo) / 15.0f;
    if (i >= j && i < j + 32) step = s;
    max_step = std::max(max_step, s);
    max_min = std::max(max_min, -lo);
  }
  return 0.5f * step + 16.0f * max_step / 126.0f * 1.01f + max_min / 126.0f * 1.01f + 1e-6f;
}

struct Case {
  Arch arch;
  GgmlType type;
};

class GgufExport : public ::testing::TestWithParam<Case> {};

TEST_P(GgufExport, WeightsAndConfigComeBack) {
  const Case c = GetParam();
  test::TempDir dir;
  const ModelConfig cfg = tiny_config(c.arch, c.type == GgmlType::Q4_K);
  write_random_model(dir / "hf", cfg, 11, DType::BF16, "{}", "raw");
  const WeightStore hf = WeightStore::open(dir / "hf");
  write_gguf_model(hf, cfg, "tiny", {}, dir / "m.gguf", c.type);

  std::shared_ptr<const GgufFile> file = GgufFile::open(dir / "m.gguf");
  ModelConfig back = gguf_model_config(*file);
  back.torch_dtype = cfg.torch_dtype;  // from the embedding's type
  EXPECT_EQ(back.bos_token_id, -1);    // no tokenizer keys were written
  back.bos_token_id = cfg.bos_token_id;
  back.eos_token_ids = cfg.eos_token_ids;
  // llama3 scaling is stored as its per-dimension factors (rope_freqs.weight): the parameters
  // read back may be another set that gives the same factors.
  ASSERT_EQ(back.rope_scaling.has_value(), cfg.rope_scaling.has_value());
  if (cfg.rope_scaling) {
    const auto factors = [&](const RopeScaling& r) {
      return llama3_rope_factors(cfg.head_dim, cfg.rope_theta, r.factor, r.low_freq_factor,
                                 r.high_freq_factor, r.original_max_position_embeddings);
    };
    const std::vector<double> want = factors(*cfg.rope_scaling), got = factors(*back.rope_scaling);
    ASSERT_EQ(want.size(), got.size());
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-9 * want[i]) << i;
    back.rope_scaling = cfg.rope_scaling;
  }
  EXPECT_TRUE(back == cfg) << back.to_json().dump() << "\n" << cfg.to_json().dump();

  // Matrices in the requested type, vectors in F32.
  const GgufTensor& q = file->get("blk.0.attn_q.weight");
  EXPECT_EQ(q.type, c.type);
  EXPECT_EQ(file->get("blk.0.attn_norm.weight").type, GgmlType::F32);

  const WeightStore read = gguf_weight_store(file, back, DType::F32);
  for (const std::string& name : hf.names()) {
    SCOPED_TRACE(name);
    const TensorView& a = hf.get(name);
    const TensorView& b = read.get(name);
    ASSERT_EQ(a.shape, b.shape);
    const bool matrix = a.shape.size() == 2;
    const int64_t cols = a.shape.back();
    int64_t worst = -1;
    for (int64_t i = 0; i < a.numel() && worst < 0; ++i) {
      const float x = at(a, i), y = at(b, i);
      float bound = 0.0f;  // F32 and BF16 files hold bf16 weights exactly
      if (matrix && c.type == GgmlType::F16) bound = std::fabs(x) * 0x1p-11f + 0x1p-24f;
      if (matrix && c.type == GgmlType::Q8_0) {  // half a step of the element's block
        const int64_t block = i / 32 * 32;
        float amax = 0.0f;
        for (int64_t k = block; k < block + 32 && k / cols == i / cols; ++k)
          amax = std::max(amax, std::fabs(at(a, k)));
        // rounding to the step d = amax / 127 (d / 2), plus d itself stored as f16 (up to
        // 127 steps times its relative rounding, 2^-11)
        bound = amax / 127.0f * (0.5f + 127.0f * 0x1p-11f) * 1.001f + 1e-7f;
      }
      if (matrix && c.type == GgmlType::Q4_K) bound = q4_k_bound(a, i);
      if (!(std::fabs(x - y) <= bound)) worst = i;
    }
    EXPECT_EQ(worst, -1) << "element " << worst << ": " << at(a, std::max<int64_t>(worst, 0))
                         << " came back as " << at(b, std::max<int64_t>(worst, 0));
  }
  if (cfg.tie_word_embeddings) {
    EXPECT_FALSE(read.has("lm_head.weight"));
    EXPECT_EQ(file->find("output.weight"), nullptr);
  }
  // llama.cpp's row order in a llama file: its row 1 is HF row head_dim / 2 of head 0.
  if (c.arch == Arch::Llama && c.type == GgmlType::F32) {
    const TensorView& hq = hf.get("model.layers.0.self_attn.q_proj.weight");
    const int64_t hd = cfg.head_dim;
    std::vector<float> row1(q.data ? static_cast<size_t>(q.row_length()) : 0);
    std::memcpy(row1.data(), q.data + q.row_length() * 4, row1.size() * 4);
    for (int64_t k = 0; k < q.row_length(); ++k)
      ASSERT_EQ(row1[static_cast<size_t>(k)], at(hq, hd / 2 * q.row_length() + k)) << k;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Arrangements, GgufExport,
    ::testing::Values(Case{Arch::Qwen2, GgmlType::F32}, Case{Arch::Qwen2, GgmlType::BF16},
                      Case{Arch::Qwen2, GgmlType::F16}, Case{Arch::Qwen2, GgmlType::Q8_0},
                      Case{Arch::Qwen3, GgmlType::BF16}, Case{Arch::Qwen3, GgmlType::Q8_0},
                      Case{Arch::Llama, GgmlType::F32}, Case{Arch::Llama, GgmlType::BF16},
                      Case{Arch::Llama, GgmlType::Q8_0}, Case{Arch::Qwen2, GgmlType::Q4_K},
                      Case{Arch::Llama, GgmlType::Q4_K}),
    [](const ::testing::TestParamInfo<Case>& i) {
      const char* arch = i.param.arch == Arch::Qwen2   ? "qwen2"
                         : i.param.arch == Arch::Qwen3 ? "qwen3"
                                                       : "llama";
      return std::string(arch) + "_" + ggml_type_name(i.param.type);
    });

// A tensor that is not part of the architecture is named in the error.
TEST(GgufWeights, UnknownTensorIsNamed) {
  test::TempDir dir;
  const ModelConfig cfg = tiny_config(Arch::Qwen2);
  write_random_model(dir / "hf", cfg, 3, DType::BF16, "{}", "raw");
  const WeightStore hf = WeightStore::open(dir / "hf");
  write_gguf_model(hf, cfg, "tiny", {}, dir / "m.gguf", GgmlType::F32);
  std::shared_ptr<const GgufFile> file = GgufFile::open(dir / "m.gguf");
  // The same file with one extra tensor.
  GgufMetadataList meta = file->metadata().entries();
  std::vector<GgufTensorData> tensors;
  for (const GgufTensor& t : file->tensors())
    tensors.push_back({t.name, t.type, t.shape, std::vector<std::byte>(t.data, t.data + t.nbytes)});
  tensors.push_back({"blk.0.mystery.weight", GgmlType::F32, {4}, std::vector<std::byte>(16)});
  write_gguf(dir / "extra.gguf", meta, tensors);
  std::shared_ptr<const GgufFile> extra = GgufFile::open(dir / "extra.gguf");
  try {
    gguf_weight_store(extra, cfg, DType::BF16);
    FAIL() << "an unknown tensor was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'blk.0.mystery.weight'"), std::string::npos)
        << e.what();
  }
}

// --weights int8 from a GGUF file: the matrices the int8 GEMV reads come as int8 at once. Q8_0
// keeps its own values and scales per 32 columns; Q4_K rows are what Linear would make of the
// dequantised bf16 matrix (dapx's int8 rows, scales per 64 columns), byte for byte, without that
// matrix being held. For the llama arrangement too (q/k rows back in HF order).
TEST(GgufWeights, Int8MatricesAreTheFilesOwnOrLinearsQuantisation) {
  for (const Arch arch : {Arch::Qwen2, Arch::Llama})
    for (const GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_K}) {
      SCOPED_TRACE(ggml_type_name(type));
      test::TempDir dir;
      const ModelConfig cfg = tiny_config(arch, true);
      write_random_model(dir / "hf", cfg, 5, DType::BF16, "{}", "raw");
      write_gguf_model(WeightStore::open(dir / "hf"), cfg, "tiny", {}, dir / "m.gguf", type);
      std::shared_ptr<const GgufFile> file = GgufFile::open(dir / "m.gguf");
      const ModelConfig back = gguf_model_config(*file);
      // Q8_0 against its exact (f32) values; Q4_K against the bf16 matrix Linear would get
      const WeightStore plain =
          gguf_weight_store(file, back, type == GgmlType::Q8_0 ? DType::F32 : DType::BF16, false);
      const WeightStore int8 = gguf_weight_store(file, back, DType::BF16, true);
      EXPECT_TRUE(plain.int8_matrices().empty());
      int checked = 0;
      for (const auto& [name, m] : int8.int8_matrices()) {
        SCOPED_TRACE(name);
        if (name != "lm_head.weight") {
          EXPECT_THROW(int8.get(name), Error);  // no dequantised copy held
        }
        const TensorView& v = plain.get(
            name == "lm_head.weight" && !plain.has(name) ? "model.embed_tokens.weight" : name);
        const int64_t rows = m.shape[0], cols = m.shape[1];
        ASSERT_EQ(m.block, type == GgmlType::Q8_0 ? 32 : 64);
        const int64_t blocks = (cols + m.block - 1) / m.block;
        std::vector<float> w(static_cast<size_t>(rows * cols));
        for (int64_t i = 0; i < rows * cols; ++i) w[i] = at(v, i);
        if (type == GgmlType::Q8_0) {  // the values the file holds, exactly
          for (int64_t i = 0; i < rows * cols; ++i)
            ASSERT_EQ(float(m.q[i]) * m.scales[(i / cols) * blocks + (i % cols) / 32], w[i]) << i;
        } else {  // what Linear makes of the dequantised bf16 matrix
          std::vector<int8_t> q(w.size());
          std::vector<float> sc(static_cast<size_t>(rows * blocks));
          quantize_int8_rows(w.data(), rows, cols, 64, q.data(), sc.data());
          ASSERT_EQ(std::memcmp(q.data(), m.q, q.size()), 0);
          ASSERT_EQ(std::memcmp(sc.data(), m.scales, sc.size() * sizeof(float)), 0);
        }
        ++checked;
      }
      // the seven projections of each layer and the LM head (here the tied embedding)
      EXPECT_EQ(checked, 7 * cfg.num_layers + 1);
    }
}

}  // namespace
}  // namespace dapx

namespace dapx {
namespace {

// The Q4_K quantiser against its bound on random rows of several ranges, and a row whose
// length is not a multiple of 256 refused.
TEST(GgufQ4K, QuantiseThenDecodeStaysWithinTheBound) {
  std::vector<float> x(1024);
  uint64_t state = 7;
  for (size_t i = 0; i < x.size(); ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const float u = static_cast<float>(state >> 40) / static_cast<float>(1 << 24) - 0.5f;
    x[i] = u * (i < 256 ? 0.02f : i < 512 ? 3.0f : 1.0f) + (i >= 768 ? 0.7f : 0.0f);  // all > 0
  }
  const std::vector<std::byte> q = quantize_q4_k(x.data(), 1024);
  ASSERT_EQ(q.size(), 4u * 144u);
  std::vector<float> y(1024);
  dequantize_row(GgmlType::Q4_K, q.data(), y.data(), 1024);
  TensorView v;
  v.dtype = DType::F32;
  v.shape = {1024};
  v.data = reinterpret_cast<const std::byte*>(x.data());
  v.nbytes = 4096;
  double err = 0.0, range = 0.0;
  for (int64_t i = 0; i < 1024; ++i) {
    ASSERT_LE(std::fabs(x[i] - y[i]), q4_k_bound(v, i)) << i;
    err = std::max(err, static_cast<double>(std::fabs(x[i] - y[i])));
  }
  for (int64_t i = 256; i < 512; ++i) range = std::max(range, static_cast<double>(std::fabs(x[i])));
  EXPECT_LT(err, 0.1 * range);  // 4 bits: a few percent of the range
  EXPECT_THROW(quantize_q4_k(x.data(), 1000), Error);
}

}  // namespace
}  // namespace dapx
