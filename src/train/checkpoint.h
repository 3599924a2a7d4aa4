#pragma once
// Training checkpoints as ordinary Hugging Face directories (config.json, model.safetensors,
// tokenizer files, generation_config.json) that `generate`, `eval` and any HF tool load as
// they are, plus train_state.json: the recipe and history of every training part.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/model.h"
#include "io/safetensors.h"

namespace dapx {

// The text of the model directory's tokenizer.json. A training run reads it once, at its
// start, so the directory it started from may be moved or replaced while it trains.
std::string read_tokenizer_json(const LoadedModel& model);

// Writes the model's current weights (in `dtype`) with its config and `tokenizer_json` into
// `dir`. Files are written into a scratch folder inside `dir` first and then renamed over the
// old ones, so a run killed while saving keeps the previous checkpoint whole.
void save_checkpoint(const LoadedModel& model, const std::string& tokenizer_json,
                     const std::filesystem::path& dir, DType dtype,
                     const nlohmann::json& train_state);

// DIR/train_state.json, or an empty history when there is none (a model not trained by dapx).
nlohmann::json load_train_state(const std::filesystem::path& dir);

}  // namespace dapx
