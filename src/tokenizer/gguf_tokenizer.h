#pragma once
// The tokenizer and chat template of a GGUF file, both ways: llama.cpp's `tokenizer.*` metadata
// as the Hugging Face tokenizer.json and tokenizer_config.json dapx loads, and the reverse for
// writing GGUF files from a Hugging Face model directory.
//
// Keys (as llama.cpp's converter writes them):
//   tokenizer.ggml.model          string, "gpt2" for byte-level BPE (the only kind dapx reads)
//   tokenizer.ggml.pre            string, the pre-tokenizer: "gpt-2" (or absent / "default"),
//                                 "qwen2", "llama-bpe" (also "llama3", "llama-v3")
//   tokenizer.ggml.tokens         array of string, token id = index; normal tokens in the
//                                 byte-level alphabet ("Ġhello"), control and user-defined
//                                 tokens as their text
//   tokenizer.ggml.token_type     array of int32, one per token (GgufTokenType)
//   tokenizer.ggml.merges         array of string, "a b", by rank
//   tokenizer.ggml.{bos,eos,unknown,seperator,padding,mask}_token_id   uint32
//   tokenizer.ggml.add_bos_token, tokenizer.ggml.add_eos_token          bool
//   tokenizer.chat_template       string (the Jinja template); named extra templates as
//                                 tokenizer.chat_template.NAME, listed in tokenizer.chat_templates
#include <nlohmann/json.hpp>
#include <string>

#include "io/gguf.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace dapx {

// llama.cpp's token types (the values of tokenizer.ggml.token_type).
enum class GgufTokenType : int32_t {
  Normal = 1,
  Unknown = 2,
  Control = 3,      // special tokens: <|im_start|>, <|eot_id|>, ...
  UserDefined = 4,  // added tokens that are not special
  Unused = 5,       // padding entries ("[PAD151665]")
  Byte = 6,         // SentencePiece byte tokens (<0x0A>)
};

// The tokenizer.json of a GGUF file's vocabulary: a BPE model whose vocab holds every token
// (id = index), its merges, control (special) and user-defined tokens also as added_tokens,
// and the normalizer / pre_tokenizer / decoder sections the family's own tokenizer.json has
// (NFC for qwen2, ignore_merges for llama-bpe). When the file adds BOS (add_bos_token, which
// defaults to true for llama-bpe as in llama.cpp) the post_processor is the TemplateProcessing
// that puts the BOS token first, as in Llama 3's tokenizer.json; Tokenizer::encode does not
// apply post-processors (it is the HF encode without special tokens: chat formats write BOS as
// text), so its ids are those of the HF tokenizer the file came from.
// Throws dapx::Error naming the file and key: no tokenizer, a model other than "gpt2",
// an unknown pre-tokenizer, a token_type array of the wrong length or with a value outside
// 1..6, merges that are not "a b" or name pieces missing from the tokens, special token ids
// out of range, token text that is not valid UTF-8.
nlohmann::json tokenizer_json_from_gguf(const GgufMetadata& m);
// Tokenizer::from_json_string of the above, its errors naming the GGUF file.
Tokenizer tokenizer_from_gguf(const GgufMetadata& m);

// The tokenizer_config.json equivalent: chat_template (a string, or the list of
// {"name", "template"} when the file has named templates), bos_token / eos_token /
// pad_token / unk_token as their text, add_bos_token (llama.cpp's default when absent) and
// add_eos_token. Throws dapx::Error for ids out of range.
nlohmann::json tokenizer_config_from_gguf(const GgufMetadata& m);
// detect_chat_format_from_json of the above: ChatML, Llama3, or Raw (no or an unknown template).
ChatFormat chat_format_from_gguf(const GgufMetadata& m);

// The `tokenizer.*` metadata of a Hugging Face tokenizer, in the order and with the types
// llama.cpp's converter writes: model "gpt2", pre (from the pre-tokenizer's split pattern,
// normalizer and ignore_merges: one of gpt-2, qwen2, llama-bpe), tokens in id order with
// added tokens and "[PADn]" (Unused) for ids nothing defines, token_type (added tokens that
// are special or look special, "<|...|>", are Control, other added tokens UserDefined, the rest
// Normal), merges as "a b", special token ids from tokenizer_config's bos/eos/unk/sep/pad/mask
// tokens (looked up among the added tokens) then from `model_config` (config.json:
// bos_token_id, eos_token_id, ... when a single integer), add_bos_token / add_eos_token from
// the post_processor's TemplateProcessing then tokenizer_config, and chat_template from
// tokenizer_config. `tokenizer_config` and `model_config` may be null.
// Throws dapx::Error for a tokenizer that is not byte-level BPE or whose pre-tokenizer is none
// of the three (naming its split patterns).
GgufMetadataList gguf_tokenizer_metadata(const nlohmann::json& tokenizer_json,
                                         const nlohmann::json& tokenizer_config,
                                         const nlohmann::json& model_config = nullptr);

}  // namespace dapx
