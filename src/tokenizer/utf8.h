#pragma once
// Small UTF-8 helpers shared by the encoder (which must cope with invalid input bytes) and
// the streaming decoder (which must never emit half a character).
#include <cstddef>
#include <string>
#include <string_view>

namespace dapx::utf8 {

enum class SeqStatus {
  Valid,       // a whole, well-formed character
  Invalid,     // an ill-formed sequence; `length` is its maximal ill-formed subpart (>= 1)
  Incomplete,  // a well-formed prefix cut off by the end of the input
};

struct Seq {
  SeqStatus status;
  std::size_t length;
};

// Reads the sequence starting at `pos` (< s.size()) per the Unicode well-formedness table
// (no overlongs, no surrogates, nothing above U+10FFFF).
Seq read_sequence(std::string_view s, std::size_t pos);

// Decodes a sequence known to be valid (as reported by read_sequence).
char32_t decode_valid(std::string_view s, std::size_t pos, std::size_t length);

void append_codepoint(std::string& out, char32_t cp);

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace dapx::utf8
