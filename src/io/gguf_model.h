#pragma once
// A GGUF file as a model of the Llama family: its metadata as the Hugging Face config.json the
// same model has (then ModelConfig::from_json checks it exactly as for an HF directory), the map
// between GGUF and HF tensor names, and llama.cpp's converter's Q/K row permutation for the
// `llama` architecture. No LibTorch here.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "io/model_config.h"

namespace dapx {

// general.architecture values dapx reads: "llama" (Llama 2/3.x, Mistral), "qwen2", "qwen3".
// Throws dapx::Error naming any other.
Arch arch_from_gguf_name(const std::string& name);
std::string gguf_arch_name(Arch arch);  // Mistral is written as "llama"

// The config.json of the model in `gguf`, from `{arch}.block_count`, `.embedding_length`,
// `.feed_forward_length`, `.attention.head_count(_kv)`, `.attention.key_length` /
// `.value_length`, `.attention.layer_norm_rms_epsilon`, `.rope.freq_base`,
// `.rope.dimension_count`, `.context_length`, `.vocab_size`, `.rope.scaling.*`; vocab_size
// falls back to the token list, then to token_embd.weight; tie_word_embeddings when there is
// no output.weight; attention_bias when a llama file has attn_q.bias; llama3 RoPE scaling
// recovered from the rope_freqs.weight tensor llama.cpp's converter writes for it;
// bos/eos from tokenizer.ggml.{bos,eos,eot,eom}_token_id; torch_dtype from token_embd.weight's
// type (F32/F16/BF16; bfloat16 otherwise). Throws dapx::Error naming the file and the key for
// a missing or mistyped key, a `{arch}.` key dapx does not understand, partial rotary
// (rope.dimension_count != head_dim), key_length != value_length, experts, or a rope_freqs
// tensor that is not llama3 scaling.
nlohmann::json gguf_hf_config(const GgufContents& gguf);
// ModelConfig::from_json(gguf_hf_config(gguf)): also refuses what the HF loader refuses.
ModelConfig gguf_model_config(const GgufContents& gguf);

// The per-dimension RoPE frequency factors llama.cpp's converter writes as rope_freqs.weight
// for llama3 RoPE scaling (head_dim / 2 values).
std::vector<double> llama3_rope_factors(int head_dim, double base, double factor, double low,
                                        double high, double original_context);

// "blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight" etc.; nullopt for a name
// that is not part of a llama/qwen2/qwen3 model (rope_freqs.weight is read by gguf_hf_config).
std::optional<std::string> gguf_to_hf_tensor_name(const std::string& gguf_name);
// The inverse, for the writer: "model.embed_tokens.weight" -> "token_embd.weight" etc.
std::optional<std::string> hf_to_gguf_tensor_name(const std::string& hf_name);

// llama.cpp's converter permutes the rows of q_proj and k_proj (weights and biases) of the
// `llama` architecture for its RoPE: per head of head_dim rows, HF row j * head_dim/2 + i
// becomes row 2i + j (it reshapes to [n_head, 2, head_dim/2, ...] and swaps axes 1 and 2).
// Q uses the number of attention heads, K the number of KV heads.
//
// The number of heads to unpermute tensor `gguf_name` with: num_heads for attn_q, num_kv_heads
// for attn_k (weight or bias) when config.arch is Llama or Mistral; 0 when the tensor is stored
// as in HF.
int64_t gguf_qk_permutation_heads(const ModelConfig& config, const std::string& gguf_name);
// Row `hf_row` of the HF tensor is row llama_qk_gguf_row(hf_row, ...) of the GGUF tensor.
// `rows` must be a multiple of 2 * n_head (dapx::Error otherwise).
int64_t llama_qk_gguf_row(int64_t hf_row, int64_t rows, int64_t n_head);
// Reorders whole rows of `row_bytes` bytes (any row format: float, bf16, quantised blocks):
// to_hf = true undoes the converter's permutation (GGUF -> HF), false applies it (HF -> GGUF).
// `src` and `dst` must not overlap.
void permute_llama_qk_rows(const std::byte* src, std::byte* dst, int64_t rows, size_t row_bytes,
                           int64_t n_head, bool to_hf);
// The same on a float tensor of `rows` rows.
std::vector<float> permute_llama_qk(const std::vector<float>& w, int64_t rows, int64_t n_head,
                                    bool to_hf);

}  // namespace dapx
