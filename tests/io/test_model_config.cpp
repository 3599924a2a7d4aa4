// HF config.json parsing for the four supported architectures, validation errors, round trip.
#include <gtest/gtest.h>

#include "error_message.h"
#include "io/model_config.h"
#include "temp_dir.h"
#include "util/error.h"

namespace dapx {
namespace {

using nlohmann::json;
using test::TempDir;
using test::write_file;

using test::expect_error;

// Modelled on the published config.json files of the real models.
const char* kQwen25_05B = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
  "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24,
  "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
  "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
  "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.40.1", "use_cache": true, "use_sliding_window": false,
  "vocab_size": 151936})";

const char* kLlama32_1B = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "head_dim": 64,
  "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
  "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16,
  "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "use_cache": true, "vocab_size": 128256})";

const char* kQwen3_06B = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
  "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
  "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
  "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null,
  "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_cache": true,
  "use_sliding_window": false, "vocab_size": 151936})";

const char* kMistral7B = R"({
  "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
  "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
  "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_cache": true,
  "vocab_size": 32000})";

TEST(ModelConfig, Qwen25) {
  const auto c = ModelConfig::from_json(json::parse(kQwen25_05B));
  EXPECT_EQ(c.arch, Arch::Qwen2);
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_EQ(c.hidden_size, 896);
  EXPECT_EQ(c.intermediate_size, 4864);
  EXPECT_EQ(c.num_layers, 24);
  EXPECT_EQ(c.num_heads, 14);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.group_size(), 7);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.max_position_embeddings, 32768);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_FALSE(c.rope_scaling.has_value());
  EXPECT_EQ(c.bos_token_id, 151643);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{151643});
  EXPECT_EQ(c.torch_dtype, "bfloat16");
}

TEST(ModelConfig, Llama32WithLlama3RopeScaling) {
  const auto c = ModelConfig::from_json(json::parse(kLlama32_1B));
  EXPECT_EQ(c.arch, Arch::Llama);
  EXPECT_EQ(c.num_heads, 32);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_FALSE(c.qk_norm);
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_EQ(c.rope_scaling->type, "llama3");
  EXPECT_EQ(c.rope_scaling->factor, 32.0);
  EXPECT_EQ(c.rope_scaling->low_freq_factor, 1.0);
  EXPECT_EQ(c.rope_scaling->high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling->original_max_position_embeddings, 8192);
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int>{128001, 128008, 128009}));
}

TEST(ModelConfig, Qwen3ExplicitHeadDim) {
  const auto c = ModelConfig::from_json(json::parse(kQwen3_06B));
  EXPECT_EQ(c.arch, Arch::Qwen3);
  EXPECT_EQ(c.hidden_size, 1024);
  EXPECT_EQ(c.num_heads, 16);
  EXPECT_EQ(c.head_dim, 128);  // not hidden / heads = 64
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{151645});
}

TEST(ModelConfig, Mistral) {
  const auto c = ModelConfig::from_json(json::parse(kMistral7B));
  EXPECT_EQ(c.arch, Arch::Mistral);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{2});
  // Its 4096-token sliding window is not implemented: the context is the window, where full
  // causal attention is the model's own; the window is written back.
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_EQ(c.max_position_embeddings, 4096);
  EXPECT_EQ(ModelConfig::from_json(c.to_json()), c);
}

TEST(ModelConfig, ASlidingWindowOnlyLimitsTheContextWhereItApplies) {
  json j = json::parse(kMistral7B);
  j["sliding_window"] = nullptr;  // Mistral v0.2 on
  EXPECT_EQ(ModelConfig::from_json(j).max_position_embeddings, 32768);
  j["sliding_window"] = 4096;
  j["use_sliding_window"] = false;  // Qwen2's switch
  EXPECT_EQ(ModelConfig::from_json(j).max_position_embeddings, 32768);
  EXPECT_EQ(ModelConfig::from_json(j).sliding_window, 0);
  j["use_sliding_window"] = true;
  j["sliding_window"] = 65536;  // longer than the context: no limit
  EXPECT_EQ(ModelConfig::from_json(j).max_position_embeddings, 32768);
  j["sliding_window"] = -1;
  EXPECT_THROW(ModelConfig::from_json(j), Error);
}

TEST(ModelConfig, Defaults) {
  json j = json::parse(kMistral7B);
  for (const char* k : {"num_key_value_heads", "rope_theta", "tie_word_embeddings", "bos_token_id",
                        "eos_token_id"}) {
    j.erase(k);
  }
  j["head_dim"] = nullptr;  // some configs write null
  const auto c = ModelConfig::from_json(j);
  EXPECT_EQ(c.num_kv_heads, 32);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, -1);
  EXPECT_TRUE(c.eos_token_ids.empty());

  json l = json::parse(kLlama32_1B);
  l["attention_bias"] = true;
  l["rope_scaling"] = {{"type", "default"}};
  const auto cl = ModelConfig::from_json(l);
  EXPECT_TRUE(cl.qkv_bias);
  EXPECT_FALSE(cl.rope_scaling.has_value());
  l["rope_scaling"] = {{"type", "llama3"},
                       {"factor", 8},
                       {"low_freq_factor", 1},
                       {"high_freq_factor", 4},
                       {"original_max_position_embeddings", 8192}};
  EXPECT_EQ(ModelConfig::from_json(l).rope_scaling->factor, 8.0);  // older "type" spelling
}

TEST(ModelConfig, UnknownArchitecture) {
  json j = json::parse(kQwen25_05B);
  j["architectures"] = {"GPT2LMHeadModel"};
  expect_error([&] { ModelConfig::from_json(j); },
               {"unknown architecture 'GPT2LMHeadModel' in config.json; supported: "
                "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM"});
  j.erase("architectures");
  expect_error([&] { ModelConfig::from_json(j, "/m/config.json"); },
               {"/m/config.json", "missing required field 'architectures'"});
  j["architectures"] = json::array();
  expect_error([&] { ModelConfig::from_json(j); }, {"'architectures'"});
}

TEST(ModelConfig, MissingAndInvalidFields) {
  json j = json::parse(kQwen25_05B);
  j.erase("hidden_size");
  expect_error([&] { ModelConfig::from_json(j); },
               {"config.json", "missing required field 'hidden_size'"});
  for (const char* field : {"vocab_size", "intermediate_size", "num_hidden_layers",
                            "num_attention_heads", "num_key_value_heads"}) {
    json k = json::parse(kQwen25_05B);
    k[field] = 0;
    expect_error([&] { ModelConfig::from_json(k); }, {std::string("'") + field + "'", "positive"});
    k[field] = "14";
    expect_error([&] { ModelConfig::from_json(k); }, {std::string("'") + field + "'"});
  }
  json big = json::parse(kQwen25_05B);
  big["hidden_size"] = int64_t{1} << 31;  // a size too large, not a negative one
  expect_error([&] { ModelConfig::from_json(big); },
               {"'hidden_size'", "2147483648", "larger than dapx supports"});
  json k = json::parse(kQwen25_05B);
  k["rms_norm_eps"] = -1;
  expect_error([&] { ModelConfig::from_json(k); }, {"'rms_norm_eps'"});
  k = json::parse(kQwen25_05B);
  k["tie_word_embeddings"] = "yes";
  expect_error([&] { ModelConfig::from_json(k); }, {"'tie_word_embeddings'"});
  k = json::parse(kQwen25_05B);
  k["eos_token_id"] = {1, "x"};
  expect_error([&] { ModelConfig::from_json(k); }, {"'eos_token_id'"});
  expect_error([&] { ModelConfig::from_json(json::array()); }, {"config.json"});
}

TEST(ModelConfig, HiddenActMustBeSilu) {
  json j = json::parse(kQwen25_05B);
  for (const char* act : {"silu", "swish"}) {
    j["hidden_act"] = act;
    EXPECT_NO_THROW(ModelConfig::from_json(j)) << act;
  }
  j.erase("hidden_act");  // absent: the architectures' default, SiLU
  EXPECT_NO_THROW(ModelConfig::from_json(j));
  j["hidden_act"] = "gelu_pytorch_tanh";
  expect_error([&] { ModelConfig::from_json(j); },
               {"config.json", "'hidden_act' is \"gelu_pytorch_tanh\"", "only silu"});
  j["hidden_act"] = 3;
  expect_error([&] { ModelConfig::from_json(j); }, {"'hidden_act' is 3"});
}

TEST(ModelConfig, TokenIdsOutsideTheVocabulary) {
  json j = json::parse(kQwen25_05B);  // vocab_size 151936
  j["eos_token_id"] = 151935;         // the last id is fine
  EXPECT_NO_THROW(ModelConfig::from_json(j));
  j["eos_token_id"] = 151936;
  expect_error([&] { ModelConfig::from_json(j); },
               {"'eos_token_id'", "151936", "outside the vocabulary (vocab_size 151936)"});
  j["eos_token_id"] = {151643, 200000};
  expect_error([&] { ModelConfig::from_json(j); }, {"'eos_token_id'", "200000"});
  j["eos_token_id"] = 151643;
  j["bos_token_id"] = 151936;
  expect_error([&] { ModelConfig::from_json(j); }, {"'bos_token_id'", "outside the vocabulary"});
  // generation_config.json's ids too, naming that file
  TempDir dir;
  write_file(dir / "config.json", kQwen25_05B);
  write_file(dir / "generation_config.json", R"({"eos_token_id": [151643, 999999]})");
  expect_error([&] { ModelConfig::load(dir.path()); },
               {(dir / "generation_config.json").string(), "999999", "outside the vocabulary"});
}

TEST(ModelConfig, HeadsNotDivisible) {
  json j = json::parse(kQwen25_05B);
  j["num_key_value_heads"] = 4;
  expect_error([&] { ModelConfig::from_json(j); },
               {"num_attention_heads (14) is not divisible by num_key_value_heads (4)"});
  j = json::parse(kMistral7B);
  j["num_attention_heads"] = 24;  // 4096 / 24 is not whole and no head_dim given
  j["num_key_value_heads"] = 8;
  expect_error([&] { ModelConfig::from_json(j); }, {"hidden_size", "head_dim"});
}

TEST(ModelConfig, UnsupportedRopeType) {
  json j = json::parse(kLlama32_1B);
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  expect_error([&] { ModelConfig::from_json(j); },
               {"config.json", "unsupported rope_scaling type 'yarn'"});
  j["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
  expect_error([&] { ModelConfig::from_json(j); }, {"'dynamic'"});
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 32.0}};
  expect_error([&] { ModelConfig::from_json(j); }, {"rope_scaling", "low_freq_factor"});
}

TEST(ModelConfig, ToJsonRoundTrip) {
  for (const char* text : {kQwen25_05B, kLlama32_1B, kQwen3_06B, kMistral7B}) {
    const auto c = ModelConfig::from_json(json::parse(text));
    const json out = c.to_json();
    const auto back = ModelConfig::from_json(json::parse(out.dump()));
    EXPECT_TRUE(back == c) << out.dump(2);
    EXPECT_EQ(back.to_json(), out);
  }
  ModelConfig odd = ModelConfig::from_json(json::parse(kMistral7B));
  odd.rms_norm_eps = 1.2345678901234567e-7;  // doubles must survive exactly
  odd.eos_token_ids = {5, 7};
  odd.qkv_bias = true;
  EXPECT_TRUE(ModelConfig::from_json(json::parse(odd.to_json().dump())) == odd);
}

TEST(ModelConfig, ArchNames) {
  for (Arch a : {Arch::Llama, Arch::Qwen2, Arch::Qwen3, Arch::Mistral}) {
    EXPECT_EQ(arch_from_hf_name(hf_name(a)), a);
    EXPECT_EQ(arch_from_short_name(short_name(a)), a);
  }
  EXPECT_EQ(short_name(Arch::Qwen3), "qwen3");
  expect_error([] { arch_from_short_name("gpt2"); }, {"'gpt2'", "llama, qwen2, qwen3, mistral"});
  expect_error([] { arch_from_hf_name("X"); }, {"'X'", "LlamaForCausalLM"});
}

TEST(ModelConfig, LoadMergesGenerationConfig) {
  TempDir dir;
  json j = json::parse(kLlama32_1B);
  j["eos_token_id"] = 128001;
  write_file(dir / "config.json", j.dump());
  auto c = ModelConfig::load(dir.path());
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{128001});
  write_file(dir / "generation_config.json",
             R"({"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]})");
  c = ModelConfig::load(dir.path());
  EXPECT_EQ(c.eos_token_ids, (std::vector<int>{128001, 128008, 128009}));
}

TEST(ModelConfig, LoadErrorsNameThePath) {
  TempDir dir;
  expect_error([&] { ModelConfig::load(dir.path()); }, {"config.json", dir.path().string()});
  write_file(dir / "config.json", "{\"architectures\": [");
  expect_error([&] { ModelConfig::load(dir.path()); },
               {"invalid JSON", (dir / "config.json").string()});
  write_file(dir / "config.json", kQwen25_05B);
  write_file(dir / "generation_config.json", "{oops");
  expect_error([&] { ModelConfig::load(dir.path()); },
               {"invalid JSON", (dir / "generation_config.json").string()});
  json j = json::parse(kQwen25_05B);
  j.erase("vocab_size");
  write_file(dir / "config.json", j.dump());
  std::filesystem::remove(dir / "generation_config.json");
  expect_error([&] { ModelConfig::load(dir.path()); },
               {(dir / "config.json").string(), "'vocab_size'"});
}

}  // namespace
}  // namespace dapx
