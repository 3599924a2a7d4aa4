// The LibTorch engine against the independent naive reference (tests/reference), on tiny
// random models of all four architectures: one-shot prefill, chunked prefill, step-by-step
// decode, greedy continuations, KV compaction and query capture.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

#include "engine/generator.h"
#include "naive_transformer.h"
#include "tiny_models.h"
#include "util/error.h"

namespace dapx {
namespace {

struct Pair {
  std::unique_ptr<LoadedModel> engine;
  std::unique_ptr<reference::NaiveTransformer> ref;
};

Pair load_pair(Arch arch, DType dtype, int64_t chunk = 512) {
  const auto dir = testing::tiny_model(arch, dtype);
  ComputeOptions opts;
  opts.weight_dtype = dtype == DType::F32 ? at::kFloat : at::kBFloat16;
  opts.prefill_chunk = chunk;
  // f32 products on bf16 weights match the reference to f32 rounding; a CPU with fast bf16
  // GEMM would pick bf16 products under auto (Bf16GemmPrefillStaysWithinBf16Tolerance).
  opts.gemm = GemmChoice::kF32;
  Pair p;
  p.engine = LoadedModel::load(dir, opts);
  const WeightStore store = WeightStore::open(dir);
  p.ref = std::make_unique<reference::NaiveTransformer>(p.engine->config, store);
  return p;
}

std::vector<int> some_prompt(int n, int vocab) {
  std::vector<int> t;
  for (int i = 0; i < n; ++i) t.push_back((i * 37 + 11) % vocab);
  return t;
}

double max_diff(const at::Tensor& a, const std::vector<float>& b) {
  const at::Tensor bt = at::tensor(b, at::kFloat);
  return (a.reshape({-1}) - bt).abs().max().item<double>();
}

// The logits' magnitude: bounds of the rounded paths are relative to it.
double largest_logit(const std::vector<std::vector<float>>& logits) {
  double scale = 0;
  for (const auto& row : logits)
    for (float x : row) scale = std::max(scale, double(std::abs(x)));
  return scale;
}

// How far a rounded path strays from the reference over an n-token prompt's prefill and, with
// decode_step, one decode step after it (token 5); `cache` keeps the engine's KV.
struct Deviation {
  double worst = 0;  // the largest logit difference
  double scale = 0;  // the largest reference logit: bounds are relative to it
};
Deviation deviation(const Transformer& t, reference::NaiveTransformer& ref, int n, KVCache& cache,
                    bool decode_step) {
  const auto prompt = some_prompt(n, t.config().vocab_size);
  const auto ref_logits = ref.prefill(prompt);
  const at::Tensor all = t.forward(prompt, 0, cache, nullptr, true);
  Deviation d{0, largest_logit(ref_logits)};
  for (int i = 0; i < n; ++i) d.worst = std::max(d.worst, max_diff(all[i], ref_logits[i]));
  if (decode_step) d.worst = std::max(d.worst, max_diff(t.forward({5}, n, cache), ref.step(5, n)));
  return d;
}

class Parity : public ::testing::TestWithParam<Arch> {};

TEST_P(Parity, OneShotAndChunkedPrefillMatchReference) {
  Pair p = load_pair(GetParam(), DType::F32);
  const auto prompt = some_prompt(13, p.engine->config.vocab_size);
  const auto ref_logits = p.ref->prefill(prompt);
  for (int64_t chunk : {int64_t{512}, int64_t{1}, int64_t{4}}) {
    ComputeOptions opts = p.engine->transformer.options();
    opts.prefill_chunk = chunk;
    Transformer t(p.engine->config, p.engine->weights, opts);
    KVCache cache = t.make_cache();
    const at::Tensor all = t.forward(prompt, 0, cache, nullptr, /*all_logits=*/true);
    ASSERT_EQ(all.size(0), 13);
    for (int i = 0; i < 13; ++i)
      EXPECT_LT(max_diff(all[i], ref_logits[i]), 2e-4) << "chunk " << chunk << " row " << i;
    EXPECT_EQ(cache.layer(0).length(), 13);
  }
}

TEST_P(Parity, StepByStepDecodeMatchesReference) {
  Pair p = load_pair(GetParam(), DType::F32);
  const auto prompt = some_prompt(9, p.engine->config.vocab_size);
  KVCache cache = p.engine->transformer.make_cache();
  for (int i = 0; i < 9; ++i) {
    const at::Tensor e = p.engine->transformer.forward({prompt[i]}, i, cache);
    EXPECT_LT(max_diff(e, p.ref->step(prompt[i], i)), 2e-4) << "step " << i;
  }
}

TEST_P(Parity, GreedyContinuationIsIdentical) {
  Pair p = load_pair(GetParam(), DType::F32);
  const auto prompt = some_prompt(11, p.engine->config.vocab_size);
  FullKV full;
  GenerationParams g;
  g.max_new_tokens = 12;
  g.ignore_eos = true;
  const GenerationResult r = generate(*p.engine, full, prompt, g);
  EXPECT_EQ(r.tokens, p.ref->greedy(prompt, 12));
  EXPECT_EQ(r.stats.generated_tokens, 12);
}

TEST_P(Parity, Bf16WeightsMatchReferenceOnTheSameWeights) {
  Pair p = load_pair(GetParam(), DType::BF16);
  const auto prompt = some_prompt(10, p.engine->config.vocab_size);
  const auto ref_logits = p.ref->prefill(prompt);
  KVCache cache = p.engine->transformer.make_cache();
  const at::Tensor all = p.engine->transformer.forward(prompt, 0, cache, nullptr, true);
  for (int i = 0; i < 10; ++i) EXPECT_LT(max_diff(all[i], ref_logits[i]), 2e-4) << "row " << i;
  // decode path (GEMV on bf16 weights)
  const at::Tensor next = p.engine->transformer.forward({5}, 10, cache);
  EXPECT_LT(max_diff(next, p.ref->step(5, 10)), 2e-4);
}

// The bf16 prefill GEMM (--gemm bf16, what auto picks where the CPU has fast bf16 products):
// each layer's inputs rounded to 8 significant bits move the logits by well under 2% of their
// range; decode (the GEMV, f32 products) is not affected by the choice.
TEST_P(Parity, Bf16GemmPrefillStaysWithinBf16Tolerance) {
  Pair p = load_pair(GetParam(), DType::BF16);
  ComputeOptions opts = p.engine->transformer.options();
  opts.gemm = GemmChoice::kBf16;
  const Transformer t(p.engine->config, p.engine->weights, opts);
  EXPECT_EQ(t.linear_format().gemm, at::kBFloat16);
  KVCache cache = t.make_cache();
  const Deviation d = deviation(t, *p.ref, 10, cache, false);
  std::printf("bf16 GEMM: largest logit difference %.2e (largest logit %.2f)\n", d.worst, d.scale);
  EXPECT_LT(d.worst, 2e-2 * d.scale);
  EXPECT_GT(d.worst, 0.0);  // the products really are bf16
}

// A bf16 KV cache (the CLI's default): keys and values rounded to 8 mantissa bits move the
// logits by far less than the gap between the top two tokens here, so greedy decoding is
// unchanged on these models; the bound on the logits is the stated bf16 tolerance.
TEST_P(Parity, Bf16KvCacheStaysWithinBf16ToleranceOfReference) {
  Pair p = load_pair(GetParam(), DType::F32);
  ComputeOptions opts = p.engine->transformer.options();
  opts.kv_dtype = at::kBFloat16;
  p.engine->transformer = Transformer(p.engine->config, p.engine->weights, opts);
  KVCache cache = p.engine->transformer.make_cache();
  EXPECT_EQ(cache.layer(0).keys().scalar_type(), at::kBFloat16);
  const Deviation d = deviation(p.engine->transformer, *p.ref, 11, cache, true);
  std::printf("bf16 KV: largest logit difference %.2e (largest logit %.2f)\n", d.worst, d.scale);
  // bf16 keeps 8 significant bits (relative error 2^-9 per entry): the logits move by well
  // under 1% of their range.
  EXPECT_LT(d.worst, 1e-2 * d.scale);
  EXPECT_GT(d.worst, 0.0);  // the cache really is rounded
  // half the bytes of the same entries in f32
  const int64_t entries = cache.num_layers() * p.engine->config.num_kv_heads * 12;
  EXPECT_EQ(cache.live_bytes(), 2 * entries * p.engine->config.head_dim * 2);
  FullKV full;
  GenerationParams g;
  g.max_new_tokens = 12;
  g.ignore_eos = true;
  const auto prompt = some_prompt(11, p.engine->config.vocab_size);
  EXPECT_EQ(generate(*p.engine, full, prompt, g).tokens, p.ref->greedy(prompt, 12));
}

// int8 weights (--weights int8): every linear layer, the LM head included, quantised per row
// and 64 columns. The kernels are exact against the dequantised product (test_linear.cpp);
// here the whole model stays within a few percent of the logits' range of the f32 reference,
// prefill (tiled GEMM) and decode (int8 GEMV) alike, and holds fewer bytes.
TEST_P(Parity, Int8WeightsStayCloseToReference) {
  Pair p = load_pair(GetParam(), DType::F32);
  ComputeOptions opts = p.engine->transformer.options();
  opts.weight_dtype = at::kBFloat16;
  const int64_t bf16_bytes = Transformer(p.engine->config, p.engine->weights, opts).weight_bytes();
  opts.int8_weights = true;
  const Transformer t(p.engine->config, p.engine->weights, opts);
  EXPECT_TRUE(t.linear_format().int8);
  EXPECT_LT(t.weight_bytes(), bf16_bytes);
  KVCache cache = t.make_cache();
  const Deviation d = deviation(t, *p.ref, 11, cache, true);
  std::printf("int8 weights: largest logit difference %.2e (largest logit %.2f)\n", d.worst,
              d.scale);
  EXPECT_LT(d.worst, 5e-2 * d.scale);
  EXPECT_GT(d.worst, 0.0);
  opts.trainable = true;
  opts.weight_dtype = at::kFloat;
  EXPECT_THROW(Transformer(p.engine->config, p.engine->weights, opts), Error);
}

// Compaction: attention over the compacted cache equals the reference restricted to the
// kept entries; decoding continues at the original positions.
TEST_P(Parity, CompactedCacheMatchesReferenceRestrictedToKeptEntries) {
  Pair p = load_pair(GetParam(), DType::F32);
  const ModelConfig& cfg = p.engine->config;
  const auto prompt = some_prompt(12, cfg.vocab_size);
  KVCache cache = p.engine->transformer.make_cache();
  p.engine->transformer.forward(prompt, 0, cache);
  p.ref->prefill(prompt);
  std::vector<std::vector<std::vector<int>>> keep(cfg.num_layers);
  for (int l = 0; l < cfg.num_layers; ++l) {
    std::vector<int64_t> flat;
    for (int h = 0; h < cfg.num_kv_heads; ++h) {
      std::vector<int> idx;
      for (int j = 0; j < 12; ++j)
        if ((j + h + l) % 3 != 0 || j == 0) idx.push_back(j);
      idx.resize(7);  // same count per head
      keep[l].push_back(idx);
      flat.insert(flat.end(), idx.begin(), idx.end());
    }
    cache.layer(l).compact(at::tensor(flat, at::kLong).view({cfg.num_kv_heads, 7}));
  }
  p.ref->compact(keep);
  EXPECT_EQ(cache.layer(0).length(), 7);
  for (int step = 0; step < 3; ++step) {
    const int tok = 3 + step;
    const at::Tensor e = p.engine->transformer.forward({tok}, 12 + step, cache);
    EXPECT_LT(max_diff(e, p.ref->step(tok, 12 + step)), 2e-4) << "step " << step;
  }
}

TEST_P(Parity, QueryCaptureIsTheSameChunkedOrNot) {
  Pair p = load_pair(GetParam(), DType::F32);
  const auto prompt = some_prompt(10, p.engine->config.vocab_size);
  std::vector<at::Tensor> got;
  for (int64_t chunk : {int64_t{512}, int64_t{3}}) {
    ComputeOptions opts = p.engine->transformer.options();
    opts.prefill_chunk = chunk;
    Transformer t(p.engine->config, p.engine->weights, opts);
    KVCache cache = t.make_cache();
    QueryCapture cap;
    cap.positions = {2, 5, 9};
    t.forward(prompt, 0, cache, &cap);
    ASSERT_EQ(static_cast<int>(cap.per_layer.size()), p.engine->config.num_layers);
    EXPECT_EQ(cap.per_layer[1].sizes(),
              (at::IntArrayRef{p.engine->config.num_heads, 3, p.engine->config.head_dim}));
    got.push_back(cap.per_layer[1]);
  }
  EXPECT_TRUE(at::allclose(got[0], got[1], 1e-5, 1e-5));
}

// Long positions, as the shipped models run (4096 tokens and beyond): 1030 tokens at positions
// 0.. and then 3200 at positions 5000..8199 (RoPE far from 0, keys up to 8203 positions before
// their queries, llama3's scaled frequency bands for Llama), each prefill in the default
// 512-row chunks (boundaries inside both), then four decode steps over the 4230 keys. The
// engine's logits against the naive reference's: with an f32 KV cache to f32 rounding, with a
// bf16 one within its stated bound (1% of the logits' range). The reference feeds the same
// positions one token at a time; a model of the tiny shape with a 16k context.
class LongPositions : public ::testing::TestWithParam<Arch> {};

TEST_P(LongPositions, FarPositionsAndDefaultChunksMatchReference) {
  test::TempDir tmp;
  ModelShape shape = shape_preset("tiny", GetParam());
  shape.vocab = Tokenizer::from_json_string(testing::tiny_tokenizer_json(), "tiny").vocab_size();
  shape.max_pos = 16384;
  write_random_model(tmp / "m", make_config(GetParam(), shape), 11, DType::F32,
                     testing::tiny_tokenizer_json(), "chatml");
  ComputeOptions opts;
  opts.weight_dtype = at::kFloat;
  opts.gemm = GemmChoice::kF32;
  ASSERT_EQ(opts.prefill_chunk, 512);  // the default, as dapx runs
  const auto m = LoadedModel::load(tmp / "m", opts);
  reference::NaiveTransformer ref(m->config, WeightStore::open(tmp / "m"));
  const int vocab = m->config.vocab_size, n1 = 1030, n2 = 3200, p2 = 5000;
  const std::vector<int> first = some_prompt(n1, vocab);
  std::vector<int> second;
  for (int i = 0; i < n2; ++i) second.push_back((i * 53 + 5) % vocab);
  const std::vector<int> next = {7, 11, 13, 17};
  for (int i = 0; i < n1; ++i) ref.step(first[i], i);
  std::vector<std::vector<float>> want;
  for (int i = 0; i < n2; ++i) want.push_back(ref.step(second[i], p2 + i));
  for (int s = 0; s < 4; ++s) want.push_back(ref.step(next[s], p2 + n2 + s));
  const double scale = largest_logit(want);
  for (const bool bf16_kv : {false, true}) {
    ComputeOptions o = opts;
    o.kv_dtype = bf16_kv ? at::kBFloat16 : at::kFloat;
    const Transformer t(m->config, m->weights, o);
    KVCache cache = t.make_cache();
    t.forward(first, 0, cache);
    const at::Tensor all = t.forward(second, p2, cache, nullptr, /*all_logits=*/true);
    ASSERT_EQ(all.size(0), n2);
    double worst = 0, worst_decode = 0;
    for (int i = 0; i < n2; ++i) worst = std::max(worst, max_diff(all[i], want[i]));
    for (int s = 0; s < 4; ++s)
      worst_decode =
          std::max(worst_decode, max_diff(t.forward({next[s]}, p2 + n2 + s, cache), want[n2 + s]));
    EXPECT_EQ(cache.layer(0).length(), n1 + n2 + 4);
    std::printf(
        "%s KV, positions to %d: largest logit difference %.2e prefill, %.2e decode "
        "(largest logit %.2f)\n",
        bf16_kv ? "bf16" : "f32", p2 + n2 + 3, worst, worst_decode, scale);
    // f32: about 1.5e-5 here; RoPE angles rounded to f32 at these positions give 2e-4.
    const double bound = bf16_kv ? 1e-2 * scale : 6e-5;
    EXPECT_LT(worst, bound);
    EXPECT_LT(worst_decode, bound);
    if (bf16_kv) {
      EXPECT_GT(worst, 0.0);  // the cache really is rounded
    }
  }
}

INSTANTIATE_TEST_SUITE_P(RopeScaledAndPlain, LongPositions,
                         ::testing::Values(Arch::Llama, Arch::Qwen2),
                         [](const auto& info) { return short_name(info.param); });

INSTANTIATE_TEST_SUITE_P(AllArchitectures, Parity,
                         ::testing::Values(Arch::Llama, Arch::Qwen2, Arch::Qwen3, Arch::Mistral),
                         [](const auto& info) { return short_name(info.param); });

}  // namespace
}  // namespace dapx
