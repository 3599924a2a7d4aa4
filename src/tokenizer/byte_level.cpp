#include "tokenizer/byte_level.h"

#include "tokenizer/utf8.h"

namespace dapx::byte_level {

namespace {

bool is_printable_latin1(int b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

std::array<char32_t, 256> build_table() {
  std::array<char32_t, 256> table{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    table[b] = is_printable_latin1(b) ? static_cast<char32_t>(b) : next++;
  }
  return table;
}

}  // namespace

const std::array<char32_t, 256>& byte_to_codepoint() {
  static const std::array<char32_t, 256> table = build_table();
  return table;
}

const std::array<std::string, 256>& byte_to_utf8() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    for (int b = 0; b < 256; ++b) utf8::append_codepoint(t[b], byte_to_codepoint()[b]);
    return t;
  }();
  return table;
}

int codepoint_to_byte(char32_t cp) {
  if (cp < 256) return is_printable_latin1(static_cast<int>(cp)) ? static_cast<int>(cp) : -1;
  // The non-printable bytes took U+0100.. in ascending byte order; 68 of them in total.
  static const std::array<int, 68> remapped = [] {
    std::array<int, 68> r{};
    for (int b = 0; b < 256; ++b) {
      const char32_t c = byte_to_codepoint()[b];
      if (c >= 256) r[c - 256] = b;
    }
    return r;
  }();
  return cp - 256 < remapped.size() ? remapped[cp - 256] : -1;
}

std::string encode(std::string_view bytes) {
  const auto& table = byte_to_utf8();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) out += table[static_cast<unsigned char>(c)];
  return out;
}

std::string decode(std::string_view piece) {
  std::string out;
  out.reserve(piece.size());
  std::size_t pos = 0;
  while (pos < piece.size()) {
    const utf8::Seq seq = utf8::read_sequence(piece, pos);
    if (seq.status != utf8::SeqStatus::Valid) {
      // Not expected in vocab pieces (they come from JSON); keep the bytes as they are.
      out.append(piece.substr(pos, seq.length));
      pos += seq.length;
      continue;
    }
    const int b = codepoint_to_byte(utf8::decode_valid(piece, pos, seq.length));
    if (b >= 0) {
      out += static_cast<char>(b);
    } else {
      out.append(piece.substr(pos, seq.length));
    }
    pos += seq.length;
  }
  return out;
}

}  // namespace dapx::byte_level
