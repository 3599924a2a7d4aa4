// GGUF metadata -> ModelConfig, GGUF <-> HF tensor names, and llama.cpp's Q/K row permutation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "error_message.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/model_config.h"

namespace dapx {
namespace {

using nlohmann::json;
using test::expect_error;

std::vector<std::byte> f32_bytes(const std::vector<float>& v) {
  std::vector<std::byte> b(v.size() * 4);
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// Holds the image the contents point into.
struct Parsed {
  std::string image;
  GgufContents contents;
};

Parsed make(const GgufMetadataList& meta, const std::vector<GgufTensorData>& tensors = {}) {
  Parsed p;
  p.image = gguf_bytes(meta, tensors);
  p.contents =
      parse_gguf(reinterpret_cast<const std::byte*>(p.image.data()), p.image.size(), "model.gguf");
  return p;
}

std::vector<std::string> tokens(int n) {
  std::vector<std::string> t;
  for (int i = 0; i < n; ++i) t.push_back("t" + std::to_string(i));
  return t;
}

// What llama.cpp's converter writes for Qwen2.5-0.5B (with a small token list).
GgufMetadataList qwen2_meta() {
  return {
      {"general.architecture", GgufValue::string("qwen2")},
      {"general.name", GgufValue::string("Qwen2.5 0.5B")},
      {"qwen2.block_count", GgufValue::u32(24)},
      {"qwen2.context_length", GgufValue::u32(32768)},
      {"qwen2.embedding_length", GgufValue::u32(896)},
      {"qwen2.feed_forward_length", GgufValue::u32(4864)},
      {"qwen2.attention.head_count", GgufValue::u32(14)},
      {"qwen2.attention.head_count_kv", GgufValue::u32(2)},
      {"qwen2.rope.freq_base", GgufValue::f32(1000000.0f)},
      {"qwen2.attention.layer_norm_rms_epsilon", GgufValue::f32(1e-6f)},
      {"general.file_type", GgufValue::u32(1)},
      {"tokenizer.ggml.model", GgufValue::string("gpt2")},
      {"tokenizer.ggml.tokens", GgufValue::string_array(tokens(40))},
      {"tokenizer.ggml.bos_token_id", GgufValue::u32(30)},
      {"tokenizer.ggml.eos_token_id", GgufValue::u32(31)},
      {"tokenizer.ggml.padding_token_id", GgufValue::u32(30)},
  };
}

TEST(GgufModel, Qwen2MatchesTheHfConfig) {
  const Parsed p = make(
      qwen2_meta(), {{"token_embd.weight", GgmlType::F16, {40, 2}, std::vector<std::byte>(160)}});
  const json hf = {{"architectures", {"Qwen2ForCausalLM"}},
                   {"hidden_size", 896},
                   {"intermediate_size", 4864},
                   {"num_hidden_layers", 24},
                   {"num_attention_heads", 14},
                   {"num_key_value_heads", 2},
                   {"max_position_embeddings", 32768},
                   {"rms_norm_eps", 1e-6},
                   {"rope_theta", 1000000.0},
                   {"vocab_size", 40},
                   {"tie_word_embeddings", true},
                   {"bos_token_id", 30},
                   {"eos_token_id", 31},
                   {"torch_dtype", "float16"}};
  EXPECT_EQ(gguf_model_config(p.contents), ModelConfig::from_json(hf));
  const ModelConfig c = gguf_model_config(p.contents);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);  // the float32 read back as the decimal it was written from
}

TEST(GgufModel, UntiedVocabFallbacksAndEos) {
  GgufMetadataList meta = qwen2_meta();
  meta.erase(meta.begin() + 12);  // no token list: vocab from token_embd.weight
  meta.push_back({"tokenizer.ggml.eot_token_id", GgufValue::u32(33)});
  meta.push_back({"tokenizer.ggml.eom_token_id", GgufValue::u32(31)});
  const Parsed p =
      make(meta, {{"token_embd.weight", GgmlType::BF16, {50, 2}, std::vector<std::byte>(200)},
                  {"output.weight", GgmlType::BF16, {50, 2}, std::vector<std::byte>(200)}});
  const ModelConfig c = gguf_model_config(p.contents);
  EXPECT_EQ(c.vocab_size, 50);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int>{31, 33}));
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  meta.push_back({"qwen2.vocab_size", GgufValue::u32(64)});
  EXPECT_EQ(gguf_model_config(make(meta).contents).vocab_size, 64);
}

TEST(GgufModel, Qwen3HeadDimAndQkNorm) {
  const Parsed p = make({
      {"general.architecture", GgufValue::string("qwen3")},
      {"qwen3.block_count", GgufValue::u32(28)},
      {"qwen3.context_length", GgufValue::u32(40960)},
      {"qwen3.embedding_length", GgufValue::u32(1024)},
      {"qwen3.feed_forward_length", GgufValue::u32(3072)},
      {"qwen3.attention.head_count", GgufValue::u32(16)},
      {"qwen3.attention.head_count_kv", GgufValue::u32(8)},
      {"qwen3.attention.key_length", GgufValue::u32(128)},
      {"qwen3.attention.value_length", GgufValue::u32(128)},
      {"qwen3.rope.freq_base", GgufValue::f32(1000000.0f)},
      {"qwen3.attention.layer_norm_rms_epsilon", GgufValue::f32(1e-6f)},
      {"tokenizer.ggml.tokens", GgufValue::string_array(tokens(8))},
  });
  const ModelConfig c = gguf_model_config(p.contents);
  EXPECT_EQ(c.arch, Arch::Qwen3);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.max_position_embeddings, 40960);
}

GgufMetadataList llama_meta(int heads, int kv_heads, int hidden, float base) {
  GgufMetadataList m = {
      {"general.architecture", GgufValue::string("llama")},
      {"llama.block_count", GgufValue::u32(16)},
      {"llama.context_length", GgufValue::u32(131072)},
      {"llama.embedding_length", GgufValue::u32(static_cast<uint32_t>(hidden))},
      {"llama.feed_forward_length", GgufValue::u32(8192)},
      {"llama.attention.head_count", GgufValue::u32(static_cast<uint32_t>(heads))},
      {"llama.rope.freq_base", GgufValue::f32(base)},
      {"llama.attention.layer_norm_rms_epsilon", GgufValue::f32(1e-5f)},
      {"llama.rope.dimension_count", GgufValue::u32(static_cast<uint32_t>(hidden / heads))},
      {"llama.vocab_size", GgufValue::u32(128256)},
  };
  if (kv_heads) {
    m.push_back({"llama.attention.head_count_kv", GgufValue::u32(static_cast<uint32_t>(kv_heads))});
  }
  return m;
}

// rope_freqs.weight as the converter computes it (float32 frequencies, as torch does).
std::vector<float> converter_rope_freqs(int dim, float base, float factor, float low, float high,
                                        float old_ctx) {
  std::vector<float> out;
  for (int k = 0; k < dim; k += 2) {
    const float freq = 1.0f / std::pow(base, static_cast<float>(k) / static_cast<float>(dim));
    const float wavelen = 2.0f * 3.14159265358979f / freq;
    if (wavelen < old_ctx / high) {
      out.push_back(1.0f);
    } else if (wavelen > old_ctx / low) {
      out.push_back(factor);
    } else {
      const float smooth = (old_ctx / wavelen - low) / (high - low);
      out.push_back(1.0f / ((1.0f - smooth) / factor + smooth));
    }
  }
  return out;
}

TEST(GgufModel, LlamaWithLlama3RopeScaling) {
  // Llama 3.2 1B: head_dim 64, factor 32; Llama 3.1 8B: head_dim 128, factor 8.
  struct Case {
    int heads, kv, hidden;
    float factor;
  };
  for (const Case& k : {Case{32, 8, 2048, 32.0f}, Case{32, 8, 4096, 8.0f}}) {
    SCOPED_TRACE(k.factor);
    const int head_dim = k.hidden / k.heads;
    const std::vector<float> freqs =
        converter_rope_freqs(head_dim, 500000.0f, k.factor, 1.0f, 4.0f, 8192.0f);
    const Parsed p = make(llama_meta(k.heads, k.kv, k.hidden, 500000.0f),
                          {{"rope_freqs.weight",
                            GgmlType::F32,
                            {static_cast<int64_t>(freqs.size())},
                            f32_bytes(freqs)},
                           {"output.weight", GgmlType::F32, {0, 4}, {}}});
    const ModelConfig c = gguf_model_config(p.contents);
    EXPECT_EQ(c.arch, Arch::Llama);
    EXPECT_EQ(c.num_kv_heads, k.kv);
    EXPECT_FALSE(c.tie_word_embeddings);
    EXPECT_FALSE(c.qkv_bias);
    EXPECT_EQ(c.rms_norm_eps, 1e-5);
    EXPECT_EQ(c.rope_theta, 500000.0);
    ASSERT_TRUE(c.rope_scaling.has_value());
    RopeScaling want;
    want.factor = k.factor;
    want.low_freq_factor = 1.0;
    want.high_freq_factor = 4.0;
    want.original_max_position_embeddings = 8192;
    EXPECT_EQ(*c.rope_scaling, want);
  }
  // Factors that are not llama3 scaling.
  std::vector<float> odd(32, 1.0f);
  odd[5] = 3.0f;
  const Parsed bad = make(llama_meta(32, 8, 2048, 500000.0f),
                          {{"rope_freqs.weight", GgmlType::F32, {32}, f32_bytes(odd)}});
  expect_error([&] { gguf_model_config(bad.contents); },
               {"model.gguf", "rope_freqs.weight", "not llama3 scaling"});
  // All ones: no scaling.
  const Parsed ones =
      make(llama_meta(32, 8, 2048, 500000.0f),
           {{"rope_freqs.weight", GgmlType::F32, {32}, f32_bytes(std::vector<float>(32, 1.0f))}});
  EXPECT_FALSE(gguf_model_config(ones.contents).rope_scaling.has_value());
  const Parsed wrong_size = make(llama_meta(32, 8, 2048, 500000.0f),
                                 {{"rope_freqs.weight", GgmlType::F32, {3}, f32_bytes({1, 2, 3})}});
  expect_error([&] { gguf_model_config(wrong_size.contents); },
               {"rope_freqs.weight has 3 values, expected half the head dimension (64)"});
}

TEST(GgufModel, LlamaDefaultsAndBias) {
  // No head_count_kv: as many KV heads as heads. A q bias: attention_bias.
  const Parsed p =
      make(llama_meta(8, 0, 512, 10000.0f),
           {{"blk.0.attn_q.bias", GgmlType::F32, {512}, f32_bytes(std::vector<float>(512))}});
  const ModelConfig c = gguf_model_config(p.contents);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.rope_scaling.has_value());
}

TEST(GgufModel, Refusals) {
  auto with = [](GgufMetadataList m, const std::string& key, GgufValue v) {
    for (auto& e : m)
      if (e.first == key) {
        e.second = std::move(v);
        return m;
      }
    m.push_back({key, std::move(v)});
    return m;
  };
  auto without = [](GgufMetadataList m, const std::string& key) {
    GgufMetadataList out;
    for (auto& e : m)
      if (e.first != key) out.push_back(e);
    return out;
  };
  auto config_error = [](const GgufMetadataList& m) {
    const Parsed p = make(m);
    return test::error_of([&] { gguf_model_config(p.contents); });
  };
  const GgufMetadataList base = llama_meta(32, 8, 2048, 500000.0f);
  ASSERT_EQ(config_error(base), "(no error)");
  EXPECT_NE(config_error(with(base, "general.architecture", GgufValue::string("gpt2")))
                .find("architecture 'gpt2' (general.architecture) is not supported (supported: "
                      "llama, qwen2, qwen3)"),
            std::string::npos);
  EXPECT_NE(
      config_error(without(base, "llama.block_count")).find("missing key 'llama.block_count'"),
      std::string::npos);
  EXPECT_NE(config_error(with(base, "llama.block_count", GgufValue::string("16")))
                .find("key 'llama.block_count' has type string, expected an integer"),
            std::string::npos);
  EXPECT_NE(config_error(with(base, "llama.attention.sliding_window", GgufValue::u32(4096)))
                .find("key 'llama.attention.sliding_window' is not one dapx understands"),
            std::string::npos);
  EXPECT_NE(config_error(with(base, "llama.rope.scaling.type", GgufValue::string("linear")))
                .find("unsupported rope_scaling type 'linear'"),
            std::string::npos);
  EXPECT_EQ(config_error(with(base, "llama.rope.scaling.type", GgufValue::string("none"))),
            "(no error)");
  EXPECT_NE(config_error(with(base, "llama.rope.dimension_count", GgufValue::u32(32)))
                .find("partial rotary embeddings are not supported"),
            std::string::npos);
  EXPECT_NE(config_error(with(with(base, "llama.attention.key_length", GgufValue::u32(64)),
                              "llama.attention.value_length", GgufValue::u32(128)))
                .find("differs from 'llama.attention.key_length' (64)"),
            std::string::npos);
  EXPECT_NE(config_error(with(base, "llama.expert_count", GgufValue::u32(8)))
                .find("mixture-of-experts models are not supported"),
            std::string::npos);
  EXPECT_EQ(config_error(with(base, "llama.expert_count", GgufValue::u32(0))), "(no error)");
  // What ModelConfig refuses, it refuses here too.
  EXPECT_NE(config_error(with(base, "llama.attention.head_count_kv", GgufValue::u32(5)))
                .find("is not divisible by num_key_value_heads (5)"),
            std::string::npos);
  EXPECT_NE(config_error(with(base, "llama.embedding_length", GgufValue::u32(0)))
                .find("'hidden_size' must be a positive integer"),
            std::string::npos);
  EXPECT_NE(config_error(with(base, "tokenizer.ggml.eos_token_id", GgufValue::u32(200000)))
                .find("outside the vocabulary"),
            std::string::npos);
  EXPECT_NE(config_error(without(without(base, "llama.vocab_size"), "x"))
                .find("cannot tell the vocabulary size"),
            std::string::npos);
  // The architecture names.
  EXPECT_EQ(arch_from_gguf_name("qwen2"), Arch::Qwen2);
  EXPECT_EQ(gguf_arch_name(Arch::Mistral), "llama");
  expect_error([] { arch_from_gguf_name("phi3"); }, {"GGUF architecture 'phi3' is not supported"});
}

TEST(GgufModel, TensorNames) {
  const std::vector<std::pair<std::string, std::string>> names = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"},
      {"blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"},
      {"blk.12.attn_q.weight", "model.layers.12.self_attn.q_proj.weight"},
      {"blk.12.attn_k.weight", "model.layers.12.self_attn.k_proj.weight"},
      {"blk.12.attn_v.weight", "model.layers.12.self_attn.v_proj.weight"},
      {"blk.3.attn_output.weight", "model.layers.3.self_attn.o_proj.weight"},
      {"blk.3.attn_q.bias", "model.layers.3.self_attn.q_proj.bias"},
      {"blk.3.attn_k.bias", "model.layers.3.self_attn.k_proj.bias"},
      {"blk.3.attn_v.bias", "model.layers.3.self_attn.v_proj.bias"},
      {"blk.7.attn_q_norm.weight", "model.layers.7.self_attn.q_norm.weight"},
      {"blk.7.attn_k_norm.weight", "model.layers.7.self_attn.k_norm.weight"},
      {"blk.7.ffn_norm.weight", "model.layers.7.post_attention_layernorm.weight"},
      {"blk.100.ffn_gate.weight", "model.layers.100.mlp.gate_proj.weight"},
      {"blk.100.ffn_up.weight", "model.layers.100.mlp.up_proj.weight"},
      {"blk.100.ffn_down.weight", "model.layers.100.mlp.down_proj.weight"},
  };
  for (const auto& [gguf, hf] : names) {
    EXPECT_EQ(gguf_to_hf_tensor_name(gguf), hf) << gguf;
    EXPECT_EQ(hf_to_gguf_tensor_name(hf), gguf) << hf;
  }
  for (const std::string bad : {"rope_freqs.weight", "blk.x.attn_q.weight", "blk.01.attn_q.weight",
                                "blk..attn_q.weight", "blk.0.attn_qkv.weight", "blk.0", "output"})
    EXPECT_EQ(gguf_to_hf_tensor_name(bad), std::nullopt) << bad;
  for (const std::string bad :
       {"model.layers.0.mlp.act.weight", "model.layers.-1.mlp.up_proj.weight", "lm_head.bias"})
    EXPECT_EQ(hf_to_gguf_tensor_name(bad), std::nullopt) << bad;
}

// The converter's transform written as numpy does it: reshape [n_head, 2, half, cols], swap
// axes 1 and 2, reshape back; element [h][a][b] moves to [h][b][a].
std::vector<float> numpy_permute(const std::vector<float>& w, int rows, int n_head) {
  const int cols = static_cast<int>(w.size()) / rows, half = rows / n_head / 2;
  std::vector<float> out(w.size());
  for (int h = 0; h < n_head; ++h)
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < half; ++b)
        for (int c = 0; c < cols; ++c) {
          const int src = ((h * 2 + a) * half + b) * cols + c;
          const int dst = ((h * half + b) * 2 + a) * cols + c;
          out[static_cast<size_t>(dst)] = w[static_cast<size_t>(src)];
        }
  return out;
}

TEST(GgufModel, LlamaQkPermutation) {
  // Hand-checked: 2 heads of head_dim 6 (half 3), one column holding the HF row index.
  std::vector<float> rows(12);
  for (int i = 0; i < 12; ++i) rows[static_cast<size_t>(i)] = static_cast<float>(i);
  const std::vector<float> gguf = permute_llama_qk(rows, 12, 2, /*to_hf=*/false);
  EXPECT_EQ(gguf, (std::vector<float>{0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11}));
  EXPECT_EQ(permute_llama_qk(gguf, 12, 2, /*to_hf=*/true), rows);
  EXPECT_EQ(llama_qk_gguf_row(3, 12, 2), 1);
  EXPECT_EQ(llama_qk_gguf_row(7, 12, 2), 8);

  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  const std::vector<std::tuple<int, int, int>> shapes = {
      {64, 4, 3}, {16, 1, 5}, {24, 12, 2}, {128, 8, 1}};
  for (const auto& [n_rows, n_head, cols] : shapes) {
    std::vector<float> w(static_cast<size_t>(n_rows * cols));
    for (float& x : w) x = dist(rng);
    const std::vector<float> fwd = permute_llama_qk(w, n_rows, n_head, false);
    EXPECT_EQ(fwd, numpy_permute(w, n_rows, n_head)) << n_rows << " " << n_head;
    EXPECT_EQ(permute_llama_qk(fwd, n_rows, n_head, true), w);
    EXPECT_EQ(permute_llama_qk(permute_llama_qk(w, n_rows, n_head, true), n_rows, n_head, false),
              w);
  }
  // Whole rows of any format: 3-byte rows.
  std::vector<std::byte> src(8 * 3), dst(8 * 3), back(8 * 3);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<std::byte>(i);
  permute_llama_qk_rows(src.data(), dst.data(), 8, 3, 2, false);
  permute_llama_qk_rows(dst.data(), back.data(), 8, 3, 2, true);
  EXPECT_EQ(back, src);
  EXPECT_EQ(static_cast<int>(dst[3]), 6);  // GGUF row 1 is HF row 2 (head_dim 4, half 2)

  expect_error([] { permute_llama_qk(std::vector<float>(10), 10, 2, true); },
               {"10 rows are not a multiple of 2 x 2 heads"});

  ModelConfig llama;
  llama.arch = Arch::Llama;
  llama.num_heads = 32;
  llama.num_kv_heads = 8;
  EXPECT_EQ(gguf_qk_permutation_heads(llama, "blk.3.attn_q.weight"), 32);
  EXPECT_EQ(gguf_qk_permutation_heads(llama, "blk.3.attn_k.weight"), 8);
  EXPECT_EQ(gguf_qk_permutation_heads(llama, "blk.3.attn_k.bias"), 8);
  EXPECT_EQ(gguf_qk_permutation_heads(llama, "blk.3.attn_v.weight"), 0);
  EXPECT_EQ(gguf_qk_permutation_heads(llama, "token_embd.weight"), 0);
  ModelConfig qwen = llama;
  qwen.arch = Arch::Qwen2;
  EXPECT_EQ(gguf_qk_permutation_heads(qwen, "blk.3.attn_q.weight"), 0);
}

}  // namespace
}  // namespace dapx
