#pragma once
// Random-weight Hugging Face model directories: the shapes of real models (or tiny ones for
// tests) with deterministic random weights. Used by `dapx make-model` and by tests.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "io/safetensors.h"

namespace dapx {

struct ModelShape {
  std::string name;
  int hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, vocab = 0;
  int max_pos = 4096;
  double rope_theta = 10000.0;
  bool tie = false;
  std::optional<RopeScaling> rope_scaling;  // llama-3.2-1b (and tiny/small Llama) use llama3
  double rms_norm_eps = 1e-6;
};

// Presets: "tiny", "small", "qwen2.5-0.5b", "qwen2.5-1.5b", "llama-3.2-1b", "qwen3-0.6b", and
// the shapes of the trained default pair, "train-target" and "train-draft".
// tiny/small take the vocabulary size of the arch's real tokenizer (Qwen: 151936, Llama and
// Mistral: 128256); callers pairing them with another tokenizer set `vocab` themselves.
// Unknown names throw dapx::Error listing the presets.
ModelShape shape_preset(const std::string& name, Arch arch);
std::vector<std::string> shape_preset_names();

// The validated config for `shape` (Qwen2 -> qkv_bias, Qwen3 -> qk_norm). bos/eos ids are
// left unset (-1 / empty): the caller picks them from its tokenizer.
ModelConfig make_config(Arch arch, const ModelShape& shape);

// Every weight an HF checkpoint of `cfg` holds, with its HF name and shape, in name order.
std::vector<TensorSpec> expected_tensors(const ModelConfig& cfg, DType dtype = DType::BF16);

// Writes config.json, generation_config.json, tokenizer.json (verbatim), tokenizer_config.json
// (chat_template for "chatml" | "llama3"; none for "raw") and model.safetensors with random
// weights that depend only on `seed` (bit-identical across platforms and thread counts).
// Scales keep a random model's activations O(1) and its logits spread (std ~3), so greedy
// decoding is not dominated by ties or rounding.
void write_random_model(const std::filesystem::path& out_dir, const ModelConfig& cfg, uint64_t seed,
                        DType dtype, const std::string& tokenizer_json,
                        const std::string& chat_format);

// The same directory with weights from `produce` (called once per tensor of
// expected_tensors(cfg, dtype), in name order, to fill its bytes): e.g. a training checkpoint.
void write_model_dir(
    const std::filesystem::path& out_dir, const ModelConfig& cfg, DType dtype,
    const std::string& tokenizer_json, const std::string& chat_format,
    const std::function<void(const TensorSpec& spec, std::vector<std::byte>& out)>& produce);

// Rewrites DIR/model.safetensors as model-0000k-of-0000n.safetensors shards (balanced by
// bytes, whole tensors) plus model.safetensors.index.json, and removes model.safetensors.
void shard_model_dir(const std::filesystem::path& dir, int num_shards);

}  // namespace dapx
