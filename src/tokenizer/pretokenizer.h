#pragma once
// Pre-tokenisation: PCRE2 "Split" patterns (behaviour Isolated) that cut text into the
// pieces BPE works on. Input must be valid UTF-8 (the encoder guarantees it).
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dapx {

// The pattern HF's ByteLevel pre-tokenizer applies when use_regex is true (GPT-2's).
inline constexpr const char* kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// A compiled pattern (Unicode mode, JIT when the library has it). Immutable after
// construction, so one instance may be used from several threads.
class SplitRegex {
 public:
  // Throws dapx::Error with the PCRE2 message and offset when the pattern does not compile.
  explicit SplitRegex(const std::string& pattern);
  ~SplitRegex();
  SplitRegex(SplitRegex&&) noexcept;
  SplitRegex& operator=(SplitRegex&&) noexcept;

  // Appends the pieces of `text` to `out`: every match and every gap between matches, in
  // order, none empty (HF's "Isolated" behaviour).
  void split(std::string_view text, std::vector<std::string_view>& out) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A chain of split patterns; each one re-splits the pieces of the one before.
class PreTokenizer {
 public:
  void add_split(const std::string& pattern) { splits_.emplace_back(pattern); }
  bool empty() const { return splits_.empty(); }
  // Pieces are views into `text`.
  std::vector<std::string_view> split(std::string_view text) const;

 private:
  std::vector<SplitRegex> splits_;
};

}  // namespace dapx
