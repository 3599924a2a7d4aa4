// Fuzz target: tokenizer.json loading (Tokenizer::from_json_string): normalizers,
// pre-tokenizers and their split patterns, decoder, BPE vocab and merges, added tokens.
// A tokenizer that loads is then used once: a fixed text with special tokens, digits,
// whitespace runs, non-ASCII and invalid UTF-8 is encoded and decoded, and every id is
// looked up. dapx::Error is the expected rejection; anything else is a bug.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace {

using namespace dapx;

const std::string kSample =
    "Hello, world! It's 2024-05-01:  tabs\tand\r\nnewlines\n\n   x"
    "<|endoftext|><|im_start|>user\n\xc3\xa9t\xc3\xa9 e\xcc\x81t\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd "
    "\xf0\x9f\x98\x80 \xff\xfe\xc3 \xe2\x82 12345678 '\xe2\x80\x99ll";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input = fuzz::as_string(data, size);
  std::optional<Tokenizer> tok;
  try {
    tok.emplace(Tokenizer::from_json_string(input, "fuzz/tokenizer.json"));
  } catch (const Error&) {
    return 0;
  }
  const int vocab = tok->vocab_size();
  FUZZ_CHECK(vocab >= 256, "a byte-level vocabulary has a token per byte");
  std::vector<int> ids;
  try {
    ids = tok->encode(kSample);
  } catch (const Error&) {
    return 0;  // e.g. a split pattern that hits PCRE2's match limit
  }
  for (const int id : ids) {
    FUZZ_CHECK(id >= 0 && id < vocab, std::to_string(id));
    tok->token_bytes(id);
    tok->token_piece(id);
    tok->is_special(id);
  }
  tok->decode(ids);
  for (const int id : {0, vocab - 1}) {
    const std::string piece = tok->token_piece(id);
    tok->token_id(piece);
  }
  return 0;
}
