#include "train/checkpoint.h"

#include <cstring>
#include <fstream>
#include <map>

#include "io/random_model.h"
#include "util/error.h"

namespace dapx {
namespace {

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read '" + path.string() + "'");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.flush();
  if (!out) throw Error("cannot write '" + path.string() + "'");
}

// Row-major bytes of a weight in `dtype`.
void tensor_bytes(const at::Tensor& t, DType dtype, std::vector<std::byte>& out) {
  const at::Tensor f = t.detach().to(at::kCPU, at::kFloat).contiguous();
  const float* p = f.data_ptr<float>();
  const int64_t n = f.numel();
  if (dtype == DType::F32) {
    out.resize(n * sizeof(float));
    std::memcpy(out.data(), p, out.size());
    return;
  }
  out.resize(n * sizeof(uint16_t));
  auto* h = reinterpret_cast<uint16_t*>(out.data());
  for (int64_t i = 0; i < n; ++i)
    h[i] = dtype == DType::BF16 ? float_to_bf16(p[i]) : float_to_f16(p[i]);
}

}  // namespace

std::string read_tokenizer_json(const LoadedModel& model) { return model.tokenizer_json(); }

void save_checkpoint(const LoadedModel& model, const std::string& tokenizer_json,
                     const std::filesystem::path& dir, DType dtype,
                     const nlohmann::json& train_state) {
  std::map<std::string, at::Tensor> by_name;
  for (const auto& [name, t] : model.transformer.named_parameters()) by_name[name] = t;
  const std::filesystem::path scratch = dir / ".partial";
  std::error_code ec;
  std::filesystem::remove_all(scratch, ec);
  ModelConfig cfg = model.config;
  cfg.torch_dtype = dtype == DType::F32 ? "float32" : dtype == DType::F16 ? "float16" : "bfloat16";
  write_model_dir(scratch, cfg, dtype, tokenizer_json, chat_format_name(model.chat_format),
                  [&](const TensorSpec& spec, std::vector<std::byte>& out) {
                    const auto it = by_name.find(spec.name);
                    if (it == by_name.end())
                      throw Error("checkpoint: the model has no weight '" + spec.name + "'");
                    tensor_bytes(it->second, dtype, out);
                  });
  write_text(scratch / "train_state.json", train_state.dump(2) + "\n");
  for (const auto& entry : std::filesystem::directory_iterator(scratch)) {
    std::filesystem::rename(entry.path(), dir / entry.path().filename(), ec);
    if (ec) throw Error("checkpoint: cannot move " + entry.path().string() + ": " + ec.message());
  }
  std::filesystem::remove(scratch, ec);
}

nlohmann::json load_train_state(const std::filesystem::path& dir) {
  const auto path = dir / "train_state.json";
  if (!std::filesystem::exists(path)) return {{"parts", nlohmann::json::array()}};
  try {
    return nlohmann::json::parse(read_text(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error("'" + path.string() + "' is not valid JSON: " + e.what());
  }
}

}  // namespace dapx
