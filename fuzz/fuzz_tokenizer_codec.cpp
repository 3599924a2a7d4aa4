// Fuzz target: encode and decode of arbitrary bytes on real vocabularies. The first input byte
// picks the tokenizer (bits 0-1: GPT-2, Qwen2, Llama-3, or the tiny BPE trained from
// corpus_en.txt as the tests do) and the mode (bit 2); the rest is the payload.
//  - text mode: encode(payload) yields ids in range, and decode gives the payload back
//    byte for byte (Qwen2 normalises to NFC: there the round trip must be stable instead,
//    decode(encode(y)) == y for y = decode(encode(payload)));
//  - ids mode: the payload is read as token ids (3 bytes each, some negative or past the
//    vocabulary): decode throws dapx::Error exactly when an id is out of range, else returns
//    the tokens' bytes; Utf8StreamDecoder fed those bytes in payload-chosen chunks gives the
//    same valid UTF-8 as when fed all at once.
// The vocabularies are read from the build tree (DAPX_DATA_DIR, unpacked at configure time).
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace {

using namespace dapx;

constexpr int kTokenizers = 4;
const char* const kNames[kTokenizers] = {"gpt2", "qwen2", "llama3", "tiny"};
constexpr bool kNfc[kTokenizers] = {false, true, false, false};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  FUZZ_CHECK(in, "cannot read " + path + " (is DAPX_DATA_DIR unpacked?)");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Loaded on first use: each real vocabulary takes a moment to parse.
const Tokenizer& tokenizer(int which) {
  static std::unique_ptr<Tokenizer> loaded[kTokenizers];
  if (!loaded[which]) {
    const std::string data = DAPX_DATA_DIR;
    const std::string json =
        which == 3 ? train_byte_level_bpe_json(read_text(data + "/corpus_en.txt"), 61)
                   : read_text(data + "/tokenizers/" + kNames[which] + "/tokenizer.json");
    loaded[which] = std::make_unique<Tokenizer>(Tokenizer::from_json_string(json, kNames[which]));
  }
  return *loaded[which];
}

bool valid_utf8(const std::string& s) {
  for (size_t pos = 0; pos < s.size();) {
    const utf8::Seq seq = utf8::read_sequence(s, pos);
    if (seq.status != utf8::SeqStatus::Valid) return false;
    pos += seq.length;
  }
  return true;
}

std::vector<int> checked_encode(const Tokenizer& tok, const std::string& text) {
  std::vector<int> ids = tok.encode(text);
  for (const int id : ids) FUZZ_CHECK(id >= 0 && id < tok.vocab_size(), std::to_string(id));
  FUZZ_CHECK(text.empty() == ids.empty(), "only empty text encodes to nothing");
  return ids;
}

void text_mode(int which, const std::string& text) {
  const Tokenizer& tok = tokenizer(which);
  const std::string back = tok.decode(checked_encode(tok, text));
  if (!kNfc[which]) {
    FUZZ_CHECK(back == text, kNames[which]);
  } else {
    FUZZ_CHECK(tok.decode(checked_encode(tok, back)) == back, kNames[which]);
  }
}

void ids_mode(int which, const std::string& payload) {
  const Tokenizer& tok = tokenizer(which);
  const int range = tok.vocab_size() + 16;
  std::vector<int> ids;
  bool in_range = true;
  std::string expected;
  for (size_t i = 0; i + 3 <= payload.size(); i += 3) {
    const auto b = [&](size_t k) { return static_cast<int>(static_cast<uint8_t>(payload[i + k])); };
    const int id = (b(0) | b(1) << 8 | b(2) << 16) % range - 8;
    ids.push_back(id);
    if (id < 0 || id >= tok.vocab_size()) {
      in_range = false;
    } else {
      expected += tok.token_bytes(id);
    }
  }
  std::string bytes;
  try {
    bytes = tok.decode(ids);
    FUZZ_CHECK(in_range, "decode accepted an id out of range");
  } catch (const Error&) {
    FUZZ_CHECK(!in_range, "decode rejected ids in range");
    bytes = expected;
  }
  FUZZ_CHECK(bytes == expected, "decode is the concatenation of token_bytes");

  Utf8StreamDecoder whole;
  std::string once = whole.push(bytes);
  once += whole.flush();
  FUZZ_CHECK(valid_utf8(once), "stream decoder output is valid UTF-8");
  Utf8StreamDecoder chunked;
  std::string streamed;
  size_t pos = 0;
  for (size_t k = 0; pos < bytes.size(); ++k) {
    const size_t n = 1 + static_cast<uint8_t>(payload[k % payload.size()]) % 7;
    const std::string out = chunked.push(bytes.substr(pos, n));
    FUZZ_CHECK(valid_utf8(out), "a pushed chunk's output is valid UTF-8");
    streamed += out;
    pos += n;
  }
  streamed += chunked.flush();
  FUZZ_CHECK(streamed == once, "chunking does not change the stream decoder's output");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int which = data[0] % kTokenizers;
  const std::string payload = fuzz::as_string(data + 1, size - 1);
  if (data[0] & 4) {
    ids_mode(which, payload);
  } else {
    text_mode(which, payload);
  }
  return 0;
}
