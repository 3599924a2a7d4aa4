#pragma once
// Byte-level BPE tokenizer loaded from a Hugging Face tokenizer.json (GPT-2, Qwen2, Llama-3
// families): NFC normaliser when present, Split pre-tokenizers (PCRE2), ByteLevel mapping,
// BPE merges by rank, added/special tokens matched before splitting.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace dapx {

class Tokenizer {
 public:
  // Throws dapx::Error naming the file and the problem (not JSON, no "model", not BPE, ...).
  static Tokenizer load(const std::filesystem::path& tokenizer_json);
  static Tokenizer from_json_string(const std::string& json, const std::string& source);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Special/added tokens written in the text (e.g. "<|im_start|>") become their ids.
  // Bytes that are not valid UTF-8 become their single-byte tokens, so decode(encode(x)) == x
  // for any byte string (up to NFC where the tokenizer normalises). Safe to call from several
  // threads (the pre-token cache is locked).
  std::vector<int> encode(const std::string& text) const;
  // Concatenated bytes of the tokens (may end inside a UTF-8 sequence).
  std::string decode(const std::vector<int>& ids) const;
  // Bytes of one token.
  std::string token_bytes(int id) const;
  // The token's string as stored in the vocab (e.g. "Ġhello").
  std::string token_piece(int id) const;
  std::optional<int> token_id(const std::string& piece) const;
  int vocab_size() const;  // 1 + largest id (incl. added tokens)
  bool is_special(int id) const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Holds back bytes that end inside a UTF-8 sequence so that streamed text is always whole
// characters; invalid bytes are emitted as U+FFFD.
class Utf8StreamDecoder {
 public:
  std::string push(const std::string& bytes);  // returns the printable part
  std::string flush();                         // whatever is left, invalid bytes replaced
 private:
  std::string pending_;
};

// Trains a small byte-level BPE vocabulary on `corpus` and returns a tokenizer.json string
// (GPT-2 style pre-tokenizer). Used by make-model for tiny test models. Added tokens:
// <|endoftext|>, <|im_start|>, <|im_end|>. Vocab size = 256 + merges + 3.
std::string train_byte_level_bpe_json(const std::string& corpus, int num_merges);

}  // namespace dapx
