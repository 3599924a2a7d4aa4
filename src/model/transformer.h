#pragma once
// Llama-family decoder (Llama 2/3.x, Qwen2/2.5, Qwen3, Mistral) on LibTorch, written top to
// bottom: embed -> layers (RMSNorm, QKV, RoPE, attention over the cache, MLP) -> norm -> head.
// Activations, softmax and scores are f32; weights are held in the --dtype weight dtype.
//
// The layer stack runs four ways; a change to a layer is made in each:
//  - forward(): token-major LibTorch ops in prefill chunks (layer_forward: layer_qkv, attention
//    over the cache, layer_output); the CPU attention itself is the raw tiled kernel;
//  - decode_batch() (transformer_decode.cpp): one token of each of B sequences through raw
//    loops and GEMVs on the CPU (decode() is a batch of one);
//  - the layer-major prefill of compressing methods (methods/compressed_prefill.cpp), which
//    calls layer_qkv / layer_output around its own (possibly sparse) attention;
//  - sequence_logits(): the whole sequence with differentiable ops, no cache (training).
#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "io/model_config.h"
#include "io/safetensors.h"
#include "kv/kv_cache.h"
#include "model/gemm_choice.h"
#include "model/linear.h"
#include "model/rope.h"

namespace dapx {

struct ComputeOptions {
  at::ScalarType weight_dtype = at::kBFloat16;  // bf16 or f32
  // KV cache entries: f32 (exact, this struct's default) or bf16 (half the bytes; the CLI's
  // default). Attention widens bf16 keys and values to f32 as it reads them.
  at::ScalarType kv_dtype = at::kFloat;
  // Linear layers' weights quantised to int8 at load (CPU only; embeddings and norms stay).
  bool int8_weights = false;
  // The CPU prefill GEMM's dtype for bf16/int8 weights: measured (auto) or forced.
  GemmChoice gemm = GemmChoice::kAuto;
  at::Device device = at::kCPU;
  int64_t prefill_chunk = 512;  // rows per prefill chunk (bounds attention/MLP memory)
  // Training: weights become owned f32 tensors that require gradients (weight_dtype must be
  // f32); named_parameters() hands them to an optimizer.
  bool trainable = false;
};

// Asks a forward pass to keep the post-RoPE queries of chosen absolute positions, per layer
// (the observation queries that KV-compression methods score keys with).
struct QueryCapture {
  std::vector<int64_t> positions;     // ascending; chunks arrive in increasing position order
  std::vector<at::Tensor> per_layer;  // [heads, positions.size(), head_dim] f32 per layer
  std::vector<int64_t> filled;        // rows of per_layer[l] written so far
};

// A prefill chunk that starts inside cached prefix blocks (compressed_prefill resumes at the
// chunk of its first observation row, which a cold prefill computes in that same chunk): the
// first `cached` rows' K/V are in the cache already (not appended again; the cache may hold
// later cached rows too) and the outputs of the first `unneeded` rows (<= cached) are not used,
// so their attention is skipped. Their GEMM rows still run: every needed row is computed in a
// chunk of the cold prefill's rows, so its numbers are the cold prefill's bit for bit.
struct CachedRows {
  int64_t cached = 0, unneeded = 0;
};

// Post-RoPE queries [heads, t, d], keys and values [kv_heads, t, d] of t tokens in one layer.
struct AttentionInputs {
  at::Tensor q, k, v;
};

// One sequence's row of a batched decode step: its next token, that token's position and the
// sequence's own cache (not owned).
struct DecodeRow {
  int token = 0;
  int64_t pos = 0;
  KVCache* cache = nullptr;
};

// Appends the queries of capture.positions that lie in [pos0, pos0 + t) to layer l's capture.
void capture_queries(QueryCapture& capture, int l, int num_layers, const at::Tensor& q,
                     int64_t pos0);

struct LayerWeights {
  at::Tensor attn_norm, mlp_norm, q_norm, k_norm;  // f32; q/k norms only for Qwen3
  Linear q, k, v, o, gate, up, down;
};

class Transformer {
 public:
  // The weight store must stay alive as long as the model (weights may alias its mapping).
  Transformer(const ModelConfig& cfg, std::shared_ptr<const WeightStore> weights,
              const ComputeOptions& opts);

  const ModelConfig& config() const { return cfg_; }
  const ComputeOptions& options() const { return opts_; }
  KVCache make_cache() const;
  LayerKV make_layer_cache() const;  // one layer's cache (layer-major prefill)
  int64_t weight_bytes() const { return weight_bytes_; }
  // The tensors weight_bytes() counts (embedding, LM head unless it is the embedding, every
  // linear layer as held), for measuring how much of them is resident.
  std::vector<at::Tensor> weight_tensors() const;
  // Weight bytes one decode step reads: every linear layer and the LM head (not the
  // embedding table, of which it reads one row, unless the head shares it).
  int64_t decode_weight_bytes() const { return decode_weight_bytes_; }
  // How the linear layers are held and multiplied (int8 or not, the prefill GEMM's dtype).
  const LinearFormat& linear_format() const { return format_; }
  // The prefill attention multiplies bf16-rounded operands where the GEMM does (and the CPU
  // has AVX512-BF16): the same precision, twice the f32 rate.
  bool bf16_attention() const { return format_.gemm == at::kBFloat16; }

  // Hidden states [t, hidden] f32 of tokens.
  at::Tensor embed(const std::vector<int>& tokens) const;
  // Layer l on hidden states x [t, hidden] of the tokens at positions pos0..pos0+t-1: appends
  // their K/V to `kv`, attends over it, returns the new hidden states.
  // `rope` (optional) are the tables of these positions, shared across layers. `cached`: the
  // chunk starts inside prefix-cache blocks already in `kv` (see CachedRows).
  at::Tensor layer_forward(int l, const at::Tensor& x, int64_t pos0, LayerKV& kv,
                           QueryCapture* capture = nullptr, const RotaryTables* rope = nullptr,
                           CachedRows cached = {}) const;
  // The two halves of layer_forward, for callers that change the attention in between
  // (sparse prefill): norm + QKV + RoPE, then output projection + residual + MLP.
  AttentionInputs layer_qkv(int l, const at::Tensor& x, const RotaryTables& rope) const;
  // The queries alone, exactly as layer_qkv makes them: the sparse prefill recomputes them per
  // chunk instead of holding every row's ([heads, n, d] f32, as large as the residual stream).
  at::Tensor layer_q(int l, const at::Tensor& x, const RotaryTables& rope) const;
  // Keys and values alone (q left undefined), exactly as layer_qkv makes them.
  AttentionInputs layer_kv(int l, const at::Tensor& x, const RotaryTables& rope) const;
  at::Tensor layer_output(int l, const at::Tensor& x, const at::Tensor& attn) const;
  RotaryTables rotary(int64_t pos0, int64_t t) const { return rope_.tables(pos0, t, opts_.device); }

  // Final norm + LM head: [rows, hidden] -> logits [rows, vocab] f32.
  at::Tensor logits(const at::Tensor& x) const;

  // Token-major forward of tokens at pos0.. through all layers, in chunks of
  // options().prefill_chunk rows. Returns logits of the last token ([vocab]), or of every
  // token ([t, vocab]) when all_logits.
  // A single token on CPU takes the decode step (raw loops, same results). `cached`: the first
  // rows of `tokens` are prefix-cache rows already in `cache` (CachedRows; pos0 then starts a
  // chunk of the cold prefill).
  at::Tensor forward(const std::vector<int>& tokens, int64_t pos0, KVCache& cache,
                     QueryCapture* capture = nullptr, bool all_logits = false,
                     CachedRows cached = {}) const;
  // One token at position pos through all layers on CPU (see transformer_decode.cpp):
  // logits [vocab].
  at::Tensor decode(int token, int64_t pos, KVCache& cache, QueryCapture* capture = nullptr) const;
  // One decode step of `count` sequences at once (CPU): every linear layer is one GEMV over the
  // count rows (the weights are read once for all), attention runs per sequence over its own
  // cache. Logits [count, vocab]; row r equals decode() of row r alone, bit for bit (no kernel
  // mixes rows). decode() is this with one row. capture: only with one row.
  at::Tensor decode_batch(const DecodeRow* rows, int count, QueryCapture* capture = nullptr) const;

  // Training: logits [t, vocab] of a whole sequence at positions 0..t-1, no cache, through
  // differentiable LibTorch ops only (fused_attention on a GPU with LibTorch >= 2, else
  // blocked_attention: explicit scores per query block).
  // on_layer (optional) sees each layer's post-RoPE queries, keys and values, still in the
  // autograd graph (attention distillation reads the draft's and the target's attention).
  using LayerTap = std::function<void(int layer, const AttentionInputs&)>;
  at::Tensor sequence_logits(const std::vector<int>& tokens, const LayerTap& on_layer = {}) const;
  // Every weight once, by its Hugging Face name, in load order (a tied LM head is the
  // embedding). The handles share storage with the model's weights.
  const std::vector<std::pair<std::string, at::Tensor>>& named_parameters() const {
    return params_;
  }

 private:
  // Constructor helpers: load a weight (recording it in params_).
  at::Tensor load(const std::string& name, const std::vector<int64_t>& shape, bool keep_dtype);
  Linear load_linear(const std::string& prefix, int64_t out, int64_t in, bool bias);
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w) const;
  // rms_norm of x [t, hidden] in `dtype`, the next GEMM's input dtype (Linear::input_dtype).
  // Inference on the CPU takes one fused pass (activation_rows.h); training keeps the
  // differentiable tensor formula.
  at::Tensor normed(const at::Tensor& x, const at::Tensor& w, at::ScalarType dtype) const;
  // The MLP block: down(silu(gate(h)) * up(h)) with h = the MLP-normed `mid`.
  at::Tensor mlp(const LayerWeights& w, const at::Tensor& mid) const;
  // Post-RoPE queries [heads, t, d] from the attention-normed input h [t, hidden].
  at::Tensor rotated_queries(const LayerWeights& w, const at::Tensor& h,
                             const RotaryTables& rope) const;
  // Post-RoPE keys and raw values [kv_heads, t, d] from h (q left undefined).
  AttentionInputs keys_values(const LayerWeights& w, const at::Tensor& h,
                              const RotaryTables& rope) const;
  void check_token(int token) const;  // throws when outside the vocabulary

  ModelConfig cfg_;
  std::shared_ptr<const WeightStore> store_;
  ComputeOptions opts_;
  Rope rope_;
  at::Tensor embed_tokens_;  // [vocab, hidden] weight dtype
  at::Tensor final_norm_;
  Linear lm_head_;
  std::vector<LayerWeights> layers_;
  std::vector<std::pair<std::string, at::Tensor>> params_;
  int64_t weight_bytes_ = 0, decode_weight_bytes_ = 0;
  LinearFormat format_;
};

}  // namespace dapx
