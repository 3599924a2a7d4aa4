#include "io/gguf_export.h"

#include <cstring>
#include <vector>

#include "io/gguf_model.h"
#include "io/gguf_quant.h"
#include "util/bf16.h"
#include "util/error.h"

namespace dapx {
namespace {

float element(const TensorView& v, int64_t i) {
  switch (v.dtype) {
    case DType::F32: {
      float f;
      std::memcpy(&f, v.data + i * 4, 4);
      return f;
    }
    case DType::F16: {
      uint16_t h;
      std::memcpy(&h, v.data + i * 2, 2);
      return f16_to_float(h);
    }
    case DType::BF16: {
      uint16_t h;
      std::memcpy(&h, v.data + i * 2, 2);
      return bf16_to_f32(h);
    }
  }
  return 0.0f;
}

std::vector<float> as_float(const TensorView& v) {
  std::vector<float> out(static_cast<size_t>(v.numel()));
  for (int64_t i = 0; i < v.numel(); ++i) out[static_cast<size_t>(i)] = element(v, i);
  return out;
}

std::vector<std::byte> encode(const std::vector<float>& x, GgmlType type) {
  std::vector<std::byte> out;
  switch (type) {
    case GgmlType::F32:
      out.resize(x.size() * 4);
      std::memcpy(out.data(), x.data(), out.size());
      break;
    case GgmlType::F16:
    case GgmlType::BF16: {
      out.resize(x.size() * 2);
      for (size_t i = 0; i < x.size(); ++i) {
        const uint16_t h = type == GgmlType::F16 ? float_to_f16(x[i]) : f32_to_bf16(x[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
      }
      break;
    }
    case GgmlType::Q8_0:
      out = quantize_q8_0(x.data(), static_cast<int64_t>(x.size()));
      break;
    case GgmlType::Q4_K:
      out = quantize_q4_k(x.data(), static_cast<int64_t>(x.size()));
      break;
    default:
      throw Error("GGUF export writes F32, F16, BF16, Q8_0 or Q4_K, not " + ggml_type_name(type));
  }
  return out;
}

}  // namespace

GgufMetadataList gguf_model_metadata(const ModelConfig& c, const std::string& name) {
  const std::string arch = gguf_arch_name(c.arch);
  const std::string p = arch + ".";
  GgufMetadataList m = {
      {"general.architecture", GgufValue::string(arch)},
      {"general.name", GgufValue::string(name)},
      {"general.alignment", GgufValue::u32(32)},
      {p + "block_count", GgufValue::u32(static_cast<uint32_t>(c.num_layers))},
      {p + "context_length", GgufValue::u32(static_cast<uint32_t>(c.max_position_embeddings))},
      {p + "embedding_length", GgufValue::u32(static_cast<uint32_t>(c.hidden_size))},
      {p + "feed_forward_length", GgufValue::u32(static_cast<uint32_t>(c.intermediate_size))},
      {p + "attention.head_count", GgufValue::u32(static_cast<uint32_t>(c.num_heads))},
      {p + "attention.head_count_kv", GgufValue::u32(static_cast<uint32_t>(c.num_kv_heads))},
      {p + "attention.key_length", GgufValue::u32(static_cast<uint32_t>(c.head_dim))},
      {p + "attention.value_length", GgufValue::u32(static_cast<uint32_t>(c.head_dim))},
      {p + "attention.layer_norm_rms_epsilon", GgufValue::f32(static_cast<float>(c.rms_norm_eps))},
      {p + "rope.freq_base", GgufValue::f32(static_cast<float>(c.rope_theta))},
      {p + "rope.dimension_count", GgufValue::u32(static_cast<uint32_t>(c.head_dim))},
      {p + "vocab_size", GgufValue::u32(static_cast<uint32_t>(c.vocab_size))},
  };
  if (c.rope_scaling && c.rope_scaling->type != "llama3")
    throw Error("GGUF export: RoPE scaling '" + c.rope_scaling->type + "' is not supported");
  return m;
}

void write_gguf_model(const WeightStore& weights, const ModelConfig& config,
                      const std::string& name, const GgufMetadataList& tokenizer,
                      const std::filesystem::path& out, GgmlType type) {
  GgufMetadataList metadata = gguf_model_metadata(config, name);
  metadata.insert(metadata.end(), tokenizer.begin(), tokenizer.end());
  std::vector<GgufTensorSpec> specs;
  std::vector<std::string> sources;  // the HF name of each spec (empty: made here)
  for (const std::string& hf : weights.names()) {
    if (config.tie_word_embeddings && hf == "lm_head.weight") continue;  // the embedding's
    const std::optional<std::string> g = hf_to_gguf_tensor_name(hf);
    if (!g) throw Error("tensor '" + hf + "' has no GGUF name (not a llama/qwen2/qwen3 weight)");
    const TensorView& v = weights.get(hf);
    GgmlType t = v.shape.size() == 1 ? GgmlType::F32 : type;
    // Rows that are not whole blocks fall back, as llama.cpp's quantiser does: Q4_K -> Q8_0
    // (rows of 896 in Qwen2.5-0.5B, say), Q8_0 -> F16.
    if (t == GgmlType::Q4_K && v.shape.back() % kGgmlQK_K != 0) t = GgmlType::Q8_0;
    if (t == GgmlType::Q8_0 && v.shape.back() % kGgmlQK != 0) t = GgmlType::F16;
    specs.push_back({*g, t, v.shape});
    sources.push_back(hf);
  }
  if (config.rope_scaling) {  // llama3: the converter's per-dimension factors
    specs.push_back({"rope_freqs.weight", GgmlType::F32, {config.head_dim / 2}});
    sources.emplace_back();
  }
  size_t next = 0;
  write_gguf_streamed(
      out, metadata, specs, [&](const GgufTensorSpec& spec, std::vector<std::byte>& bytes) {
        const size_t i = next++;
        if (sources[i].empty()) {
          const RopeScaling& r = *config.rope_scaling;
          const std::vector<double> f =
              llama3_rope_factors(config.head_dim, config.rope_theta, r.factor, r.low_freq_factor,
                                  r.high_freq_factor, r.original_max_position_embeddings);
          bytes = encode(std::vector<float>(f.begin(), f.end()), GgmlType::F32);
          return;
        }
        const TensorView& v = weights.get(sources[i]);
        std::vector<float> x = as_float(v);
        if (const int64_t heads = gguf_qk_permutation_heads(config, spec.name)) {
          const int64_t rows = v.shape[0];
          x = permute_llama_qk(x, rows, heads, false);
        }
        bytes = encode(x, spec.type);
      });
}

}  // namespace dapx
