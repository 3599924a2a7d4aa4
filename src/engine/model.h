#pragma once
// A Hugging Face model directory loaded for inference: config, weights, tokenizer, chat format.
#include <filesystem>
#include <memory>

#include "io/gguf.h"
#include "io/model_config.h"
#include "io/safetensors.h"
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
