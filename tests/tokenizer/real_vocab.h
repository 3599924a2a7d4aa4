#pragma once
// The three real vocabularies, each loaded once per test binary (parsing takes a while).
#include <string>

#include "tokenizer/tokenizer.h"

namespace dapx::test {

inline std::string vocab_path(const std::string& family) {
  return std::string(DAPX_DATA_DIR) + "/tokenizers/" + family + "/tokenizer.json";
}

inline const Tokenizer& real_tokenizer(const std::string& family) {
  if (family == "gpt2") {
    static const Tokenizer t = Tokenizer::load(vocab_path("gpt2"));
    return t;
  }
  if (family == "qwen2") {
    static const Tokenizer t = Tokenizer::load(vocab_path("qwen2"));
    return t;
  }
  static const Tokenizer t = Tokenizer::load(vocab_path("llama3"));
  return t;
}

}  // namespace dapx::test
