// Random-weight model directories: presets, layout, determinism, init scales, sharding.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "error_message.h"
#include "io/random_model.h"
#include "temp_dir.h"
#include "util/error.h"

namespace dapx {
namespace {

using nlohmann::json;
using test::read_file;
using test::TempDir;

constexpr Arch kArchs[] = {Arch::Llama, Arch::Qwen2, Arch::Qwen3, Arch::Mistral};

// Enough of a tokenizer.json for the writer (it only looks at added_tokens).
const char* kTokenizerJson =
    R"({"version": "1.0", "added_tokens": [{"id": 254, "content": "<|bos|>", "special": true},)"
    R"( {"id": 255, "content": "<|end|>", "special": true}], "model": {"type": "BPE"}})";

ModelConfig tiny_config(Arch arch, int vocab = 256) {
  ModelShape s = shape_preset("tiny", arch);
  s.vocab = vocab;  // small vocabulary keeps the tests fast
  ModelConfig c = make_config(arch, s);
  c.bos_token_id = 254;
  c.eos_token_ids = {255, 3};
  return c;
}

using test::expect_error;

double mean(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += x;
  return s / v.size();
}

double stddev(const std::vector<float>& v) {
  const double m = mean(v);
  double s = 0;
  for (float x : v) s += (x - m) * (x - m);
  return std::sqrt(s / v.size());
}

TEST(ShapePreset, Values) {
  const auto q = shape_preset("qwen2.5-0.5b", Arch::Qwen2);
  EXPECT_EQ(q.hidden, 896);
  EXPECT_EQ(q.intermediate, 4864);
  EXPECT_EQ(q.layers, 24);
  EXPECT_EQ(q.heads, 14);
  EXPECT_EQ(q.kv_heads, 2);
  EXPECT_EQ(q.head_dim, 64);
  EXPECT_EQ(q.vocab, 151936);
  EXPECT_TRUE(q.tie);
  EXPECT_EQ(q.rope_theta, 1e6);
  const auto l = shape_preset("llama-3.2-1b", Arch::Llama);
  ASSERT_TRUE(l.rope_scaling.has_value());
  EXPECT_EQ(l.rope_scaling->factor, 32.0);
  EXPECT_EQ(l.rope_scaling->original_max_position_embeddings, 8192);
  EXPECT_EQ(l.max_pos, 131072);
  EXPECT_EQ(l.vocab, 128256);
  EXPECT_EQ(shape_preset("qwen3-0.6b", Arch::Qwen3).head_dim, 128);
  EXPECT_EQ(shape_preset("qwen2.5-1.5b", Arch::Qwen2).intermediate, 8960);
  EXPECT_EQ(shape_preset("tiny", Arch::Qwen2).vocab, 151936);
  EXPECT_EQ(shape_preset("tiny", Arch::Llama).vocab, 128256);
  EXPECT_EQ(shape_preset("small", Arch::Qwen3).head_dim, 32);
  // The trained pair's shapes: a 6-layer target, a 2-layer draft, both with tied embeddings.
  const auto tt = shape_preset("train-target", Arch::Qwen2);
  const auto td = shape_preset("train-draft", Arch::Qwen2);
  EXPECT_EQ(tt.layers, 6);
  EXPECT_EQ(tt.hidden, 256);
  EXPECT_EQ(td.layers, 2);
  EXPECT_EQ(td.hidden, 128);
  EXPECT_TRUE(tt.tie && td.tie);
  // The paper's targets (Qwen2.5-7B-Instruct, Llama-3.1-8B-Instruct configs), context at 128k.
  const auto q7 = shape_preset("qwen2.5-7b", Arch::Qwen2);
  EXPECT_EQ(q7.hidden, 3584);
  EXPECT_EQ(q7.intermediate, 18944);
  EXPECT_EQ(q7.layers, 28);
  EXPECT_EQ(q7.heads, 28);
  EXPECT_EQ(q7.kv_heads, 4);
  EXPECT_EQ(q7.vocab, 152064);
  EXPECT_FALSE(q7.tie);
  EXPECT_FALSE(q7.rope_scaling.has_value());
  const auto l8 = shape_preset("llama-3.1-8b", Arch::Llama);
  EXPECT_EQ(l8.hidden, 4096);
  EXPECT_EQ(l8.intermediate, 14336);
  EXPECT_EQ(l8.layers, 32);
  EXPECT_EQ(l8.kv_heads, 8);
  EXPECT_EQ(l8.head_dim, 128);
  EXPECT_EQ(l8.rope_theta, 500000.0);
  ASSERT_TRUE(l8.rope_scaling.has_value());
  EXPECT_EQ(l8.rope_scaling->factor, 8.0);
  EXPECT_EQ(l8.rope_scaling->original_max_position_embeddings, 8192);
  EXPECT_EQ(make_config(Arch::Llama, l8).rms_norm_eps, 1e-5);
  EXPECT_EQ(shape_preset_names().size(), 10u);
  expect_error([] { shape_preset("gpt-5", Arch::Llama); },
               {"'gpt-5'",
                "tiny, small, qwen2.5-0.5b, qwen2.5-1.5b, llama-3.2-1b, qwen3-0.6b, qwen2.5-7b, "
                "llama-3.1-8b, train-target, train-draft"});
}

TEST(ShapePreset, MakeConfigMatchesRealConfigs) {
  const auto q = make_config(Arch::Qwen2, shape_preset("qwen2.5-0.5b", Arch::Qwen2));
  EXPECT_TRUE(q.qkv_bias);
  EXPECT_FALSE(q.qk_norm);
  EXPECT_EQ(q.group_size(), 7);
  const auto q3 = make_config(Arch::Qwen3, shape_preset("qwen3-0.6b", Arch::Qwen3));
  EXPECT_TRUE(q3.qk_norm);
  EXPECT_FALSE(q3.qkv_bias);
  EXPECT_EQ(q3.head_dim, 128);
  const auto l = make_config(Arch::Llama, shape_preset("llama-3.2-1b", Arch::Llama));
  EXPECT_EQ(l.rope_theta, 500000.0);
  EXPECT_EQ(l.rms_norm_eps, 1e-5);
  EXPECT_TRUE(l.rope_scaling.has_value());
  ModelShape bad = shape_preset("tiny", Arch::Llama);
  bad.kv_heads = 3;
  expect_error([&] { make_config(Arch::Llama, bad); }, {"tiny", "not divisible"});
}

TEST(RandomModel, EveryArchLoadsWithExpectedTensors) {
  for (Arch arch : kArchs) {
    SCOPED_TRACE(short_name(arch));
    TempDir dir;
    const ModelConfig cfg = tiny_config(arch);
    const std::string fmt = arch == Arch::Llama     ? "llama3"
                            : arch == Arch::Mistral ? "raw"
                                                    : "chatml";
    write_random_model(dir.path(), cfg, 42, DType::BF16, kTokenizerJson, fmt);

    ModelConfig expected = cfg;
    expected.torch_dtype = "bfloat16";
    const ModelConfig loaded = ModelConfig::load(dir.path());
    EXPECT_TRUE(loaded == expected) << loaded.to_json().dump(2);
    EXPECT_EQ(loaded.qkv_bias, arch == Arch::Qwen2);
    EXPECT_EQ(loaded.qk_norm, arch == Arch::Qwen3);
    EXPECT_EQ(loaded.rope_scaling.has_value(), arch == Arch::Llama);

    const WeightStore ws = WeightStore::open(dir.path());
    const int64_t h = 64, inter = 128, q = 4 * 16, kv = 2 * 16;
    size_t count = 2 + (cfg.tie_word_embeddings ? 0 : 1);
    ws.get("model.embed_tokens.weight", {256, h});
    ws.get("model.norm.weight", {h});
    ws.get("lm_head.weight", {256, h});  // tiny is untied
    for (int i = 0; i < 2; ++i) {
      const std::string p = "model.layers." + std::to_string(i) + ".";
      ws.get(p + "input_layernorm.weight", {h});
      ws.get(p + "post_attention_layernorm.weight", {h});
      ws.get(p + "self_attn.q_proj.weight", {q, h});
      ws.get(p + "self_attn.k_proj.weight", {kv, h});
      ws.get(p + "self_attn.v_proj.weight", {kv, h});
      ws.get(p + "self_attn.o_proj.weight", {h, q});
      ws.get(p + "mlp.gate_proj.weight", {inter, h});
      ws.get(p + "mlp.up_proj.weight", {inter, h});
      ws.get(p + "mlp.down_proj.weight", {h, inter});
      count += 9;
      EXPECT_EQ(ws.has(p + "self_attn.q_proj.bias"), arch == Arch::Qwen2);
      if (arch == Arch::Qwen2) {
        ws.get(p + "self_attn.q_proj.bias", {q});
        ws.get(p + "self_attn.k_proj.bias", {kv});
        ws.get(p + "self_attn.v_proj.bias", {kv});
        count += 3;
      }
      EXPECT_EQ(ws.has(p + "self_attn.q_norm.weight"), arch == Arch::Qwen3);
      if (arch == Arch::Qwen3) {
        ws.get(p + "self_attn.q_norm.weight", {16});
        ws.get(p + "self_attn.k_norm.weight", {16});
        count += 2;
      }
    }
    EXPECT_EQ(ws.names().size(), count);
    EXPECT_EQ(ws.names().size(), expected_tensors(cfg).size());
    for (const auto& name : ws.names()) EXPECT_EQ(ws.get(name).dtype, DType::BF16) << name;

    EXPECT_EQ(read_file(dir / "tokenizer.json"), kTokenizerJson);
    const json gen = json::parse(read_file(dir / "generation_config.json"));
    EXPECT_EQ(gen["eos_token_id"], json({255, 3}));
    const json tc = json::parse(read_file(dir / "tokenizer_config.json"));
    if (fmt == "raw") {
      EXPECT_FALSE(tc.contains("chat_template"));
    } else {
      const std::string marker = fmt == "chatml" ? "<|im_start|>" : "<|start_header_id|>";
      EXPECT_NE(tc["chat_template"].get<std::string>().find(marker), std::string::npos);
    }
    EXPECT_EQ(tc["eos_token"], "<|end|>");
    EXPECT_EQ(tc["bos_token"], "<|bos|>");
  }
}

TEST(RandomModel, TiedEmbeddingsHaveNoLmHead) {
  TempDir dir;
  ModelConfig cfg = tiny_config(Arch::Qwen2);
  cfg.tie_word_embeddings = true;
  write_random_model(dir.path(), cfg, 1, DType::F32, kTokenizerJson, "chatml");
  const auto ws = WeightStore::open(dir.path());
  EXPECT_FALSE(ws.has("lm_head.weight"));
  EXPECT_TRUE(ModelConfig::load(dir.path()).tie_word_embeddings);
  EXPECT_EQ(ModelConfig::load(dir.path()).torch_dtype, "float32");
}

TEST(RandomModel, DeterministicForSeed) {
  TempDir a, b, c;
  const ModelConfig cfg = tiny_config(Arch::Qwen3);
  write_random_model(a.path(), cfg, 7, DType::BF16, kTokenizerJson, "chatml");
  write_random_model(b.path(), cfg, 7, DType::BF16, kTokenizerJson, "chatml");
  write_random_model(c.path(), cfg, 8, DType::BF16, kTokenizerJson, "chatml");
  const std::string wa = read_file(a / "model.safetensors");
  EXPECT_EQ(wa, read_file(b / "model.safetensors"));
  EXPECT_NE(wa, read_file(c / "model.safetensors"));
  // Tensors of the same shape get different values (seeded by name, not by position).
  const auto ws = WeightStore::open(a.path());
  EXPECT_NE(to_float_vector(ws.get("model.layers.0.mlp.gate_proj.weight")),
            to_float_vector(ws.get("model.layers.0.mlp.up_proj.weight")));
  EXPECT_NE(to_float_vector(ws.get("model.layers.0.mlp.gate_proj.weight")),
            to_float_vector(ws.get("model.layers.1.mlp.gate_proj.weight")));
}

TEST(RandomModel, DtypesHoldTheSameValues) {
  TempDir f32, bf16, f16;
  const ModelConfig cfg = tiny_config(Arch::Llama);
  write_random_model(f32.path(), cfg, 3, DType::F32, kTokenizerJson, "llama3");
  write_random_model(bf16.path(), cfg, 3, DType::BF16, kTokenizerJson, "llama3");
  write_random_model(f16.path(), cfg, 3, DType::F16, kTokenizerJson, "llama3");
  const auto a = WeightStore::open(f32.path()), b = WeightStore::open(bf16.path()),
             c = WeightStore::open(f16.path());
  for (const auto& name : a.names()) {
    const auto x = to_float_vector(a.get(name));
    const auto y = to_float_vector(b.get(name));
    const auto z = to_float_vector(c.get(name));
    ASSERT_EQ(x.size(), y.size());
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_EQ(bf16_to_float(float_to_bf16(x[i])), y[i]) << name << "[" << i << "]";
      ASSERT_EQ(f16_to_float(float_to_f16(x[i])), z[i]) << name << "[" << i << "]";
    }
  }
}

TEST(RandomModel, InitScales) {
  TempDir dir;
  ModelShape s = shape_preset("small", Arch::Qwen2);
  s.vocab = 1024;
  ModelConfig cfg = make_config(Arch::Qwen2, s);
  write_random_model(dir.path(), cfg, 5, DType::F32, "{}", "raw");
  const auto ws = WeightStore::open(dir.path());
  const auto gate = to_float_vector(ws.get("model.layers.0.mlp.gate_proj.weight"));  // fan_in 256
  EXPECT_NEAR(mean(gate), 0.0, 0.002);
  EXPECT_NEAR(stddev(gate), 1.0 / 16, 0.002);
  const auto down = to_float_vector(ws.get("model.layers.3.mlp.down_proj.weight"));  // fan_in 512
  EXPECT_NEAR(stddev(down), 1.0 / std::sqrt(512.0), 0.002);
  const auto norm = to_float_vector(ws.get("model.norm.weight"));
  EXPECT_NEAR(mean(norm), 1.0, 0.02);
  EXPECT_GT(stddev(norm), 0.01);
  const auto emb = to_float_vector(ws.get("model.embed_tokens.weight"));
  EXPECT_NEAR(stddev(emb), 3.0 / 16, 0.005);
  const auto bias = to_float_vector(ws.get("model.layers.0.self_attn.k_proj.bias"));
  EXPECT_LT(stddev(bias), 0.2);
  for (float x : gate) ASSERT_LT(std::fabs(x), 3.5f / 16);  // tails are bounded
}

TEST(RandomModel, Errors) {
  TempDir dir;
  expect_error(
      [&] {
        write_random_model(dir.path(), tiny_config(Arch::Llama), 1, DType::BF16, "{}", "alpaca");
      },
      {"'alpaca'", "chatml, llama3, raw"});
  EXPECT_FALSE(std::filesystem::exists(dir / "config.json"));  // nothing half-written
}

TEST(ShardModelDir, ShardsLoadTheSameTensors) {
  TempDir single, sharded;
  const ModelConfig cfg = tiny_config(Arch::Qwen2);
  write_random_model(single.path(), cfg, 11, DType::BF16, kTokenizerJson, "chatml");
  write_random_model(sharded.path(), cfg, 11, DType::BF16, kTokenizerJson, "chatml");
  shard_model_dir(sharded.path(), 3);
  EXPECT_FALSE(std::filesystem::exists(sharded / "model.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(sharded / "model.safetensors.index.json"));
  for (const char* shard : {"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                            "model-00003-of-00003.safetensors"}) {
    ASSERT_TRUE(std::filesystem::exists(sharded / shard)) << shard;
    EXPECT_FALSE(SafetensorsFile::open(sharded / shard)->tensors().empty()) << shard;
  }
  const auto a = WeightStore::open(single.path());
  const auto b = WeightStore::open(sharded.path());
  ASSERT_EQ(a.names(), b.names());
  EXPECT_EQ(a.total_bytes(), b.total_bytes());
  for (const auto& name : a.names()) {
    const auto& x = a.get(name);
    const auto& y = b.get(name);
    ASSERT_EQ(x.nbytes, y.nbytes);
    EXPECT_EQ(0, std::memcmp(x.data, y.data, x.nbytes)) << name;
    EXPECT_EQ(x.shape, y.shape);
  }
  const json index = json::parse(read_file(sharded / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], a.total_bytes());
  EXPECT_EQ(index["weight_map"].size(), a.names().size());
}

TEST(ShardModelDir, ManyShardsAndErrors) {
  TempDir dir;
  write_random_model(dir.path(), tiny_config(Arch::Mistral), 2, DType::BF16, "{}", "raw");
  const size_t n = WeightStore::open(dir.path()).names().size();
  expect_error([&] { shard_model_dir(dir.path(), 0); }, {"0 shards"});
  expect_error([&] { shard_model_dir(dir.path(), static_cast<int>(n) + 1); }, {"shards"});
  shard_model_dir(dir.path(), static_cast<int>(n));  // one tensor per shard
  EXPECT_EQ(WeightStore::open(dir.path()).names().size(), n);
  expect_error([&] { shard_model_dir(dir.path(), 2); }, {"model.safetensors"});
}

}  // namespace
}  // namespace dapx
