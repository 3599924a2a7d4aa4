#pragma once
// A Hugging Face model directory loaded for inference: config, weights, tokenizer, chat format.
#include <filesystem>
#include <memory>

#include "io/model_config.h"
#include "io/safetensors.h"
#include "model/transformer.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace dapx {

struct LoadedModel {
  std::filesystem::path dir;
  ModelConfig config;
  Tokenizer tokenizer;
  ChatFormat chat_format;
  std::shared_ptr<const WeightStore> weights;
  Transformer transformer;

  // Errors name the directory and what is missing or wrong.
  static std::unique_ptr<LoadedModel> load(const std::filesystem::path& dir,
                                           const ComputeOptions& opts);
};

// Draft-based methods need the draft to share the target's tokenizer: throws naming both
// directories when the vocabularies differ.
void check_same_tokenizer(const LoadedModel& target, const LoadedModel& draft);

// Parses "bf16"/"bfloat16"/"f32"/"float32".
at::ScalarType parse_compute_dtype(const std::string& name);

}  // namespace dapx
