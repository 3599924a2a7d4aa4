#include "tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "util/error.h"

namespace dapx {

namespace {

struct CodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct MatchDataDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

struct SplitRegex::Impl {
  std::unique_ptr<pcre2_code, CodeDeleter> code;
  std::string pattern;
};

SplitRegex::SplitRegex(const std::string& pattern) : impl_(std::make_unique<Impl>()) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  // \C (one code unit) could cut a character in half, and the pieces go to the next pattern
  // without a UTF check (see split): never allowed.
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C, &error, &offset, nullptr);
  if (code == nullptr) {
    throw Error("pre-tokenizer pattern does not compile at offset " + std::to_string(offset) +
                ": " + pcre2_message(error) + " (pattern: " + pattern + ")");
  }
  impl_->code.reset(code);
  impl_->pattern = pattern;
  // JIT is an optimisation only: a library built without it still matches correctly.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
}

SplitRegex::~SplitRegex() = default;
SplitRegex::SplitRegex(SplitRegex&&) noexcept = default;
SplitRegex& SplitRegex::operator=(SplitRegex&&) noexcept = default;

void SplitRegex::split(std::string_view text, std::vector<std::string_view>& out) const {
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> match(
      pcre2_match_data_create_from_pattern(impl_->code.get(), nullptr));
  if (!match) throw Error("pre-tokenizer: out of memory creating PCRE2 match data");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t pos = 0;   // where the next search starts
  std::size_t kept = 0;  // end of what has been emitted so far
  while (pos < text.size()) {
    // The caller validated the UTF-8 once; re-checking every call would be quadratic.
    uint32_t options = PCRE2_NO_UTF_CHECK;
    int rc =
        pcre2_match(impl_->code.get(), subject, text.size(), pos, options, match.get(), nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      // A very long match can exhaust the JIT stack; the interpreter uses the heap instead.
      options |= PCRE2_NO_JIT;
      rc = pcre2_match(impl_->code.get(), subject, text.size(), pos, options, match.get(), nullptr);
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      throw Error("pre-tokenizer: PCRE2 match failed: " + pcre2_message(rc) +
                  " (pattern: " + impl_->pattern + ")");
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.get());
    const std::size_t begin = ovector[0];
    const std::size_t end = ovector[1];
    if (begin > kept) out.push_back(text.substr(kept, begin - kept));
    if (end > begin) {
      out.push_back(text.substr(begin, end - begin));
      kept = end;
      pos = end;
    } else {
      // An empty match: step over one whole character so the search makes progress.
      pos = begin + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
      kept = begin;
    }
  }
  if (kept < text.size()) out.push_back(text.substr(kept));
}

std::vector<std::string_view> PreTokenizer::split(std::string_view text) const {
  std::vector<std::string_view> pieces{text};
  std::vector<std::string_view> next;
  for (const SplitRegex& regex : splits_) {
    next.clear();
    for (const std::string_view piece : pieces) regex.split(piece, next);
    pieces.swap(next);
  }
  return pieces;
}

}  // namespace dapx
