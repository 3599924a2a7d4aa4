#include "engine/model.h"

#include "util/error.h"

namespace dapx {
namespace {

Tokenizer load_tokenizer(const std::filesystem::path& dir) {
  const auto path = dir / "tokenizer.json";
  if (!std::filesystem::exists(path)) throw Error("no tokenizer.json in " + dir.string());
  return Tokenizer::load(path);
}

std::shared_ptr<const WeightStore> open_weights(const std::filesystem::path& dir) {
  return std::make_shared<const WeightStore>(WeightStore::open(dir));
}

}  // namespace

std::unique_ptr<LoadedModel> LoadedModel::load(const std::filesystem::path& dir,
                                               const ComputeOptions& opts) {
  if (!std::filesystem::exists(dir))
    throw Error("model directory '" + dir.string() + "' does not exist");
  if (!std::filesystem::is_directory(dir))
    throw Error("'" + dir.string() +
                "' is not a directory: pass the model directory (the one with config.json, "
                "*.safetensors and tokenizer.json)");
  ModelConfig cfg = ModelConfig::load(dir);
  Tokenizer tok = load_tokenizer(dir);
  if (tok.vocab_size() > cfg.vocab_size)
    throw Error("tokenizer.json in " + dir.string() + " has " + std::to_string(tok.vocab_size()) +
                " tokens but the model's vocab_size is " + std::to_string(cfg.vocab_size));
  auto weights = open_weights(dir);
  Transformer transformer(cfg, weights, opts);
  return std::unique_ptr<LoadedModel>(new LoadedModel{
      dir, cfg, std::move(tok), detect_chat_format(dir), weights, std::move(transformer)});
}

void check_same_tokenizer(const LoadedModel& target, const LoadedModel& draft) {
  const std::string probe = "The quick brown fox, 12345 <|im_start|> \xE4\xBD\xA0\xE5\xA5\xBD!";
  const bool same_size = target.tokenizer.vocab_size() == draft.tokenizer.vocab_size();
  if (!same_size || target.tokenizer.encode(probe) != draft.tokenizer.encode(probe))
    throw Error("the draft " + draft.dir.string() + " and the target " + target.dir.string() +
                " use different tokenizers (vocabularies of " +
                std::to_string(draft.tokenizer.vocab_size()) + " and " +
                std::to_string(target.tokenizer.vocab_size()) +
                " tokens): a draft must share the target's tokenizer family");
}

at::ScalarType parse_compute_dtype(const std::string& name) {
  if (name == "bf16" || name == "bfloat16") return at::kBFloat16;
  if (name == "f32" || name == "float32") return at::kFloat;
  throw Error("unknown dtype '" + name + "'; use bf16 or f32");
}

}  // namespace dapx
