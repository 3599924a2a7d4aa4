#include "io/gguf_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "util/error.h"

namespace dapx {

namespace {

using nlohmann::json;

struct GgufArch {
  Arch arch;
  const char* name;
};
constexpr GgufArch kGgufArchs[] = {
    {Arch::Llama, "llama"},
    {Arch::Qwen2, "qwen2"},
    {Arch::Qwen3, "qwen3"},
};

// The `{arch}.` keys dapx reads (or checks and needs nothing from).
const char* const kKnownArchKeys[] = {
    "block_count",
    "context_length",
    "embedding_length",
    "feed_forward_length",
    "vocab_size",
    "attention.head_count",
    "attention.head_count_kv",
    "attention.key_length",
    "attention.value_length",
    "attention.layer_norm_rms_epsilon",
    "rope.freq_base",
    "rope.dimension_count",
    "rope.scaling.type",
    "rope.scaling.factor",
    "rope.scaling.original_context_length",
    "rope.scaling.finetuned",
    "expert_count",
    "expert_used_count",
};

// Per-layer tensors: GGUF suffix after "blk.N." and HF suffix after "model.layers.N.".
struct LayerName {
  const char* gguf;
  const char* hf;
};
constexpr LayerName kLayerNames[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_output.bias", "self_attn.o_proj.bias"},
    {"attn_q_norm.weight", "self_attn.q_norm.weight"},
    {"attn_k_norm.weight", "self_attn.k_norm.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
};
constexpr LayerName kGlobalNames[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

// "PREFIX" + decimal layer index (no sign, no leading zero) + "." + rest -> index and rest.
bool split_layer(const std::string& name, const std::string& prefix, std::string* index,
                 std::string* rest) {
  if (!starts_with(name, prefix)) return false;
  const size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size()) return false;
  const std::string n = name.substr(prefix.size(), dot - prefix.size());
  if (n.size() > 9 || !std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  if (n.size() > 1 && n[0] == '0') return false;
  *index = n;
  *rest = name.substr(dot + 1);
  return true;
}

constexpr double kPi = 3.14159265358979323846;

// llama3 parameters that reproduce `factors` (the converter keeps none of them as metadata).
// The factor is the largest value; the others are searched among the values models use.
std::optional<json> recover_llama3(const std::vector<float>& factors, int head_dim, double base) {
  const double factor = *std::max_element(factors.begin(), factors.end());
  for (double original : {8192.0, 4096.0, 2048.0, 16384.0, 32768.0, 65536.0, 131072.0}) {
    for (double low : {1.0, 2.0, 0.5}) {
      for (double high : {4.0, 2.0, 8.0, 16.0, 32.0}) {
        if (high <= low) continue;
        const std::vector<double> want =
            llama3_rope_factors(head_dim, base, factor, low, high, original);
        bool same = want.size() == factors.size();
        for (size_t i = 0; same && i < want.size(); ++i)
          same = std::fabs(want[i] - factors[i]) <= 1e-4 * std::max(1.0, std::fabs(want[i]));
        if (same) {
          return json{{"rope_type", "llama3"},
                      {"factor", factor},
                      {"low_freq_factor", low},
                      {"high_freq_factor", high},
                      {"original_max_position_embeddings", static_cast<int>(original)}};
        }
      }
    }
  }
  return std::nullopt;
}

// A float32 value as the shortest decimal that reads back to it (1e-06f -> 1e-6, not
// 9.99999997e-07), so that a config from GGUF equals the one from the HF config.json.
double float_value(const GgufMetadata& m, const std::string& key) {
  const double v = m.get_float(key);
  if (m.get(key).type != GgufValueType::F32 || !std::isfinite(v)) return v;
  const float f = static_cast<float>(v);
  char buf[64];
  for (int digits = 1; digits <= 9; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtof(buf, nullptr) == f) return std::strtod(buf, nullptr);
  }
  return v;
}

}  // namespace

std::vector<double> llama3_rope_factors(int head_dim, double base, double factor, double low,
                                        double high, double original_context) {
  std::vector<double> out;
  for (int k = 0; k < head_dim; k += 2) {
    const double freq = 1.0 / std::pow(base, static_cast<double>(k) / head_dim);
    const double wavelen = 2.0 * kPi / freq;
    if (wavelen < original_context / high) {
      out.push_back(1.0);
    } else if (wavelen > original_context / low) {
      out.push_back(factor);
    } else {
      const double smooth = (original_context / wavelen - low) / (high - low);
      out.push_back(1.0 / ((1.0 - smooth) / factor + smooth));
    }
  }
  return out;
}

Arch arch_from_gguf_name(const std::string& name) {
  for (const GgufArch& a : kGgufArchs)
    if (name == a.name) return a.arch;
  throw Error("GGUF architecture '" + name + "' is not supported (supported: llama, qwen2, qwen3)");
}

std::string gguf_arch_name(Arch arch) {
  if (arch == Arch::Mistral) return "llama";
  for (const GgufArch& a : kGgufArchs)
    if (arch == a.arch) return a.name;
  return "?";
}

json gguf_hf_config(const GgufContents& gguf) {
  const GgufMetadata& m = gguf.metadata();
  auto fail = [&](const std::string& what) {
    throw Error("GGUF file " + m.source() + ": " + what);
  };
  const std::string arch_name = m.get_string("general.architecture");
  const GgufArch* found = nullptr;
  for (const GgufArch& a : kGgufArchs)
    if (arch_name == a.name) found = &a;
  if (!found) {
    fail("architecture '" + arch_name +
         "' (general.architecture) is not supported (supported: " + "llama, qwen2, qwen3)");
  }
  const Arch arch = found->arch;
  const std::string p = arch_name + ".";
  for (const auto& entry : m.entries()) {
    const std::string& key = entry.first;
    if (!starts_with(key, p)) continue;
    const std::string rest = key.substr(p.size());
    const bool known = std::any_of(std::begin(kKnownArchKeys), std::end(kKnownArchKeys),
                                   [&](const char* k) { return rest == k; });
    if (!known) fail("key '" + key + "' is not one dapx understands for a " + arch_name + " model");
  }
  for (const char* k : {"expert_count", "expert_used_count"}) {
    if (m.has(p + k) && m.get_int(p + k) != 0)
      fail("key '" + p + k + "' is " + std::to_string(m.get_int(p + k)) +
           ": mixture-of-experts models are not supported");
  }

  json j;
  j["architectures"] = {hf_name(arch)};
  j["model_type"] = arch_name;
  j["hidden_size"] = m.get_int(p + "embedding_length");
  j["intermediate_size"] = m.get_int(p + "feed_forward_length");
  j["num_hidden_layers"] = m.get_int(p + "block_count");
  const int64_t heads = m.get_int(p + "attention.head_count");
  j["num_attention_heads"] = heads;
  if (m.has(p + "attention.head_count_kv"))
    j["num_key_value_heads"] = m.get_int(p + "attention.head_count_kv");
  j["max_position_embeddings"] = m.get_int(p + "context_length");
  j["rms_norm_eps"] = float_value(m, p + "attention.layer_norm_rms_epsilon");
  const double rope_theta =
      m.has(p + "rope.freq_base") ? float_value(m, p + "rope.freq_base") : 10000.0;
  j["rope_theta"] = rope_theta;
  j["hidden_act"] = "silu";

  // head_dim: key_length when given (it must equal value_length), else hidden / heads.
  int64_t head_dim = 0;
  if (m.has(p + "attention.key_length")) {
    head_dim = m.get_int(p + "attention.key_length");
    j["head_dim"] = head_dim;
    if (m.has(p + "attention.value_length") &&
        m.get_int(p + "attention.value_length") != head_dim) {
      fail("key '" + p + "attention.value_length' (" +
           std::to_string(m.get_int(p + "attention.value_length")) + ") differs from '" + p +
           "attention.key_length' (" + std::to_string(head_dim) + "): not supported");
    }
  } else if (heads > 0 && j["hidden_size"].get<int64_t>() % heads == 0) {
    head_dim = j["hidden_size"].get<int64_t>() / heads;
  }
  if (m.has(p + "rope.dimension_count") && head_dim > 0 &&
      m.get_int(p + "rope.dimension_count") != head_dim) {
    fail("key '" + p + "rope.dimension_count' is " +
         std::to_string(m.get_int(p + "rope.dimension_count")) + " but the head dimension is " +
         std::to_string(head_dim) + ": partial rotary embeddings are not supported");
  }

  // Vocabulary size: the key, else the token list, else the embedding's rows.
  if (m.has(p + "vocab_size")) {
    j["vocab_size"] = m.get_int(p + "vocab_size");
  } else if (m.has("tokenizer.ggml.tokens")) {
    j["vocab_size"] = m.get_string_array("tokenizer.ggml.tokens").size();
  } else if (const GgufTensor* e = gguf.find("token_embd.weight")) {
    j["vocab_size"] = e->shape.front();
  } else {
    fail("cannot tell the vocabulary size: no '" + p +
         "vocab_size', no tokenizer.ggml.tokens, no token_embd.weight");
  }
  j["tie_word_embeddings"] = gguf.find("output.weight") == nullptr;
  if (arch == Arch::Llama) j["attention_bias"] = gguf.find("blk.0.attn_q.bias") != nullptr;

  // RoPE scaling: a scaling type in the metadata (passed on for ModelConfig to accept or
  // refuse), or llama3's per-dimension factors in rope_freqs.weight.
  std::string scaling = "none";
  if (m.has(p + "rope.scaling.type")) scaling = m.get_string(p + "rope.scaling.type");
  if (scaling != "none" && !scaling.empty()) {
    json rs = {{"rope_type", scaling}};
    if (m.has(p + "rope.scaling.factor")) rs["factor"] = float_value(m, p + "rope.scaling.factor");
    if (m.has(p + "rope.scaling.original_context_length"))
      rs["original_max_position_embeddings"] =
          m.get_int(p + "rope.scaling.original_context_length");
    j["rope_scaling"] = rs;
  }
  if (const GgufTensor* rf = gguf.find("rope_freqs.weight")) {
    if (j.contains("rope_scaling"))
      fail("has both '" + p + "rope.scaling.type' " + scaling + " and a rope_freqs.weight tensor");
    if (head_dim <= 0 || head_dim % 2 != 0 || rf->numel() != head_dim / 2) {
      fail("rope_freqs.weight has " + std::to_string(rf->numel()) +
           " values, expected half the head dimension (" + std::to_string(head_dim) + ")");
    }
    const std::vector<float> factors = gguf_tensor_to_float(*rf);
    const bool identity =
        std::all_of(factors.begin(), factors.end(), [](float f) { return f == 1.0f; });
    if (!identity) {
      const std::optional<json> rs =
          recover_llama3(factors, static_cast<int>(head_dim), rope_theta);
      if (!rs) {
        fail(
            "rope_freqs.weight holds RoPE frequency factors that are not llama3 scaling "
            "(the only per-dimension scaling dapx supports)");
      }
      j["rope_scaling"] = *rs;
    }
  }

  // Special tokens; llama.cpp stops at any of eos, eot and eom.
  if (m.has("tokenizer.ggml.bos_token_id"))
    j["bos_token_id"] = m.get_int("tokenizer.ggml.bos_token_id");
  json eos = json::array();
  for (const char* k : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
                        "tokenizer.ggml.eom_token_id"}) {
    if (!m.has(k)) continue;
    const int64_t id = m.get_int(k);
    if (std::find(eos.begin(), eos.end(), json(id)) == eos.end()) eos.push_back(id);
  }
  if (!eos.empty()) j["eos_token_id"] = eos;

  std::string dtype = "bfloat16";
  if (const GgufTensor* e = gguf.find("token_embd.weight")) {
    if (e->type == GgmlType::F32) dtype = "float32";
    if (e->type == GgmlType::F16) dtype = "float16";
  }
  j["torch_dtype"] = dtype;
  return j;
}

ModelConfig gguf_model_config(const GgufContents& gguf) {
  return ModelConfig::from_json(gguf_hf_config(gguf), "GGUF file " + gguf.metadata().source());
}

std::optional<std::string> gguf_to_hf_tensor_name(const std::string& gguf_name) {
  for (const LayerName& n : kGlobalNames)
    if (gguf_name == n.gguf) return std::string(n.hf);
  std::string index, rest;
  if (!split_layer(gguf_name, "blk.", &index, &rest)) return std::nullopt;
  for (const LayerName& n : kLayerNames)
    if (rest == n.gguf) return "model.layers." + index + "." + n.hf;
  return std::nullopt;
}

std::optional<std::string> hf_to_gguf_tensor_name(const std::string& hf_name) {
  for (const LayerName& n : kGlobalNames)
    if (hf_name == n.hf) return std::string(n.gguf);
  std::string index, rest;
  if (!split_layer(hf_name, "model.layers.", &index, &rest)) return std::nullopt;
  for (const LayerName& n : kLayerNames)
    if (rest == n.hf) return "blk." + index + "." + n.gguf;
  return std::nullopt;
}

int64_t gguf_qk_permutation_heads(const ModelConfig& config, const std::string& gguf_name) {
  if (config.arch != Arch::Llama && config.arch != Arch::Mistral) return 0;
  std::string index, rest;
  if (!split_layer(gguf_name, "blk.", &index, &rest)) return 0;
  if (rest == "attn_q.weight" || rest == "attn_q.bias") return config.num_heads;
  if (rest == "attn_k.weight" || rest == "attn_k.bias") return config.num_kv_heads;
  return 0;
}

int64_t llama_qk_gguf_row(int64_t hf_row, int64_t rows, int64_t n_head) {
  if (n_head <= 0 || rows <= 0 || rows % (2 * n_head) != 0) {
    throw Error("cannot permute Q/K rows: " + std::to_string(rows) +
                " rows are not a multiple of 2 x " + std::to_string(n_head) + " heads");
  }
  if (hf_row < 0 || hf_row >= rows)
    throw Error("Q/K row " + std::to_string(hf_row) + " out of range (" + std::to_string(rows) +
                ")");
  const int64_t head_dim = rows / n_head, half = head_dim / 2;
  const int64_t head = hf_row / head_dim, within = hf_row % head_dim;
  const int64_t j = within / half, i = within % half;  // HF row j * half + i
  return head * head_dim + 2 * i + j;
}

void permute_llama_qk_rows(const std::byte* src, std::byte* dst, int64_t rows, size_t row_bytes,
                           int64_t n_head, bool to_hf) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t g = llama_qk_gguf_row(r, rows, n_head);
    const int64_t from = to_hf ? g : r, to = to_hf ? r : g;
    if (row_bytes)
      std::memcpy(dst + static_cast<size_t>(to) * row_bytes,
                  src + static_cast<size_t>(from) * row_bytes, row_bytes);
  }
}

std::vector<float> permute_llama_qk(const std::vector<float>& w, int64_t rows, int64_t n_head,
                                    bool to_hf) {
  if (rows <= 0 || w.size() % static_cast<size_t>(rows) != 0) {
    throw Error("cannot permute Q/K rows: " + std::to_string(w.size()) +
                " values are not a whole number of " + std::to_string(rows) + " rows");
  }
  std::vector<float> out(w.size());
  permute_llama_qk_rows(reinterpret_cast<const std::byte*>(w.data()),
                        reinterpret_cast<std::byte*>(out.data()), rows,
                        w.size() / static_cast<size_t>(rows) * sizeof(float), n_head, to_hf);
  return out;
}

}  // namespace dapx
