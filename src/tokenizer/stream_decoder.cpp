// Utf8StreamDecoder (declared in tokenizer.h, next to the tokenizer whose output it streams).
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace dapx {

namespace {

// Appends the printable part of `bytes`; returns how many bytes were consumed. With
// `final`, a trailing incomplete sequence is consumed too (as one U+FFFD).
std::size_t drain(std::string_view bytes, bool final, std::string& out) {
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    const utf8::Seq seq = utf8::read_sequence(bytes, pos);
    if (seq.status == utf8::SeqStatus::Valid) {
      out.append(bytes.substr(pos, seq.length));
    } else if (seq.status == utf8::SeqStatus::Invalid || final) {
      out.append(utf8::kReplacementChar);
    } else {
      break;  // the rest of the character is still to come
    }
    pos += seq.length;
  }
  return pos;
}

}  // namespace

std::string Utf8StreamDecoder::push(const std::string& bytes) {
  pending_ += bytes;
  std::string out;
  pending_.erase(0, drain(pending_, /*final=*/false, out));
  return out;
}

std::string Utf8StreamDecoder::flush() {
  std::string out;
  drain(pending_, /*final=*/true, out);
  pending_.clear();
  return out;
}

}  // namespace dapx
