// Shared machinery of the generators: templates, randomness, haystack streams, length fitting.
#include <algorithm>
#include <cmath>

#include "eval/ruler_gen.h"
#include "util/error.h"

namespace dapx::eval::detail {

namespace {

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t'; }
// Bytes of a multi-byte character count as letters: a cut never splits a character.
bool is_letter(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u >= 0x80;
}
bool is_name_char(char c) { return (c >= 'a' && c <= 'z') || c == '_' || (c >= '0' && c <= '9'); }

// A piece may end at i when it does not end in whitespace nor inside a run of letters: whole
// words, but any digit of a number or UUID (each digit is a token there).
bool cut_allowed(std::string_view s, size_t i) {
  if (i == s.size()) return true;
  return !is_space(s[i - 1]) && !(is_letter(s[i - 1]) && is_letter(s[i]));
}

size_t count_cuts(std::string_view s) {
  size_t n = 0;
  for (size_t i = 1; i <= s.size(); ++i) n += cut_allowed(s, i) ? 1 : 0;
  return n;
}

// Where the k-th cut (1-based) of s is.
size_t kth_cut(std::string_view s, size_t k) {
  for (size_t i = 1; i <= s.size(); ++i) {
    if (cut_allowed(s, i) && --k == 0) return i;
  }
  return s.size();
}

// Sentence ends: . ! ? (with closing quotes) before a space and a capital or an opening quote.
void split_sentences(const std::string& text, std::vector<std::string>& out) {
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '.' && text[i] != '!' && text[i] != '?') continue;
    size_t end = i + 1;
    while (end < text.size() && (text[end] == '"' || text[end] == '\'' || text[end] == ')')) ++end;
    if (end + 1 < text.size() && text[end] == ' ' &&
        ((text[end + 1] >= 'A' && text[end + 1] <= 'Z') || text[end + 1] == '"')) {
      out.push_back(text.substr(start, end - start));
      start = end + 1;
      i = end;
    }
  }
  if (start < text.size()) out.push_back(text.substr(start));
}

}  // namespace

// ---- templates ----

std::vector<std::string> placeholders(std::string_view tmpl, const std::string& where) {
  std::vector<std::string> names;
  for (size_t i = 0; i < tmpl.size(); ++i) {
    const char c = tmpl[i];
    if ((c == '{' || c == '}') && i + 1 < tmpl.size() && tmpl[i + 1] == c) {
      ++i;  // "{{" or "}}": a literal brace
    } else if (c == '{') {
      size_t end = i + 1;
      while (end < tmpl.size() && is_name_char(tmpl[end])) ++end;
      if (end == i + 1 || end == tmpl.size() || tmpl[end] != '}') {
        throw Error(where + ": '{' at byte " + std::to_string(i) +
                    " does not start a {placeholder} (write {{ for a literal brace)");
      }
      names.emplace_back(tmpl.substr(i + 1, end - i - 1));
      i = end;
    } else if (c == '}') {
      throw Error(where + ": stray '}' at byte " + std::to_string(i) +
                  " (write }} for a literal brace)");
    }
  }
  return names;
}

std::string fill(std::string_view tmpl, const Vars& vars, std::string_view tracked,
                 std::vector<size_t>* at) {
  std::string out;
  out.reserve(tmpl.size());
  for (size_t i = 0; i < tmpl.size(); ++i) {
    const char c = tmpl[i];
    if ((c == '{' || c == '}') && i + 1 < tmpl.size() && tmpl[i + 1] == c) {
      out.push_back(c);
      ++i;
      continue;
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    const size_t end = tmpl.find('}', i);
    const std::string_view name = tmpl.substr(i + 1, end - i - 1);
    const auto var =
        std::find_if(vars.begin(), vars.end(), [&](const auto& v) { return v.first == name; });
    // Templates are validated when loaded, so this is a generator bug, not a user error.
    if (var == vars.end()) throw Error("internal: no value for {" + std::string(name) + "}");
    if (at != nullptr && name == tracked) at->push_back(out.size());
    out += var->second;
    i = end;
  }
  return out;
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i > 0 ? separator : "") + items[i];
  return out;
}

std::string join_and(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += (i + 1 == items.size()) ? " and " : ", ";
    out += items[i];
  }
  return out;
}

std::string make_completion(const TaskSpec& spec, const std::vector<std::string>& answers) {
  std::string numbered, spaced;
  for (size_t i = 0; i < answers.size(); ++i) {
    numbered += (i > 0 ? " " : "") + std::to_string(i + 1) + ". " + answers[i];
    spaced += (i > 0 ? " " : "") + answers[i];
  }
  return fill(
      spec.completion,
      {{"answers", join_and(answers)}, {"answers_numbered", numbered}, {"answers_spaced", spaced}});
}

// ---- randomness ----

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t below(Rng& rng, uint64_t n) {
  // Rejection keeps it unbiased: drop the top partial block of 2^64 % n values.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x = rng();
  while (x >= limit) x = rng();
  return x % n;
}

double unit_real(Rng& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

std::string random_number(Rng& rng, int digits) {
  uint64_t low = 1;
  for (int i = 1; i < digits; ++i) low *= 10;
  return std::to_string(low + below(rng, 9 * low));
}

std::string random_uuid(Rng& rng) {
  static constexpr char kHex[] = "0123456789abcdef";
  const uint64_t hi = (rng() & ~0xf000ULL) | 0x4000ULL;                            // version 4
  const uint64_t lo = (rng() & ~(0xc000000000000000ULL)) | 0x8000000000000000ULL;  // variant 10
  std::string out;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) out.push_back('-');
    const uint64_t half = i < 16 ? hi : lo;
    out.push_back(kHex[(half >> (60 - 4 * (i % 16))) & 0xf]);
  }
  return out;
}

std::string random_letters(Rng& rng, int length, bool upper) {
  std::string out;
  for (int i = 0; i < length; ++i)
    out.push_back(static_cast<char>((upper ? 'A' : 'a') + below(rng, 26)));
  return out;
}

const std::string& pick(Rng& rng, const std::vector<std::string>& items) {
  return items[below(rng, items.size())];
}

std::vector<double> sample_depths(Rng& rng, size_t count) {
  constexpr int kDepths = 40;  // RULER: np.round(np.linspace(0, 100, 40))
  std::vector<double> grid;
  for (int i = 0; i < kDepths; ++i) grid.push_back(std::round(100.0 * i / (kDepths - 1)) / 100.0);
  shuffle(rng, grid);
  std::vector<double> depths;
  for (size_t i = 0; i < count; ++i) {
    depths.push_back(i < grid.size() ? grid[i] : grid[below(rng, grid.size())]);
  }
  std::sort(depths.begin(), depths.end());
  return depths;
}

// ---- haystacks ----

PieceStream::PieceStream(std::vector<std::string> pieces) : pieces_(std::move(pieces)) {
  cum_.reserve(pieces_.size() + 1);
  cum_.push_back(0);
  for (const auto& p : pieces_) cum_.push_back(cum_.back() + count_cuts(p));
}

std::vector<std::string_view> PieceStream::take(size_t n) const {
  std::vector<std::string_view> out;
  n = std::min(n, units());
  // Piece p holds units (cum_[p], cum_[p + 1]]; it is whole when n reaches cum_[p + 1].
  const size_t p =
      static_cast<size_t>(std::upper_bound(cum_.begin(), cum_.end(), n) - cum_.begin()) - 1;
  for (size_t i = 0; i < p; ++i) out.emplace_back(pieces_[i]);
  if (p < pieces_.size() && n > cum_[p]) {
    const std::string_view piece = pieces_[p];
    out.push_back(piece.substr(0, kth_cut(piece, n - cum_[p])));
  }
  return out;
}

size_t budget_bytes(int target_tokens) {
  return 2048 + 8 * static_cast<size_t>(std::max(target_tokens, 0));
}

PieceStream noise_stream(const std::string& noise, size_t budget) {
  std::vector<std::string> lines(budget / noise.size() + 1, noise);
  return PieceStream(std::move(lines));
}

PieceStream essay_stream(const TextSources& sources, Rng& rng, size_t budget) {
  std::vector<std::string> sentences;
  size_t bytes = 0;
  while (bytes < budget) {
    const size_t before = sentences.size();
    split_sentences(pick(rng, sources.haystack.empty() ? sources.essay : sources.haystack),
                    sentences);
    for (size_t i = before; i < sentences.size(); ++i) bytes += sentences[i].size() + 1;
  }
  return PieceStream(std::move(sentences));
}

std::vector<Item> interleave(const std::vector<std::string_view>& pieces,
                             const std::vector<Gold>& golds) {
  // Depth d puts a gold before piece floor(d * P) (after all of them for d = 1), as RULER does.
  std::vector<std::pair<size_t, int>> slots;
  for (size_t g = 0; g < golds.size(); ++g) {
    const auto j = static_cast<size_t>(golds[g].depth * static_cast<double>(pieces.size()));
    slots.emplace_back(std::min(j, pieces.size()), static_cast<int>(g));
  }
  std::stable_sort(slots.begin(), slots.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Item> items;
  items.reserve(pieces.size() + golds.size());
  size_t s = 0;
  for (size_t i = 0; i <= pieces.size(); ++i) {
    for (; s < slots.size() && slots[s].first == i; ++s) {
      items.push_back({golds[slots[s].second].text, slots[s].second});
    }
    if (i < pieces.size()) items.push_back({pieces[i], -1});
  }
  return items;
}

Placed join_items(const std::vector<Item>& items, const std::vector<Gold>& golds,
                  std::string_view separator) {
  Placed placed;
  placed.marks.resize(golds.size());
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) placed.text += separator;
    if (items[i].gold >= 0) {
      for (const size_t m : golds[items[i].gold].marks) {
        placed.marks[items[i].gold].push_back(placed.text.size() + m);
      }
    }
    placed.text += items[i].text;
  }
  return placed;
}

// ---- fitting ----

Rendered fill_input(const TaskSpec& spec, const std::string& context,
                    const std::vector<size_t>& context_offsets, Vars vars) {
  vars.emplace_back("context", context);
  std::vector<size_t> at;
  Rendered r;
  r.input = fill(spec.templ, vars, "context", &at);
  for (const size_t off : context_offsets) r.offsets.push_back(at.at(0) + off);
  return r;
}

EncodeWork& encode_work() {
  thread_local EncodeWork work;
  return work;
}

int Fitter::count(const std::string& text) const {
  EncodeWork& work = encode_work();
  ++work.encodes;
  work.bytes += static_cast<int64_t>(text.size());
  return static_cast<int>(tok_.encode(text).size());
}

std::optional<Fitter::Result> Fitter::fit(const Layout& layout, int target) const {
  const auto measure = [&](size_t n, Rendered& r) {
    r = layout.render(n);
    return count(r.input + layout.answer_prefix);
  };
  Result best;
  const int c0 = measure(0, best.rendered);
  if (c0 > target) return std::nullopt;
  // Bracket [lo, hi): lo fits, hi does not (max_units + 1 stands for "never measured").
  size_t lo = 0, hi = layout.max_units + 1;
  int clo = c0, chi = -1;
  // First guess at ~3 bytes a token, then secant steps on the nearly linear count; the
  // last few units are bisected, so a 4096-token prompt takes about six encodes.
  const size_t bytes0 = best.rendered.input.size();
  const size_t bytes_max = layout.render(layout.max_units).input.size();
  double rate = std::max(1e-3, static_cast<double>(bytes_max - bytes0) / 3.0 /
                                   static_cast<double>(std::max<size_t>(layout.max_units, 1)));
  Rendered r;
  for (int iter = 0; hi - lo > 1 && clo < target && iter < 100; ++iter) {
    size_t guess = lo + (hi - lo) / 2;
    if (hi - lo > 8) {
      const double step = static_cast<double>(target - clo) / rate;
      guess = lo + static_cast<size_t>(std::clamp(step, 1.0, static_cast<double>(hi - lo - 1)));
    }
    const int c = measure(guess, r);
    if (c <= target) {
      lo = guess;
      clo = c;
      best.rendered = std::move(r);
    } else {
      hi = guess;
      chi = c;
    }
    if (chi >= 0) {
      rate = static_cast<double>(chi - clo) / static_cast<double>(hi - lo);
    } else if (lo > 0) {
      rate = static_cast<double>(clo - c0) / static_cast<double>(lo);
    }
    rate = std::max(rate, 1e-3);
  }
  best.tokens = clo;
  return best;
}

}  // namespace dapx::eval::detail
