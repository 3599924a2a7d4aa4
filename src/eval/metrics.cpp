#include "eval/metrics.h"

#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <iterator>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "tokenizer/utf8.h"
#include "util/error.h"

namespace dapx::eval {

namespace {

// Python compares and counts str per code point, so the metrics do too. Ill-formed bytes (a
// prediction cut mid-character) become U+FFFD, as a lenient Python decode would make them.
std::u32string decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  std::size_t pos = 0;
  while (pos < s.size()) {
    const utf8::Seq seq = utf8::read_sequence(s, pos);
    out += seq.status == utf8::SeqStatus::Valid ? utf8::decode_valid(s, pos, seq.length)
                                                : char32_t{0xFFFD};
    pos += seq.length;
  }
  return out;
}

std::string encode(std::u32string_view cps) {
  std::string out;
  out.reserve(cps.size());
  for (const char32_t c : cps) utf8::append_codepoint(out, c);
  return out;
}

// str.isspace: bidirectional class WS, B or S, or category Zs (so \x1c..\x1f count too).
bool is_space(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
  const auto cp = static_cast<utf8proc_int32_t>(c);
  const auto bidi = utf8proc_get_property(cp)->bidi_class;
  return bidi == UTF8PROC_BIDI_CLASS_WS || bidi == UTF8PROC_BIDI_CLASS_B ||
         bidi == UTF8PROC_BIDI_CLASS_S || utf8proc_category(cp) == UTF8PROC_CATEGORY_ZS;
}

// A word character for the regex \b: a letter or a number (str.isalnum), or '_'.
bool is_word(char32_t c) {
  if (c < 0x80) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  }
  const utf8proc_category_t cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
         (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
}

// The regex \d on str: any decimal digit, not only ASCII.
bool is_decimal(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  return utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_ND;
}

// string.punctuation: the ASCII punctuation only; other scripts' marks stay.
bool is_ascii_punct(char32_t c) {
  return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
         (c >= 0x7B && c <= 0x7E);
}

// Unicode's Cased (letters with case, and a few symbols that lower or upper).
bool is_cased(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  const auto cp = static_cast<utf8proc_int32_t>(c);
  const utf8proc_category_t cat = utf8proc_category(cp);
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL ||
         cat == UTF8PROC_CATEGORY_LT || utf8proc_tolower(cp) != cp || utf8proc_toupper(cp) != cp;
}

// Unicode's Case_Ignorable: marks, format characters, modifiers, and the in-word punctuation
// of word breaking (apostrophes, '.', ':', middle dots).
bool is_case_ignorable(char32_t c) {
  static constexpr char32_t kInWordPunct[] = {0x27,   0x2E,   0x3A,   0xB7,   0x387,  0x55F,
                                              0x5F4,  0x2018, 0x2019, 0x2024, 0x2027, 0xFE13,
                                              0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A};
  if (std::find(std::begin(kInWordPunct), std::end(kInWordPunct), c) != std::end(kInWordPunct)) {
    return true;
  }
  if (c < 0x80) return c == '^' || c == '`';  // the ASCII Sk
  const utf8proc_category_t cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME ||
         cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_LM || cat == UTF8PROC_CATEGORY_SK;
}

// A capital sigma lowers to the final form when a cased letter precedes it and none follows,
// case-ignorable characters skipped either way (str.lower's Final_Sigma rule).
bool is_final_sigma(const std::u32string& s, std::size_t i) {
  std::size_t j = i;
  while (j > 0 && is_case_ignorable(s[j - 1])) --j;
  if (j == 0 || !is_cased(s[j - 1])) return false;
  std::size_t k = i + 1;
  while (k < s.size() && is_case_ignorable(s[k])) ++k;
  return k == s.size() || !is_cased(s[k]);
}

// str.lower: the simple mappings, U+0130 to "i" + combining dot (the one unconditional
// multi-character lowering) and the final sigma.
std::u32string lower(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char32_t c = s[i];
    if (c < 0x80) {
      out += (c >= 'A' && c <= 'Z') ? c + 32 : c;
    } else if (c == 0x130) {
      out += U"i\u0307";
    } else if (c == 0x3A3) {
      out += is_final_sigma(s, i) ? char32_t{0x3C2} : char32_t{0x3C3};
    } else {
      out += static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
    }
  }
  return out;
}

// str.split() with no argument: runs of whitespace separate, none is empty.
std::vector<std::u32string> split_whitespace(std::u32string_view s) {
  std::vector<std::u32string> words;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    const std::size_t start = i;
    while (i < s.size() && !is_space(s[i])) ++i;
    if (i > start) words.emplace_back(s.substr(start, i - start));
  }
  return words;
}

// re.findall(r"\d+", s).
std::vector<std::u32string> digit_runs(std::u32string_view s) {
  std::vector<std::u32string> runs;
  std::size_t i = 0;
  while (i < s.size()) {
    if (!is_decimal(s[i])) {
      ++i;
      continue;
    }
    const std::size_t start = i;
    while (i < s.size() && is_decimal(s[i])) ++i;
    runs.emplace_back(s.substr(start, i - start));
  }
  return runs;
}

// The share of the prediction's numbers equal to `target`; 0 when it has none.
double share_of_numbers_equal(const std::string& prediction, const std::u32string& target) {
  const std::vector<std::u32string> numbers = digit_runs(decode(prediction));
  if (numbers.empty()) return 0.0;
  const auto right = std::count(numbers.begin(), numbers.end(), target);
  return static_cast<double>(right) / static_cast<double>(numbers.size());
}

// The regex \b(a|an|the)\b replaced by a space, matched on the original text left to right.
std::u32string remove_articles(const std::u32string& s) {
  static constexpr std::u32string_view kArticles[] = {U"a", U"an", U"the"};
  std::u32string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const bool boundary_before = i == 0 || !is_word(s[i - 1]);
    std::size_t matched = 0;
    if (boundary_before) {
      for (const std::u32string_view article : kArticles) {
        const std::size_t end = i + article.size();
        if (s.compare(i, article.size(), article) == 0 && (end == s.size() || !is_word(s[end]))) {
          matched = article.size();
          break;
        }
      }
    }
    if (matched > 0) {
      out += U' ';
      i += matched;
    } else {
      out += s[i++];
    }
  }
  return out;
}

std::vector<std::string> split_on_space(const std::string& s) {
  std::vector<std::string> words;
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t end = std::min(s.find(' ', start), s.size());
    if (end > start) words.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return words;
}

// ---- ROUGE-L, as the `rouge` package ----

// The package's preprocessing: split at '.', drop empty pieces, collapse whitespace. A piece of
// only whitespace survives as an empty sentence, whose one token is the empty word.
std::vector<std::vector<int>> rouge_sentences(const std::string& text,
                                              std::unordered_map<std::u32string, int>& ids) {
  std::vector<std::vector<int>> sentences;
  const std::u32string cps = decode(text);
  std::size_t start = 0;
  while (start <= cps.size()) {
    std::size_t end = cps.find(U'.', start);
    if (end == std::u32string::npos) end = cps.size();
    if (end > start) {
      std::vector<std::u32string> words =
          split_whitespace(std::u32string_view(cps).substr(start, end - start));
      if (words.empty()) words.emplace_back();
      std::vector<int> tokens;
      tokens.reserve(words.size());
      for (std::u32string& w : words) {
        tokens.push_back(ids.emplace(std::move(w), static_cast<int>(ids.size())).first->second);
      }
      sentences.push_back(std::move(tokens));
    }
    start = end + 1;
  }
  return sentences;
}

// The words of the LCS of ref and hyp that the package's table walk picks: a match steps
// diagonally, else up when the cell above is strictly larger, else left. Which of several LCSs
// is picked changes the union over sentences, so the walk is kept exactly.
void add_lcs_words(const std::vector<int>& ref, const std::vector<int>& hyp, std::set<int>& out) {
  const std::size_t n = ref.size();
  const std::size_t m = hyp.size();
  std::vector<int> table((n + 1) * (m + 1), 0);
  auto at = [&](std::size_t i, std::size_t j) -> int& { return table[i * (m + 1) + j]; };
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      at(i, j) =
          ref[i - 1] == hyp[j - 1] ? at(i - 1, j - 1) + 1 : std::max(at(i - 1, j), at(i, j - 1));
    }
  }
  std::size_t i = n;
  std::size_t j = m;
  while (i > 0 && j > 0) {
    if (ref[i - 1] == hyp[j - 1]) {
      out.insert(ref[i - 1]);
      --i;
      --j;
    } else if (at(i - 1, j) > at(i, j - 1)) {
      --i;
    } else {
      --j;
    }
  }
}

std::size_t unique_count(const std::vector<std::vector<int>>& sentences) {
  std::set<int> unique;
  for (const auto& s : sentences) unique.insert(s.begin(), s.end());
  return unique.size();
}

// ---- fuzz.ratio ----

// Insert/delete edit distance (python-Levenshtein's distance with substitution weight 2).
std::size_t indel_distance(std::u32string_view a, std::u32string_view b) {
  // A common prefix and suffix never change the distance.
  while (!a.empty() && !b.empty() && a.front() == b.front()) {
    a.remove_prefix(1);
    b.remove_prefix(1);
  }
  while (!a.empty() && !b.empty() && a.back() == b.back()) {
    a.remove_suffix(1);
    b.remove_suffix(1);
  }
  // Distance = len(a) + len(b) - 2 * LCS, LCS by two rows.
  std::vector<std::size_t> prev(b.size() + 1, 0);
  std::vector<std::size_t> cur(b.size() + 1, 0);
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    }
    std::swap(prev, cur);
  }
  return a.size() + b.size() - 2 * prev[b.size()];
}

// fuzz.ratio(s1, s2), 0..100: equal strings 100 (even both empty), one empty 0, else
// round(100 * (lensum - dist) / lensum) with Python's round half to even.
int fuzz_ratio(const std::u32string& s1, const std::u32string& s2) {
  if (s1 == s2) return 100;
  if (s1.empty() || s2.empty()) return 0;
  const std::size_t lensum = s1.size() + s2.size();
  const std::size_t dist = indel_distance(s1, s2);
  const double ratio = static_cast<double>(lensum - dist) / static_cast<double>(lensum);
  return static_cast<int>(std::nearbyint(100.0 * ratio));  // default mode: ties to even
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

std::string normalize_answer(const std::string& s) {
  // Python's order: lower (which sees the punctuation, for the final sigma), punctuation,
  // articles, whitespace.
  std::u32string text = lower(decode(s));
  text.erase(std::remove_if(text.begin(), text.end(), is_ascii_punct), text.end());
  text = remove_articles(text);
  std::u32string out;
  for (const std::u32string& w : split_whitespace(text)) {
    if (!out.empty()) out += U' ';
    out += w;
  }
  return encode(out);
}

double qa_f1(const std::string& prediction, const std::string& reference) {
  const std::vector<std::string> pred = split_on_space(normalize_answer(prediction));
  const std::vector<std::string> ref = split_on_space(normalize_answer(reference));
  std::unordered_map<std::string, int> ref_counts;
  for (const std::string& w : ref) ++ref_counts[w];
  int same = 0;
  for (const std::string& w : pred) {
    auto it = ref_counts.find(w);
    if (it != ref_counts.end() && it->second > 0) {
      --it->second;
      ++same;
    }
  }
  if (same == 0) return 0.0;
  const double precision = static_cast<double>(same) / static_cast<double>(pred.size());
  const double recall = static_cast<double>(same) / static_cast<double>(ref.size());
  return 2.0 * precision * recall / (precision + recall);
}

double rouge_l(const std::string& prediction, const std::string& reference) {
  std::unordered_map<std::u32string, int> ids;
  const auto hyp = rouge_sentences(prediction, ids);
  const auto ref = rouge_sentences(reference, ids);
  // The package raises on an empty side; LongBench catches that and scores 0. (It also scores 0
  // when its recursive LCS walk overflows Python's stack, a sentence pair of about 1000 words;
  // that limit depends on the interpreter and is not reproduced.)
  if (hyp.empty() || ref.empty()) return 0.0;
  std::set<int> lcs_union;
  for (const auto& r : ref) {
    for (const auto& h : hyp) add_lcs_words(r, h, lcs_union);
  }
  const auto llcs = static_cast<double>(lcs_union.size());
  const double recall = llcs / static_cast<double>(unique_count(ref));
  const double precision = llcs / static_cast<double>(unique_count(hyp));
  return 2.0 * ((precision * recall) / (precision + recall + 1e-8));
}

double classification_score(const std::string& prediction, const std::string& reference,
                            const std::vector<std::string>& all_classes) {
  std::vector<std::string> matches;
  for (const std::string& c : all_classes) {
    if (prediction.find(c) != std::string::npos) matches.push_back(c);
  }
  // LongBench drops a match that is a proper substring of the reference while iterating the same
  // list, so the entry after each removed one is skipped; kept as is, since it moves scores.
  for (std::size_t i = 0; i < matches.size(); ++i) {
    const std::string term = matches[i];
    if (term != reference && reference.find(term) != std::string::npos) {
      matches.erase(std::find(matches.begin(), matches.end(), term));
    }
  }
  if (std::find(matches.begin(), matches.end(), reference) == matches.end()) return 0.0;
  return 1.0 / static_cast<double>(matches.size());
}

double retrieval_score(const std::string& prediction, const std::string& reference) {
  // The first "Paragraph <digits>" in the reference.
  static constexpr std::u32string_view kKey = U"Paragraph ";
  const std::u32string ref = decode(reference);
  for (std::size_t pos = ref.find(kKey); pos != std::u32string::npos;
       pos = ref.find(kKey, pos + 1)) {
    std::size_t end = pos + kKey.size();
    while (end < ref.size() && is_decimal(ref[end])) ++end;
    if (end > pos + kKey.size()) {
      const std::u32string id = ref.substr(pos + kKey.size(), end - pos - kKey.size());
      return share_of_numbers_equal(prediction, id);
    }
  }
  throw Error("retrieval metric: the reference answer \"" + reference +
              "\" holds no \"Paragraph N\"; passage_retrieval answers look like "
              "\"Paragraph 12\" (is the metric right for this dataset?)");
}

double count_score(const std::string& prediction, const std::string& reference) {
  return share_of_numbers_equal(prediction, decode(reference));
}

double code_sim(const std::string& prediction, const std::string& reference) {
  const std::size_t first = prediction.find_first_not_of('\n');
  std::string_view rest =
      first == std::string::npos ? std::string_view() : std::string_view(prediction).substr(first);
  std::string_view line;
  while (true) {
    const std::size_t nl = rest.find('\n');
    const std::string_view candidate = rest.substr(0, nl);
    if (candidate.find('`') == std::string_view::npos &&
        candidate.find('#') == std::string_view::npos &&
        candidate.find("//") == std::string_view::npos) {
      line = candidate;
      break;
    }
    if (nl == std::string_view::npos) break;  // no clean line: the empty prediction
    rest.remove_prefix(nl + 1);
  }
  return fuzz_ratio(decode(line), decode(reference)) / 100.0;
}

std::vector<std::string> metric_names() {
  return {"qa_f1", "rouge_l", "classification", "retrieval", "count", "code_sim"};
}

double score_metric(const std::string& metric, const std::string& prediction,
                    const std::string& reference, const std::vector<std::string>& all_classes) {
  if (metric == "qa_f1") return qa_f1(prediction, reference);
  if (metric == "rouge_l") return rouge_l(prediction, reference);
  if (metric == "classification") return classification_score(prediction, reference, all_classes);
  if (metric == "retrieval") return retrieval_score(prediction, reference);
  if (metric == "count") return count_score(prediction, reference);
  if (metric == "code_sim") return code_sim(prediction, reference);
  throw Error("unknown metric \"" + metric + "\"; known metrics: " + join(metric_names()));
}

}  // namespace dapx::eval
