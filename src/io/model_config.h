#pragma once
// Hugging Face config.json (+ generation_config.json) -> ModelConfig for the Llama family.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace dapx {

enum class Arch { Llama, Qwen2, Qwen3, Mistral };

// "LlamaForCausalLM" -> Arch::Llama etc.; throws dapx::Error naming the unknown architecture.
Arch arch_from_hf_name(const std::string& name);
std::string hf_name(Arch arch);
// "llama", "qwen2", "qwen3", "mistral" (the CLI's --arch spelling).
Arch arch_from_short_name(const std::string& name);
std::string short_name(Arch arch);

// rope_scaling {"rope_type"|"type": "llama3", factor, low_freq_factor, high_freq_factor,
// original_max_position_embeddings}. Only "llama3" (and "default"/absent) are supported.
struct RopeScaling {
  std::string type = "llama3";
  double factor = 8.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int original_max_position_embeddings = 8192;
};

struct ModelConfig {
  Arch arch = Arch::Llama;
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;    // num_hidden_layers
  int num_heads = 0;     // num_attention_heads
  int num_kv_heads = 0;  // num_key_value_heads (defaults to num_heads)
  int head_dim = 0;      // explicit head_dim, else hidden_size / num_heads
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  int max_position_embeddings = 2048;  // the context dapx computes exactly (see sliding_window)
  // Sliding-window attention (Mistral v0.1: 4096; 0: none, or Qwen2's use_sliding_window false).
  // dapx attends fully causally, which equals the window's attention while every position is
  // inside the window, so a window shorter than max_position_embeddings limits the context to it
  // (max_position_embeddings is lowered) instead of giving other logits than the model's.
  int sliding_window = 0;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // Qwen2: bias on q/k/v projections
  bool qk_norm = false;   // Qwen3: per-head RMSNorm on q and k
  std::optional<RopeScaling> rope_scaling;
  int bos_token_id = -1;
  std::vector<int> eos_token_ids;  // config.json and generation_config.json, deduplicated
  std::string torch_dtype = "bfloat16";

  int group_size() const { return num_heads / num_kv_heads; }

  // Parses and validates (positive sizes, heads divisible by kv heads, ...). Errors name
  // the field. `source` names the file in messages.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& source = "config.json");
  // Reads DIR/config.json and, when present, DIR/generation_config.json (eos ids).
  static ModelConfig load(const std::filesystem::path& model_dir);
  nlohmann::json to_json() const;  // HF-style config.json content
};

// Field-by-field equality (used by round-trip tests and config comparisons).
bool operator==(const RopeScaling& a, const RopeScaling& b);
bool operator==(const ModelConfig& a, const ModelConfig& b);
inline bool operator!=(const ModelConfig& a, const ModelConfig& b) { return !(a == b); }

}  // namespace dapx
