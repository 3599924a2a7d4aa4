#include "io/random_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "util/error.h"

namespace dapx {

namespace {

using nlohmann::json;

// ---- presets ----

struct Preset {
  const char* name;
  int hidden, intermediate, layers, heads, kv_heads, head_dim;
  int vocab;  // 0: the arch's tokenizer vocabulary
  int max_pos;
  double rope_theta;
  bool tie;
  bool llama3_rope;  // llama3 rope_scaling (llama-3.2-1b; tiny/small only for Arch::Llama)
};

constexpr Preset kPresets[] = {
    {"tiny", 64, 128, 2, 4, 2, 16, 0, 4096, 10000.0, false, true},
    {"small", 256, 512, 4, 8, 2, 32, 0, 32768, 1e6, false, true},
    {"qwen2.5-0.5b", 896, 4864, 24, 14, 2, 64, 151936, 32768, 1e6, true, false},
    {"qwen2.5-1.5b", 1536, 8960, 28, 12, 2, 128, 151936, 32768, 1e6, true, false},
    {"llama-3.2-1b", 2048, 8192, 16, 32, 8, 64, 128256, 131072, 500000.0, true, true},
    {"qwen3-0.6b", 1024, 3072, 28, 16, 8, 128, 151936, 40960, 1e6, true, false},
    // The paper's targets, for speed and memory at 32k-64k on a GPU (random weights): the
    // real models' shapes, the context raised to 128k as with their long-context scaling.
    {"qwen2.5-7b", 3584, 18944, 28, 28, 4, 128, 152064, 131072, 1e6, false, false},
    {"llama-3.1-8b", 4096, 14336, 32, 32, 8, 128, 128256, 131072, 500000.0, false, true},
    // The trained default pair (dapx train; vocab from the trained tokenizer): a ~6M target
    // and a ~7x smaller draft.
    {"train-target", 256, 768, 6, 4, 2, 64, 0, 8192, 10000.0, true, false},
    {"train-draft", 128, 384, 2, 2, 1, 64, 0, 8192, 10000.0, true, false},
};

int tokenizer_vocab(Arch arch) {
  return (arch == Arch::Qwen2 || arch == Arch::Qwen3) ? 151936 : 128256;
}

// ---- deterministic random numbers ----

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// FNV-1a: std::hash is implementation-defined, and the weights must not depend on it.
uint64_t name_hash(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// Approximately standard normal from one 64-bit draw: the sum of four 16-bit uniforms
// (Irwin-Hall), centred and scaled to unit variance. Integer arithmetic plus one multiply, so
// it is fast and bit-identical everywhere (no libm, no std:: distributions); the tails are
// cut at +-3.46, which suits weight init.
inline float normal_from_bits(uint64_t r) {
  const uint32_t sum = static_cast<uint32_t>(r & 0xffff) +
                       static_cast<uint32_t>((r >> 16) & 0xffff) +
                       static_cast<uint32_t>((r >> 32) & 0xffff) + static_cast<uint32_t>(r >> 48);
  constexpr float kScale = 1.7320508075688772f / 65536.0f;  // sqrt(3) / 2^16
  return (static_cast<float>(sum) - 131070.0f) * kScale;
}

// How a tensor's values are drawn: mean + std * normal.
struct Init {
  float mean = 0.0f;
  float std = 0.02f;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Init init_for(const TensorSpec& t, const ModelConfig& cfg) {
  const float inv_sqrt_hidden = 1.0f / std::sqrt(static_cast<float>(cfg.hidden_size));
  if (ends_with(t.name, "norm.weight")) return {1.0f, 0.05f};  // all RMSNorm gains
  if (ends_with(t.name, ".bias")) return {0.0f, 0.1f};
  // Embedding and LM head: logits = rmsnorm(h) . row get std ~3: spread, not one-hot.
  if (t.name == "model.embed_tokens.weight" || t.name == "lm_head.weight") {
    return {0.0f, 3.0f * inv_sqrt_hidden};
  }
  // Linear [out, in]: 1/sqrt(fan_in) keeps each projection's output at unit scale, so
  // attention scores have spread ~1 and the residual stream grows only ~sqrt(layers).
  const float fan_in = static_cast<float>(t.shape.at(1));
  return {0.0f, 1.0f / std::sqrt(fan_in)};
}

// One element in the target dtype; a template so the hot loop has no per-element switch.
template <DType D>
void store(float v, std::byte* out) {
  if constexpr (D == DType::F32) {
    std::memcpy(out, &v, 4);
  } else {
    const uint16_t h = D == DType::BF16 ? float_to_bf16(v) : float_to_f16(v);
    std::memcpy(out, &h, 2);
  }
}

constexpr size_t kChunk = size_t{1} << 16;  // elements per unit of work for a thread

// Element i of a tensor is a pure function of (tensor seed, i): a counter-based generator
// (splitmix64 of the counter) is deterministic regardless of threads and chunking, and several
// times faster than std::mt19937_64, which matters for ~1e9-parameter presets.
template <DType D>
void fill_range(uint64_t tensor_seed, size_t begin, size_t end, Init init, std::byte* out) {
  constexpr size_t esize = D == DType::F32 ? 4 : 2;
  for (size_t i = begin; i < end; ++i) {
    const float z = normal_from_bits(splitmix64(tensor_seed + i));
    store<D>(init.mean + init.std * z, out + i * esize);
  }
}

void fill_chunk(uint64_t tensor_seed, size_t chunk, size_t n, Init init, DType dtype,
                std::byte* out) {
  const size_t begin = chunk * kChunk;
  const size_t end = std::min(n, begin + kChunk);
  switch (dtype) {
    case DType::F32:
      return fill_range<DType::F32>(tensor_seed, begin, end, init, out);
    case DType::F16:
      return fill_range<DType::F16>(tensor_seed, begin, end, init, out);
    case DType::BF16:
      return fill_range<DType::BF16>(tensor_seed, begin, end, init, out);
  }
}

void fill_random(const TensorSpec& t, const Init& init, uint64_t seed,
                 std::vector<std::byte>& out) {
  size_t n = 1;
  for (int64_t d : t.shape) n *= static_cast<size_t>(d);
  out.resize(n * dtype_size(t.dtype));
  const uint64_t tensor_seed = splitmix64(seed ^ name_hash(t.name));
  const size_t chunks = (n + kChunk - 1) / kChunk;
  const size_t workers =
      std::min<size_t>(chunks, std::max(1u, std::min(16u, std::thread::hardware_concurrency())));
  if (workers <= 1) {
    for (size_t c = 0; c < chunks; ++c) fill_chunk(tensor_seed, c, n, init, t.dtype, out.data());
    return;
  }
  std::vector<std::thread> threads;
  for (size_t w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      for (size_t c = w; c < chunks; c += workers) {
        fill_chunk(tensor_seed, c, n, init, t.dtype, out.data());
      }
    });
  }
  for (auto& th : threads) th.join();
}

// ---- the other files of the directory ----

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.flush();
  if (!out) throw Error("cannot write '" + path.string() + "'");
}

// Minimal Jinja templates in the two families' shapes; the chat-format detector keys on the
// markers "<|im_start|>" and "<|start_header_id|>".
const char* kChatmlTemplate =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";
const char* kLlama3Template =
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}";

// Token text of `id` among the tokenizer's added (control) tokens, "" when not found.
std::string added_token_text(const json& tok, int id) {
  if (id < 0 || !tok.is_object() || !tok.contains("added_tokens") ||
      !tok["added_tokens"].is_array()) {
    return "";
  }
  for (const auto& t : tok["added_tokens"]) {
    if (t.is_object() && t.value("id", -1) == id && t.contains("content") &&
        t["content"].is_string()) {
      return t["content"].get<std::string>();
    }
  }
  return "";
}

json tokenizer_config(const ModelConfig& cfg, const std::string& tokenizer_json,
                      const std::string& chat_format) {
  json tc = {{"tokenizer_class", "PreTrainedTokenizerFast"},
             {"model_max_length", cfg.max_position_embeddings},
             {"clean_up_tokenization_spaces", false}};
  if (chat_format == "chatml") {
    tc["chat_template"] = kChatmlTemplate;
  } else if (chat_format == "llama3") {
    tc["chat_template"] = kLlama3Template;
  } else if (chat_format != "raw") {
    throw Error("unknown chat format '" + chat_format + "'; supported: chatml, llama3, raw");
  }
  // Name bos/eos by their text when the tokenizer lists them (best effort: an unparsable
  // tokenizer.json is the tokenizer's problem to report, not ours).
  const json tok = json::parse(tokenizer_json, nullptr, /*allow_exceptions=*/false);
  const std::string bos = added_token_text(tok, cfg.bos_token_id);
  const std::string eos =
      added_token_text(tok, cfg.eos_token_ids.empty() ? -1 : cfg.eos_token_ids.front());
  if (!bos.empty()) tc["bos_token"] = bos;
  if (!eos.empty()) tc["eos_token"] = eos;
  return tc;
}

std::string torch_dtype_name(DType d) {
  switch (d) {
    case DType::F32:
      return "float32";
    case DType::F16:
      return "float16";
    case DType::BF16:
      return "bfloat16";
  }
  return "bfloat16";
}

std::string shard_name(int k, int n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05d-of-%05d.safetensors", k, n);
  return buf;
}

}  // namespace

std::vector<std::string> shape_preset_names() {
  std::vector<std::string> out;
  for (const auto& p : kPresets) out.push_back(p.name);
  return out;
}

ModelShape shape_preset(const std::string& name, Arch arch) {
  for (const auto& p : kPresets) {
    if (name != p.name) continue;
    ModelShape s;
    s.name = p.name;
    s.hidden = p.hidden;
    s.intermediate = p.intermediate;
    s.layers = p.layers;
    s.heads = p.heads;
    s.kv_heads = p.kv_heads;
    s.head_dim = p.head_dim;
    s.vocab = p.vocab ? p.vocab : tokenizer_vocab(arch);
    s.max_pos = p.max_pos;
    s.rope_theta = p.rope_theta;
    s.tie = p.tie;
    const bool real_llama = name.rfind("llama-3.", 0) == 0;
    if (p.llama3_rope && (real_llama || arch == Arch::Llama)) {
      // The real models' scaling (factor 32 for 3.2, 8 for 3.1); tiny/small use a short
      // original context so that some of their few frequencies fall in each of the three bands.
      s.rope_scaling = RopeScaling{"llama3", name == "llama-3.2-1b" ? 32.0 : 8.0, 1.0, 4.0,
                                   real_llama ? 8192 : 2048};
    }
    if (real_llama) s.rms_norm_eps = 1e-5;
    return s;
  }
  std::string names;
  for (const auto& n : shape_preset_names()) names += (names.empty() ? "" : ", ") + n;
  throw Error("unknown model shape '" + name + "'; presets: " + names);
}

ModelConfig make_config(Arch arch, const ModelShape& shape) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = shape.vocab;
  c.hidden_size = shape.hidden;
  c.intermediate_size = shape.intermediate;
  c.num_layers = shape.layers;
  c.num_heads = shape.heads;
  c.num_kv_heads = shape.kv_heads;
  c.head_dim = shape.head_dim;
  c.rms_norm_eps = shape.rms_norm_eps;
  c.rope_theta = shape.rope_theta;
  c.max_position_embeddings = shape.max_pos;
  c.tie_word_embeddings = shape.tie;
  c.qkv_bias = arch == Arch::Qwen2;
  c.qk_norm = arch == Arch::Qwen3;
  c.rope_scaling = shape.rope_scaling;
  // A round trip through the parser applies exactly the validation a real config gets.
  return ModelConfig::from_json(c.to_json(), "model shape '" + shape.name + "'");
}

std::vector<TensorSpec> expected_tensors(const ModelConfig& cfg, DType dtype) {
  const int64_t h = cfg.hidden_size, inter = cfg.intermediate_size, hd = cfg.head_dim;
  const int64_t q_out = cfg.num_heads * hd, kv_out = cfg.num_kv_heads * hd;
  std::vector<TensorSpec> out;
  auto add = [&](std::string name, std::vector<int64_t> shape) {
    out.push_back({std::move(name), dtype, std::move(shape)});
  };
  add("model.embed_tokens.weight", {cfg.vocab_size, h});
  for (int i = 0; i < cfg.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    add(p + "input_layernorm.weight", {h});
    add(p + "self_attn.q_proj.weight", {q_out, h});
    add(p + "self_attn.k_proj.weight", {kv_out, h});
    add(p + "self_attn.v_proj.weight", {kv_out, h});
    add(p + "self_attn.o_proj.weight", {h, q_out});
    if (cfg.qkv_bias) {
      add(p + "self_attn.q_proj.bias", {q_out});
      add(p + "self_attn.k_proj.bias", {kv_out});
      add(p + "self_attn.v_proj.bias", {kv_out});
    }
    if (cfg.qk_norm) {
      add(p + "self_attn.q_norm.weight", {hd});
      add(p + "self_attn.k_norm.weight", {hd});
    }
    add(p + "post_attention_layernorm.weight", {h});
    add(p + "mlp.gate_proj.weight", {inter, h});
    add(p + "mlp.up_proj.weight", {inter, h});
    add(p + "mlp.down_proj.weight", {h, inter});
  }
  add("model.norm.weight", {h});
  if (!cfg.tie_word_embeddings) add("lm_head.weight", {cfg.vocab_size, h});
  std::sort(out.begin(), out.end(),
            [](const TensorSpec& a, const TensorSpec& b) { return a.name < b.name; });
  return out;
}

void write_model_dir(
    const std::filesystem::path& out_dir, const ModelConfig& cfg, DType dtype,
    const std::string& tokenizer_json, const std::string& chat_format,
    const std::function<void(const TensorSpec& spec, std::vector<std::byte>& out)>& produce) {
  const json tc = tokenizer_config(cfg, tokenizer_json, chat_format);  // validates chat_format
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) throw Error("cannot create model directory '" + out_dir.string() + "': " + ec.message());

  json config = cfg.to_json();
  config["torch_dtype"] = torch_dtype_name(dtype);
  write_text(out_dir / "config.json", config.dump(2) + "\n");
  json gen = {{"eos_token_id", cfg.eos_token_ids}, {"do_sample", false}};
  if (cfg.bos_token_id >= 0) gen["bos_token_id"] = cfg.bos_token_id;
  write_text(out_dir / "generation_config.json", gen.dump(2) + "\n");
  write_text(out_dir / "tokenizer.json", tokenizer_json);
  write_text(out_dir / "tokenizer_config.json", tc.dump(2) + "\n");

  // A stale index would shadow nothing (model.safetensors wins) but would confuse readers.
  std::filesystem::remove(out_dir / "model.safetensors.index.json", ec);
  write_safetensors_streamed(out_dir / "model.safetensors", expected_tensors(cfg, dtype), produce,
                             {{"format", "pt"}});
}

void write_random_model(const std::filesystem::path& out_dir, const ModelConfig& cfg, uint64_t seed,
                        DType dtype, const std::string& tokenizer_json,
                        const std::string& chat_format) {
  write_model_dir(out_dir, cfg, dtype, tokenizer_json, chat_format,
                  [&](const TensorSpec& t, std::vector<std::byte>& out) {
                    fill_random(t, init_for(t, cfg), seed, out);
                  });
}

void shard_model_dir(const std::filesystem::path& dir, int num_shards) {
  const auto single_path = dir / "model.safetensors";
  auto single = SafetensorsFile::open(single_path);
  const auto& tensors = single->tensors();  // name order
  if (num_shards < 1 || static_cast<size_t>(num_shards) > tensors.size()) {
    throw Error("cannot split '" + single_path.string() + "' (" + std::to_string(tensors.size()) +
                " tensors) into " + std::to_string(num_shards) + " shards");
  }
  size_t total = 0;
  for (const auto& kv : tensors) total += kv.second.nbytes;

  // Whole tensors, cut at byte quantiles, every shard non-empty.
  std::vector<std::vector<const TensorView*>> groups(num_shards);
  size_t shard = 0, cum = 0, seen = 0;
  for (const auto& kv : tensors) {
    groups[shard].push_back(&kv.second);
    cum += kv.second.nbytes;
    ++seen;
    const size_t tensors_left = tensors.size() - seen;
    const size_t shards_left = num_shards - shard - 1;
    if (shards_left > 0 && tensors_left > 0 &&
        (cum >= (shard + 1) * total / num_shards || tensors_left == shards_left)) {
      ++shard;
    }
  }

  json weight_map = json::object();
  for (int k = 0; k < num_shards; ++k) {
    const std::string name = shard_name(k + 1, num_shards);
    std::vector<TensorSpec> specs;
    for (const TensorView* t : groups[k]) {
      specs.push_back({t->name, t->dtype, t->shape});
      weight_map[t->name] = name;
    }
    write_safetensors_streamed(dir / name, specs,
                               [&](const TensorSpec& s, std::vector<std::byte>& out) {
                                 const TensorView* t = single->find(s.name);
                                 out.assign(t->data, t->data + t->nbytes);
                               },
                               {{"format", "pt"}});
  }
  const json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  write_text(dir / "model.safetensors.index.json", index.dump(2) + "\n");
  single.reset();  // unmap before deleting
  std::filesystem::remove(single_path);
}

}  // namespace dapx
