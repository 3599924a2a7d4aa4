#pragma once
// A Hugging Face model directory loaded for inference: config, weights, tokenizer, chat format.
#include <filesystem>
#include <memory>

#include "io/gguf.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "kv/prefix_cache.h"
#include "model/transformer.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace dapx {

struct LoadedModel {
  std::filesystem::path dir;  // the Hugging Face directory, or the .gguf file
  ModelConfig config;
  Tokenizer tokenizer;
  ChatFormat chat_format;
  std::shared_ptr<const WeightStore> weights;
  Transformer transformer;
  std::shared_ptr<const GgufFile> gguf;  // the file, when the model came from one

  // `path`: a Hugging Face directory (config.json, *.safetensors, tokenizer.json) or a GGUF
  // file (llama, qwen2, qwen3; its tokenizer and chat template from the metadata). Errors name
  // the path and what is missing or wrong.
  static std::unique_ptr<LoadedModel> load(const std::filesystem::path& path,
                                           const ComputeOptions& opts);
  // The tokenizer as a Hugging Face tokenizer.json (the file's text, or made from GGUF metadata).
  std::string tokenizer_json() const;
};

// What this model's K/V depend on, as a string: its weights (config, every tensor's name, shape,
// dtype and first and last 256 bytes), the compute dtype, int8 weights, the prefill GEMM, the
// KV dtype and the prefill chunk. Prefix-cache blocks on disk are read back only by a model of
// the same identity.
std::string kv_identity(const LoadedModel& m);
// Attaches `dir` (created if needed) to `cache` as its disk, for the blocks of model `m`.
void attach_prefix_disk(PrefixCache& cache, const LoadedModel& m, const std::filesystem::path& dir);

// Whether `path` is a GGUF file (a regular file starting with the magic "GGUF").
bool is_gguf_file(const std::filesystem::path& path);
// The config and the tokenizer of a model directory or GGUF file, without its weights.
ModelConfig load_model_config(const std::filesystem::path& path);
Tokenizer load_model_tokenizer(const std::filesystem::path& path);

// Draft-based methods need the draft to share the target's tokenizer: throws naming both
// directories when the vocabularies differ.
void check_same_tokenizer(const LoadedModel& target, const LoadedModel& draft);

// Parses "bf16"/"bfloat16"/"f32"/"float32".
at::ScalarType parse_compute_dtype(const std::string& name);

}  // namespace dapx
