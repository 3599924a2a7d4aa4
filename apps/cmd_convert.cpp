// dapx convert: a model between Hugging Face directories and GGUF files, and between weight
// types. HF -> GGUF is written as llama.cpp's converter writes it (so llama.cpp reads it too);
// GGUF -> HF dequantises into the chosen dtype; HF -> HF changes the dtype and carries the
// training history over.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "common.h"
#include "io/gguf_export.h"
#include "io/gguf_model.h"
#include "io/gguf_quant.h"
#include "io/gguf_weights.h"
#include "tokenizer/gguf_tokenizer.h"
#include "train/checkpoint.h"
#include "util/error.h"

namespace dapx::cli {
namespace {

namespace fs = std::filesystem;

struct Flags {
  std::string from, to, dtype = "bf16";
};

nlohmann::json read_json_or_null(const fs::path& path) {
  if (!fs::exists(path)) return nullptr;
  try {
    return nlohmann::json::parse(read_file(path.string()));
  } catch (const nlohmann::json::exception& e) {
    throw Error("'" + path.string() + "' is not valid JSON: " + e.what());
  }
}

bool ends_with_gguf(const std::string& path) {
  return path.size() >= 5 && path.compare(path.size() - 5, 5, ".gguf") == 0;
}

// To a GGUF file, from an HF directory or another GGUF file.
void to_gguf(const Flags& f) {
  const GgmlType type = ggml_type_from_name(f.dtype);
  const fs::path from(f.from), tmp = f.to + ".partial";
  std::string name = from.filename().string();
  if (name.empty()) name = from.parent_path().filename().string();
  if (is_gguf_file(from)) {
    std::shared_ptr<const GgufFile> file = GgufFile::open(from);
    const ModelConfig cfg = gguf_model_config(*file);
    GgufMetadataList tokenizer;
    for (const auto& [key, value] : file->metadata().entries())
      if (key.rfind("tokenizer.", 0) == 0) tokenizer.emplace_back(key, value);
    const WeightStore weights = gguf_weight_store(file, cfg, DType::F32);
    write_gguf_model(weights, cfg, fs::path(name).stem().string(), tokenizer, tmp, type);
  } else {
    const ModelConfig cfg = load_model_config(from);
    const nlohmann::json tok = read_json_or_null(from / "tokenizer.json");
    if (tok.is_null()) throw Error("no tokenizer.json in " + from.string());
    const GgufMetadataList tokenizer =
        gguf_tokenizer_metadata(tok, read_json_or_null(from / "tokenizer_config.json"),
                                read_json_or_null(from / "config.json"));
    const WeightStore weights = WeightStore::open(from);
    write_gguf_model(weights, cfg, name, tokenizer, tmp, type);
  }
  fs::rename(tmp, f.to);
  std::cerr << "wrote " << f.to << " (" << ggml_type_name(type) << ")\n";
}

// To an HF directory, from an HF directory (another dtype) or a GGUF file (dequantised).
void to_directory(const Flags& f) {
  if (f.dtype != "f32" && f.dtype != "f16" && f.dtype != "bf16")
    throw Error("--dtype " + f.dtype +
                ": a model directory holds f32, f16 or bf16 weights "
                "(q8_0 and q4_k are for .gguf files)");
  ComputeOptions opts;
  opts.weight_dtype = at::kFloat;  // exact for every stored type
  const auto model = LoadedModel::load(f.from, opts);
  const DType d = f.dtype == "f32" ? DType::F32 : f.dtype == "f16" ? DType::F16 : DType::BF16;
  const nlohmann::json history =
      model->gguf ? nlohmann::json{{"parts", nlohmann::json::array()}} : load_train_state(f.from);
  save_checkpoint(*model, model->tokenizer_json(), f.to, d, history);
  std::cerr << "wrote " << f.to << " (" << f.dtype << ")\n";
}

void run(const Flags& f) {
  std::error_code ec;
  if (fs::weakly_canonical(f.from, ec) == fs::weakly_canonical(f.to, ec))
    throw Error("convert: --to must differ from --from");
  if (ends_with_gguf(f.to))
    to_gguf(f);
  else
    to_directory(f);
}

}  // namespace

void register_convert(CLI::App& app) {
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "convert",
      "Convert a model between a Hugging Face directory and a GGUF file (llama.cpp's layout), "
      "or to another weight type");
  cmd->add_option("--from,--model,-m", f->from, "Model to read: an HF directory or a .gguf file")
      ->required();
  cmd->add_option("--to,--out,-o", f->to,
                  "Where to write: a directory (HF safetensors) or a file ending in .gguf")
      ->required();
  cmd->add_option("--type,--dtype", f->dtype,
                  "Weight type: f32, f16 or bf16 (default); for a .gguf file also q8_0 or q4_k "
                  "(rows that are not whole blocks fall back to q8_0, then f16; norms and biases "
                  "stay f32, as llama.cpp writes them)")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0", "q4_k"}));
  cmd->callback([f] { run(*f); });
}

}  // namespace dapx::cli
