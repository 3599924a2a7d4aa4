#include "io/model_config.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>

#include "util/error.h"
#include "util/path_exists.h"

namespace dapx {

namespace {

using nlohmann::json;

struct ArchNames {
  Arch arch;
  const char* hf;
  const char* short_name;
};

constexpr ArchNames kArchs[] = {
    {Arch::Llama, "LlamaForCausalLM", "llama"},
    {Arch::Qwen2, "Qwen2ForCausalLM", "qwen2"},
    {Arch::Qwen3, "Qwen3ForCausalLM", "qwen3"},
    {Arch::Mistral, "MistralForCausalLM", "mistral"},
};

std::string supported_list(bool hf) {
  std::string s;
  for (const auto& a : kArchs) s += (s.empty() ? "" : ", ") + std::string(hf ? a.hf : a.short_name);
  return s;
}

// Field access with errors that name the file and the field.
class Fields {
 public:
  Fields(const json& j, const std::string& source) : j_(j), source_(source) {}

  [[noreturn]] void fail(const std::string& what) const { throw Error(source_ + ": " + what); }

  // Absent and null both mean "not given" (HF writes null for unset optional fields).
  const json* find(const char* key) const {
    auto it = j_.find(key);
    return (it == j_.end() || it->is_null()) ? nullptr : &*it;
  }

  int positive_int(const char* key) const {
    const json* v = find(key);
    if (!v) fail("missing required field '" + std::string(key) + "'");
    return checked_positive_int(key, *v);
  }

  int positive_int_or(const char* key, int fallback) const {
    const json* v = find(key);
    return v ? checked_positive_int(key, *v) : fallback;
  }

  double positive_double_or(const char* key, double fallback) const {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_number() || !(v->get<double>() > 0) || !std::isfinite(v->get<double>())) {
      fail("field '" + std::string(key) + "' must be a positive number, got " + v->dump());
    }
    return v->get<double>();
  }

  bool bool_or(const char* key, bool fallback) const {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_boolean())
      fail("field '" + std::string(key) + "' must be true or false, got " + v->dump());
    return v->get<bool>();
  }

  // Token ids: an integer or a list of integers; null/absent gives an empty list.
  std::vector<int> token_ids(const char* key) const {
    std::vector<int> out;
    const json* v = find(key);
    if (!v) return out;
    auto one = [&](const json& x) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX) {
        fail("field '" + std::string(key) + "' must be a token id or a list of them, got " +
             v->dump());
      }
      out.push_back(x.get<int>());
    };
    if (v->is_array()) {
      for (const auto& x : *v) one(x);
    } else {
      one(*v);
    }
    return out;
  }

 private:
  int checked_positive_int(const char* key, const json& v) const {
    // Accept 64.0 (some tools write integers as floats) but not 64.5.
    const bool integral = v.is_number_integer() ||
                          (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>());
    if (!integral || v.get<double>() <= 0)
      fail("field '" + std::string(key) + "' must be a positive integer, got " + v.dump());
    if (v.get<double>() > INT32_MAX)
      fail("field '" + std::string(key) + "' is " + v.dump() + ", larger than dapx supports (" +
           std::to_string(INT32_MAX) + ")");
    return static_cast<int>(v.get<double>());
  }

  const json& j_;
  std::string source_;
};

Arch parse_architecture(const Fields& f, const std::string& source) {
  const json* archs = f.find("architectures");
  if (!archs) f.fail("missing required field 'architectures'");
  if (!archs->is_array() || archs->empty() || !(*archs)[0].is_string()) {
    f.fail("field 'architectures' must be a non-empty list of names, got " + archs->dump());
  }
  const std::string name = (*archs)[0].get<std::string>();
  for (const auto& a : kArchs) {
    if (name == a.hf) return a.arch;
  }
  throw Error("unknown architecture '" + name + "' in " + source +
              "; supported: " + supported_list(true));
}

std::optional<RopeScaling> parse_rope_scaling(const Fields& f, const std::string& source) {
  const json* rs = f.find("rope_scaling");
  if (!rs) return std::nullopt;
  if (!rs->is_object()) f.fail("field 'rope_scaling' must be an object or null, got " + rs->dump());
  // Newer configs say "rope_type", older ones "type".
  std::string type = "default";
  for (const char* key : {"rope_type", "type"}) {
    auto it = rs->find(key);
    if (it != rs->end() && it->is_string()) {
      type = it->get<std::string>();
      break;
    }
  }
  if (type == "default") return std::nullopt;
  if (type != "llama3") {
    f.fail("unsupported rope_scaling type '" + type + "'; supported: llama3, default");
  }
  const Fields sub(*rs, source + ": rope_scaling");
  RopeScaling r;
  r.type = type;
  for (const char* key :
       {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}) {
    if (!sub.find(key)) sub.fail("type llama3 needs field '" + std::string(key) + "'");
  }
  r.factor = sub.positive_double_or("factor", r.factor);
  r.low_freq_factor = sub.positive_double_or("low_freq_factor", r.low_freq_factor);
  r.high_freq_factor = sub.positive_double_or("high_freq_factor", r.high_freq_factor);
  r.original_max_position_embeddings = sub.positive_int("original_max_position_embeddings");
  if (r.high_freq_factor <= r.low_freq_factor) {
    sub.fail("high_freq_factor must be greater than low_freq_factor");
  }
  return r;
}

void add_unique(std::vector<int>& ids, const std::vector<int>& more) {
  for (int id : more) {
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  }
}

// A token id at or past vocab_size would index past the embedding and the logits.
void check_in_vocab(const Fields& f, const char* key, const std::vector<int>& ids, int vocab_size) {
  for (int id : ids)
    if (id >= vocab_size)
      f.fail("field '" + std::string(key) + "' has token id " + std::to_string(id) +
             ", outside the vocabulary (vocab_size " + std::to_string(vocab_size) + ")");
}

json read_json(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read '" + path.string() + "': " + std::strerror(errno));
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw Error("invalid JSON in '" + path.string() + "': " + e.what());
  }
}

}  // namespace

Arch arch_from_hf_name(const std::string& name) {
  for (const auto& a : kArchs) {
    if (name == a.hf) return a.arch;
  }
  throw Error("unknown architecture '" + name + "'; supported: " + supported_list(true));
}

std::string hf_name(Arch arch) {
  for (const auto& a : kArchs) {
    if (arch == a.arch) return a.hf;
  }
  return "?";
}

Arch arch_from_short_name(const std::string& name) {
  for (const auto& a : kArchs) {
    if (name == a.short_name) return a.arch;
  }
  throw Error("unknown architecture '" + name + "'; supported: " + supported_list(false));
}

std::string short_name(Arch arch) {
  for (const auto& a : kArchs) {
    if (arch == a.arch) return a.short_name;
  }
  return "?";
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw Error(source + ": expected a JSON object");
  const Fields f(j, source);
  ModelConfig c;
  c.arch = parse_architecture(f, source);
  c.vocab_size = f.positive_int("vocab_size");
  c.hidden_size = f.positive_int("hidden_size");
  c.intermediate_size = f.positive_int("intermediate_size");
  c.num_layers = f.positive_int("num_hidden_layers");
  c.num_heads = f.positive_int("num_attention_heads");
  c.num_kv_heads = f.positive_int_or("num_key_value_heads", c.num_heads);
  if (c.num_heads % c.num_kv_heads != 0) {
    f.fail("num_attention_heads (" + std::to_string(c.num_heads) +
           ") is not divisible by num_key_value_heads (" + std::to_string(c.num_kv_heads) + ")");
  }
  if (f.find("head_dim")) {
    c.head_dim = f.positive_int("head_dim");
  } else if (c.hidden_size % c.num_heads != 0) {
    f.fail("hidden_size (" + std::to_string(c.hidden_size) +
           ") is not divisible by num_attention_heads (" + std::to_string(c.num_heads) +
           ") and no 'head_dim' is given");
  } else {
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.head_dim % 2 != 0)
    f.fail("head_dim (" + std::to_string(c.head_dim) + ") must be even for RoPE");
  c.rms_norm_eps = f.positive_double_or("rms_norm_eps", c.rms_norm_eps);
  c.rope_theta = f.positive_double_or("rope_theta", 10000.0);
  c.max_position_embeddings =
      f.positive_int_or("max_position_embeddings", c.max_position_embeddings);
  if (const json* w = f.find("sliding_window");
      w && !w->is_null() && f.bool_or("use_sliding_window", true)) {
    c.sliding_window = f.positive_int("sliding_window");
    c.max_position_embeddings = std::min(c.max_position_embeddings, c.sliding_window);
  }
  c.tie_word_embeddings = f.bool_or("tie_word_embeddings", false);
  // Qwen2 always has q/k/v biases (its config has no switch); the others say so explicitly.
  c.qkv_bias = c.arch == Arch::Qwen2 ? true : f.bool_or("attention_bias", false);
  c.qk_norm = c.arch == Arch::Qwen3;
  c.rope_scaling = parse_rope_scaling(f, source);
  // The MLP's activation: SiLU is the only one implemented (HF also calls it swish).
  if (const json* act = f.find("hidden_act")) {
    if (!act->is_string() || (*act != "silu" && *act != "swish"))
      f.fail("field 'hidden_act' is " + act->dump() +
             ", but dapx implements only silu (the activation of its supported architectures)");
  }
  const auto bos = f.token_ids("bos_token_id");
  if (bos.size() > 1) f.fail("field 'bos_token_id' must be a single token id");
  c.bos_token_id = bos.empty() ? -1 : bos[0];
  add_unique(c.eos_token_ids, f.token_ids("eos_token_id"));
  check_in_vocab(f, "bos_token_id", bos, c.vocab_size);
  check_in_vocab(f, "eos_token_id", c.eos_token_ids, c.vocab_size);
  // transformers >= 4.56 writes "dtype" instead of "torch_dtype".
  for (const char* key : {"torch_dtype", "dtype"}) {
    if (const json* v = f.find(key)) {
      if (!v->is_string()) f.fail("field '" + std::string(key) + "' must be a string");
      c.torch_dtype = v->get<std::string>();
      break;
    }
  }
  return c;
}

ModelConfig ModelConfig::load(const std::filesystem::path& model_dir) {
  const auto config_path = model_dir / "config.json";
  if (!path_exists(config_path)) {
    throw Error("no config.json in '" + model_dir.string() +
                "' (not a Hugging Face model directory?)");
  }
  ModelConfig c = from_json(read_json(config_path), config_path.string());
  const auto gen_path = model_dir / "generation_config.json";
  if (path_exists(gen_path)) {
    const json g = read_json(gen_path);
    if (!g.is_object()) throw Error(gen_path.string() + ": expected a JSON object");
    const Fields f(g, gen_path.string());
    const auto eos = f.token_ids("eos_token_id");
    check_in_vocab(f, "eos_token_id", eos, c.vocab_size);
    add_unique(c.eos_token_ids, eos);
    const auto bos = f.token_ids("bos_token_id");
    check_in_vocab(f, "bos_token_id", bos, c.vocab_size);
    if (c.bos_token_id < 0 && bos.size() == 1) c.bos_token_id = bos[0];
  }
  return c;
}

nlohmann::json ModelConfig::to_json() const {
  json j;
  j["architectures"] = {hf_name(arch)};
  j["model_type"] = short_name(arch);
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_layers;
  j["num_attention_heads"] = num_heads;
  j["num_key_value_heads"] = num_kv_heads;
  j["head_dim"] = head_dim;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  j["max_position_embeddings"] = max_position_embeddings;
  if (sliding_window > 0) j["sliding_window"] = sliding_window;
  j["tie_word_embeddings"] = tie_word_embeddings;
  if (arch != Arch::Qwen2) j["attention_bias"] = qkv_bias;  // Qwen2: bias is implied
  if (rope_scaling) {
    j["rope_scaling"] = {
        {"rope_type", rope_scaling->type},
        {"factor", rope_scaling->factor},
        {"low_freq_factor", rope_scaling->low_freq_factor},
        {"high_freq_factor", rope_scaling->high_freq_factor},
        {"original_max_position_embeddings", rope_scaling->original_max_position_embeddings}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["bos_token_id"] = bos_token_id >= 0 ? json(bos_token_id) : json(nullptr);
  if (eos_token_ids.empty()) {
    j["eos_token_id"] = nullptr;
  } else if (eos_token_ids.size() == 1) {
    j["eos_token_id"] = eos_token_ids[0];
  } else {
    j["eos_token_id"] = eos_token_ids;
  }
  j["torch_dtype"] = torch_dtype;
  return j;
}

bool operator==(const RopeScaling& a, const RopeScaling& b) {
  return a.type == b.type && a.factor == b.factor && a.low_freq_factor == b.low_freq_factor &&
         a.high_freq_factor == b.high_freq_factor &&
         a.original_max_position_embeddings == b.original_max_position_embeddings;
}

bool operator==(const ModelConfig& a, const ModelConfig& b) {
  return a.arch == b.arch && a.vocab_size == b.vocab_size && a.hidden_size == b.hidden_size &&
         a.intermediate_size == b.intermediate_size && a.num_layers == b.num_layers &&
         a.num_heads == b.num_heads && a.num_kv_heads == b.num_kv_heads &&
         a.head_dim == b.head_dim && a.rms_norm_eps == b.rms_norm_eps &&
         a.rope_theta == b.rope_theta && a.max_position_embeddings == b.max_position_embeddings &&
         a.sliding_window == b.sliding_window && a.tie_word_embeddings == b.tie_word_embeddings &&
         a.qkv_bias == b.qkv_bias && a.qk_norm == b.qk_norm && a.rope_scaling == b.rope_scaling &&
         a.bos_token_id == b.bos_token_id && a.eos_token_ids == b.eos_token_ids &&
         a.torch_dtype == b.torch_dtype;
}

}  // namespace dapx
