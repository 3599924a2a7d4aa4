#pragma once
// The GPT-2 "byte-level" alphabet: every byte maps to one printable Unicode character so
// that vocab pieces are readable strings (space -> "Ġ", newline -> "Ċ").
#include <array>
#include <string>
#include <string_view>

namespace dapx::byte_level {

// Printable Latin-1 bytes map to themselves; the others to U+0100, U+0101, ... in byte order.
const std::array<char32_t, 256>& byte_to_codepoint();
// The same mapping as ready-made UTF-8 strings.
const std::array<std::string, 256>& byte_to_utf8();
// The byte a character stands for, or -1 when it is not part of the alphabet.
int codepoint_to_byte(char32_t cp);
// Raw bytes -> byte-level string (e.g. " hi" -> "Ġhi").
std::string encode(std::string_view bytes);
// Byte-level string -> raw bytes. Characters outside the alphabet (as in added tokens whose
// text is stored verbatim) are kept as their own UTF-8.
std::string decode(std::string_view piece);

}  // namespace dapx::byte_level
