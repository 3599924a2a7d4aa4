#include "engine/model.h"

#include <cstdio>
#include <fstream>

#include "io/gguf_model.h"
#include "io/gguf_weights.h"
#include "kv/prefix_disk.h"
#include "tokenizer/gguf_tokenizer.h"
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

void check_path(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path))
    throw Error("model directory '" + path.string() + "' does not exist");
  if (!std::filesystem::is_directory(path) && !is_gguf_file(path))
    throw Error("'" + path.string() +
                "' is neither a model directory nor a GGUF file: pass the model directory (the "
                "one with config.json, *.safetensors and tokenizer.json) or a .gguf file");
}

void check_vocab(const Tokenizer& tok, const ModelConfig& cfg, const std::string& where) {
  if (tok.vocab_size() > cfg.vocab_size)
    throw Error("the tokenizer of " + where + " has " + std::to_string(tok.vocab_size()) +
                " tokens but the model's vocab_size is " + std::to_string(cfg.vocab_size));
}

}  // namespace

bool is_gguf_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::string(magic, 4) == "GGUF";
}

ModelConfig load_model_config(const std::filesystem::path& path) {
  check_path(path);
  return is_gguf_file(path) ? gguf_model_config(*GgufFile::open(path)) : ModelConfig::load(path);
}

Tokenizer load_model_tokenizer(const std::filesystem::path& path) {
  check_path(path);
  return is_gguf_file(path) ? tokenizer_from_gguf(GgufFile::open(path)->metadata())
                            : load_tokenizer(path);
}

std::unique_ptr<LoadedModel> LoadedModel::load(const std::filesystem::path& path,
                                               const ComputeOptions& opts) {
  check_path(path);
  if (is_gguf_file(path)) {
    std::shared_ptr<const GgufFile> file = GgufFile::open(path);
    ModelConfig cfg = gguf_model_config(*file);
    Tokenizer tok = tokenizer_from_gguf(file->metadata());
    check_vocab(tok, cfg, path.string());
    // Quantised tensors become the compute dtype's (f32 keeps every type exact).
    const DType dequant = opts.weight_dtype == at::kFloat ? DType::F32 : DType::BF16;
    // With --weights int8 the quantised projections and head become int8 at once (Q8_0 as it
    // is, its blocks of 32; other types quantised again like an HF model's), without a
    // dequantised copy.
    auto weights = std::make_shared<const WeightStore>(
        gguf_weight_store(file, cfg, dequant, opts.int8_weights && opts.device.is_cpu()));
    Transformer transformer(cfg, weights, opts);
    return std::unique_ptr<LoadedModel>(new LoadedModel{path, cfg, std::move(tok),
                                                        chat_format_from_gguf(file->metadata()),
                                                        weights, std::move(transformer), file});
  }
  ModelConfig cfg = ModelConfig::load(path);
  Tokenizer tok = load_tokenizer(path);
  check_vocab(tok, cfg, "tokenizer.json in " + path.string());
  auto weights = open_weights(path);
  Transformer transformer(cfg, weights, opts);
  return std::unique_ptr<LoadedModel>(new LoadedModel{path, cfg, std::move(tok),
                                                      detect_chat_format(path), weights,
                                                      std::move(transformer), nullptr});
}

std::string kv_identity(const LoadedModel& m) {
  uint64_t h = 1469598103934665603ull;
  const auto mix = [&h](const void* p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      h ^= static_cast<const unsigned char*>(p)[i];
      h *= 1099511628211ull;
    }
  };
  const std::string config = m.config.to_json().dump();
  mix(config.data(), config.size());
  for (const std::string& name : m.weights->names()) {
    const TensorView& t = m.weights->get(name);
    mix(name.data(), name.size());
    mix(t.shape.data(), t.shape.size() * sizeof(int64_t));
    mix(&t.dtype, sizeof t.dtype);
    const size_t edge = std::min<size_t>(256, t.nbytes);
    if (edge > 0) {
      mix(t.data, edge);
      mix(t.data + t.nbytes - edge, edge);
    }
  }
  for (const auto& [name, q] : m.weights->int8_matrices()) {  // GGUF Q8_0 held as int8
    mix(name.data(), name.size());
    mix(q.shape.data(), q.shape.size() * sizeof(int64_t));
    const auto rows = static_cast<size_t>(q.shape[0]), cols = static_cast<size_t>(q.shape[1]);
    const size_t edge = std::min<size_t>(256, rows * cols);
    mix(q.q, edge);
    mix(q.q + rows * cols - edge, edge);
    mix(q.scales, std::min<size_t>(64, rows) * sizeof(float));
  }
  const ComputeOptions& o = m.transformer.options();
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return std::string("weights ") + hex + " dtype " + c10::toString(o.weight_dtype) +
         (m.transformer.linear_format().int8 ? " int8" : "") + " gemm " +
         c10::toString(m.transformer.linear_format().gemm) + " kv " + c10::toString(o.kv_dtype) +
         " chunk " + std::to_string(o.prefill_chunk) + " device " + o.device.str();
}

void attach_prefix_disk(PrefixCache& cache, const LoadedModel& m,
                        const std::filesystem::path& dir) {
  cache.attach_disk(std::make_unique<PrefixDisk>(dir, kv_identity(m)), m.config.num_layers,
                    m.config.num_kv_heads, m.config.head_dim, m.transformer.options().kv_dtype);
}

std::string LoadedModel::tokenizer_json() const {
  if (gguf) return tokenizer_json_from_gguf(gguf->metadata()).dump();
  std::ifstream in(dir / "tokenizer.json", std::ios::binary);
  if (!in) throw Error("cannot read '" + (dir / "tokenizer.json").string() + "'");
  return std::string(std::istreambuf_iterator<char>(in), {});
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
