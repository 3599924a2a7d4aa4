#pragma once
// A Hugging Face model written as a GGUF file, laid out as llama.cpp's converter lays it out, so
// that llama.cpp reads it and dapx reads it back: general.* and `{arch}.*` keys from the config,
// tensors under llama.cpp's names (the q/k rows of a `llama` file permuted for its RoPE), llama3
// RoPE scaling as rope_freqs.weight.
#include <filesystem>
#include <string>

#include "io/gguf.h"
#include "io/model_config.h"
#include "io/safetensors.h"

namespace dapx {

// The general.* and `{arch}.*` keys of `config` (general.name = `name`).
GgufMetadataList gguf_model_metadata(const ModelConfig& config, const std::string& name);

// Writes `weights` (an HF model's, F32/F16/BF16) to `out`: matrices in `type` (F32, F16, BF16,
// Q8_0 or Q4_K; a matrix whose rows are not whole blocks falls back from Q4_K to Q8_0 and from
// Q8_0 to F16),
// vectors (norms, biases) in F32, as llama.cpp does. `tokenizer` (the tokenizer's keys) follows
// the model's keys. Throws dapx::Error naming a tensor that has no GGUF name.
void write_gguf_model(const WeightStore& weights, const ModelConfig& config,
                      const std::string& name, const GgufMetadataList& tokenizer,
                      const std::filesystem::path& out, GgmlType type);

}  // namespace dapx
